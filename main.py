"""`pose-fast web` as a script: `python main.py --help`."""
from cli.main import run

if __name__ == "__main__":
    run("web")
