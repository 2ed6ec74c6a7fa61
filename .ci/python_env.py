"""Where `pip install` may go for this Python; .ci/test-setup.sh asks before installing anything. Prints one word:

- ``venv``: a virtualenv is active (this interpreter's ``sys.prefix`` is not its base): install here;
- ``externally-managed``: the distribution's own Python, marked ``EXTERNALLY-MANAGED`` in its standard library
  folder (PEP 668; Debian 12, Ubuntu 23.04 and later): pip refuses to install into it, so the set-up makes .venv;
- ``plain``: any other Python (pyenv, python.org, conda): install here, as before.

``POSE_FAST_STDLIB`` replaces the standard library folder looked in (for the tests: a fake one).
"""
import os
import sys
import sysconfig


def classify(stdlib, prefix, base_prefix):
    if prefix != base_prefix:
        return "venv"
    if os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED")):
        return "externally-managed"
    return "plain"


if __name__ == "__main__":
    stdlib = os.environ.get("POSE_FAST_STDLIB") or sysconfig.get_paths()["stdlib"]
    print(classify(stdlib, sys.prefix, getattr(sys, "base_prefix", sys.prefix)))
