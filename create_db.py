"""`pose-fast create-db` as a script: `python create_db.py --help`."""
from cli.main import run

if __name__ == "__main__":
    run("create-db")
