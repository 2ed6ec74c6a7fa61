"""`pose-fast web` as a script: `python main.py --help`."""
from pose_fast.cli.main import run

if __name__ == "__main__":
    run("web")
