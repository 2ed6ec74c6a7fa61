"""`pose-fast demo` as a script: `python demo.py --help`."""
from cli.main import run

if __name__ == "__main__":
    run("demo")
