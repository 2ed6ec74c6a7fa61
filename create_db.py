"""`pose-fast create-db` as a script: `python create_db.py --help`."""
from pose_fast.cli.main import run

if __name__ == "__main__":
    run("create-db")
