#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian/Ubuntu machine; the README's test command runs it:
#   1. system packages (apt-get update first): a C compiler for the decoder extension, OpenCV's GUI libraries,
#      Xvfb, ImageMagick and xdotool for the window test, Debian's chromium and its driver for the browser test,
#      GStreamer's RTSP server with its Python bindings and codecs for the camera/watchdog tests;
#      python3-venv;
#   2. the project with its test extra (`pip install -e ".[test]"`, which compiles the Cython decoder), and the
#      peer decoder the tests compare against (openvino-model-api 0.2.5, --no-deps: it pins an old OpenVINO), into
#      the Python in use: an active virtualenv, or any Python that takes `pip install` (pyenv, conda). Debian's
#      own Python refuses it (PEP 668, EXTERNALLY-MANAGED; .ci/python_env.py tells): then into .venv/, made here,
#      which `. .ci/env` (the README's command) activates; the script says so;
#   3. .venv-kserve/, the KServe v2 test server's own virtualenv (.ci/remote.sh), for the remote-inference tests.
# Idempotent; uses sudo for apt-get when not root. PYTHON: the interpreter to start from (default python, else
# python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-$(command -v python || command -v python3 || echo python)}
KIND=$("$PY" .ci/python_env.py)
if [ "$KIND" = externally-managed ]; then
    echo "test-setup: $PY is the system's Python, which refuses pip install (PEP 668): installing into .venv" >&2
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "test-setup: system packages (apt-get)" >&2
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    build-essential libgl1 libglib2.0-0 xvfb x11-apps imagemagick xdotool chromium chromium-driver python3-venv \
    gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav mosquitto >/dev/null
if [ "$KIND" = externally-managed ]; then
    [ -x .venv/bin/python ] || "$PY" -m venv .venv
    touch .venv/.pose-fast-setup  # .ci/env activates only the .venv made here
    PY=.venv/bin/python
fi
echo "test-setup: pose_fast with its test extra, and the peer decoder ($PY)" >&2
"$PY" -m pip install -q -e ".[test]"
"$PY" -m pip install -q --no-deps openvino-model-api==0.2.5
echo "test-setup: the KServe test server's virtualenv" >&2
PYTHON="$PY" bash .ci/remote.sh >/dev/null
if [ "$KIND" = externally-managed ]; then
    echo "test-setup: installed into .venv (PEP 668): run \`. .venv/bin/activate\` (or \`. .ci/env\`) before \`python -m pytest\`"
fi
