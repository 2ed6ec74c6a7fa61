#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian/Ubuntu machine; the README's test command runs it:
#   1. system packages (apt-get update first): a C compiler for the decoder extension, OpenCV's GUI libraries,
#      Xvfb, ImageMagick and xdotool for the window test, Debian's chromium and its driver for the browser test;
#   2. the project with its test extra (`pip install -e ".[test]"`, which compiles the Cython decoder), and the
#      peer decoder the tests compare against (openvino-model-api 0.2.5, --no-deps: it pins an old OpenVINO);
#   3. .venv-kserve/, the KServe v2 test server's own virtualenv (.ci/remote.sh), for the remote-inference tests.
# Idempotent; uses sudo for apt-get when not root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "test-setup: system packages (apt-get)" >&2
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    build-essential libgl1 libglib2.0-0 xvfb x11-apps imagemagick xdotool chromium chromium-driver mosquitto >/dev/null
echo "test-setup: pose_fast with its test extra, and the peer decoder" >&2
python -m pip install -q -e ".[test]"
python -m pip install -q --no-deps openvino-model-api==0.2.5
echo "test-setup: the KServe test server's virtualenv" >&2
bash .ci/remote.sh >/dev/null
