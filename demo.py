"""`pose-fast demo` as a script: `python demo.py --help`."""
from pose_fast.cli.main import run

if __name__ == "__main__":
    run("demo")
