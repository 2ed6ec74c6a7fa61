#!/usr/bin/env bash
# The Raspberry Pi + Neural Compute Stick 2 configuration, tested on x86_64: Python 3.9, OpenVINO 2022.3.2 LTS
# (API under openvino.runtime) and the OLDEST dependency versions pyproject.toml declares. The package is
# installed from source (the Cython decoder must compile), then the engine, decoder, pipeline, CLI, event-store
# and compat tests run on the real model and videos, and the decoded poses are compared with those of the main
# environment (newest OpenVINO) on the same video.
#
# Run from the project root (.ci/run calls it after the main job), with POSE_FAST_MODEL_DIR set.
# The virtual environment is cached outside the work tree, keyed on pyproject.toml, the pins below and the
# interpreter, under $POSE_FAST_CI_CACHE (default ~/.cache/pose_fast-ci); a fresh machine builds it (1-2 min).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

# Oldest versions that install as cp39 x86_64 wheels and pass with openvino 2022.3.2 (its own bound: numpy<1.25).
# These are the lower bounds of [project.dependencies]; raise both together. Why not lower: numpy 1.19.3 is the
# first with cp39 wheels; numba < 0.56 imports pkg_resources, gone from current setuptools; opencv-python 4.5.4.60
# is the first with CAP_PROP_OPEN/READ_TIMEOUT_MSEC; Flask < 2.3.3 breaks with Werkzeug 3 and 2.3.3 needs
# click >= 8.1.3; apsw 3.40 added Connection.execute; waitress 2.1.1 fixes CVE-2022-24761; platformdirs 2.6 is the oldest
# tested (its user_cache_dir/user_data_dir are older); paho-mqtt 1.6.1 is the last 1.x (sdist only, hence --no-binary
# below; 2.x changed the callback API, both are supported); prometheus-client 0.16 is the oldest tested.
OPENVINO_PIN="openvino==2022.3.2"
OLDEST_PINS=(
    "numpy==1.19.3"
    "numba==0.56.0"
    "opencv-python==4.5.4.60"
    "flask==2.3.3"
    "apsw==3.40.0.0"
    "click==8.1.3"
    "waitress==2.1.1"
    "platformdirs==2.6.0"
    "tomli==1.1.0"
    "scipy==1.7.0"
    "paho-mqtt==1.6.1"
    "prometheus-client==0.16.0"
)
TEST_DEPS=("pytest>=7" "pytest-benchmark>=4" "hypothesis>=6" "requests>=2.25")  # pytest-benchmark: addopts has --benchmark-disable
BUILD_DEPS=("setuptools>=61" "wheel" "Cython>=3.0")
# Tests of the stages this configuration runs (browser, remote and benchmark suites stay in the main job); the
# web and create-db tests are here because they exercise the Flask, waitress and click lower bounds.
TEST_FILES=(tests/test_compat.py tests/test_api.py tests/test_engine.py tests/test_model.py tests/test_decode*.py
            tests/test_people.py
            tests/test_pipeline.py tests/test_demo_cli.py tests/test_frames.py tests/test_render.py
            tests/test_events.py tests/test_tracking.py tests/test_track_kernels.py tests/test_create_db.py tests/test_detections_api.py
            tests/test_webapp.py tests/test_web_server.py tests/test_watchdog.py tests/test_cameras.py
            tests/test_zones.py tests/test_mqtt.py tests/test_metrics.py)
MARKERS="not browser and not remote and not soak"
# The decoder's peer comparison needs openvino-model-api, which requires openvino>=2024: it runs in the main job.
DESELECT="not peer and not nobody_watching_through_a_cut and not moves_to_the_device"  # cameras: main job

log() { printf 'py39: [%3ds] %s\n' "$((SECONDS - START))" "$*"; }
START=$SECONDS
die() { printf 'py39: FAILED: %s\n' "$*" >&2; exit 1; }

# -- the interpreter --------------------------------------------------------------------------------------------
find_python39() {
    local candidate
    local -a candidates=()
    shopt -s nullglob
    candidates+=("${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9.*/bin/python3.9)
    shopt -u nullglob
    if command -v python3.9 >/dev/null 2>&1; then
        candidates+=("$(command -v python3.9)")
    fi
    # Newest 3.9.x first; a pyenv shim for a version that is not selected fails the check and is skipped.
    for candidate in $(printf '%s\n' "${candidates[@]}" | sort -r -V); do
        if "$candidate" -c 'import sys, venv; assert sys.version_info[:2] == (3, 9)' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

PY39="$(find_python39)" || die "no Python 3.9 interpreter found (looked for ${PYENV_ROOT:-$HOME/.pyenv}/versions/3.9.*/bin/python3.9 and python3.9 on PATH): install one, e.g. 'pyenv install 3.9', and run again"
PY39_VERSION="$("$PY39" -c 'import platform; print(platform.python_version())')"
log "Python $PY39_VERSION at $PY39"

[ -n "${POSE_FAST_MODEL_DIR:-}" ] || die "POSE_FAST_MODEL_DIR is not set: point it at the folder holding human-pose-estimation-0001/"
POSE_FAST_MODEL_DIR="$(cd "$POSE_FAST_MODEL_DIR" && pwd)" || die "POSE_FAST_MODEL_DIR=$POSE_FAST_MODEL_DIR does not exist"
export POSE_FAST_MODEL_DIR

# -- the pins are the declared lower bounds -------------------------------------------------------------------
"$PY39" - pyproject.toml "$OPENVINO_PIN" "${OLDEST_PINS[@]}" <<'EOF' || die "OLDEST_PINS and pyproject.toml's lower bounds differ: raise both together"
import re
import sys


def parts(version):
    numbers = [int(x) for x in version.split(".")]
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return numbers


text = open(sys.argv[1], encoding="utf-8").read()
block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
bounds = {name.lower(): version for name, version in re.findall(r'"([A-Za-z0-9_.-]+)>=([0-9.]+)', block)}
pins = dict(pin.lower().split("==") for pin in sys.argv[2:])
bad = [f"{name}: pyproject >={bounds.get(name)}, pinned {pins.get(name)}" for name in sorted(set(bounds) | set(pins))
       if name not in bounds or name not in pins
       or parts(pins[name])[:len(parts(bounds[name]))] != parts(bounds[name])]  # 2022.3 admits 2022.3.2
if bad:
    sys.exit("py39: " + "; ".join(bad))
print(f"py39: the pins are pyproject.toml's {len(bounds)} lower bounds")
EOF

# -- the cached virtual environment --------------------------------------------------------------------------
CACHE_ROOT="${POSE_FAST_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pose_fast-ci}"
KEY="$( { cat pyproject.toml; echo "$OPENVINO_PIN ${OLDEST_PINS[*]} ${TEST_DEPS[*]} ${BUILD_DEPS[*]}";
          echo "$PY39 $PY39_VERSION"; } | sha256sum | cut -c1-16)"
VENV="$CACHE_ROOT/py39-$KEY"
mkdir -p "$CACHE_ROOT"

pip_quiet() {  # pip, with its output kept in a log that is shown only when it fails
    local logfile="$CACHE_ROOT/pip-$KEY.log"
    if ! "$VENV/bin/python" -m pip "$@" >"$logfile" 2>&1; then
        grep -v 'is ignored: it is neither a file nor a directory' "$logfile" | tail -n 40 >&2 || true
        die "pip $* failed (log: $logfile)"
    fi
}

if [ -f "$VENV/.complete" ] && "$VENV/bin/python" -c 'import openvino.runtime' >/dev/null 2>&1; then
    log "reusing cached environment $VENV"
else
    log "creating environment $VENV"
    rm -rf "$VENV"
    "$PY39" -m venv "$VENV"
    pip_quiet install --only-binary=:all: --no-binary=paho-mqtt "$OPENVINO_PIN" "${OLDEST_PINS[@]}" "${TEST_DEPS[@]}" "${BUILD_DEPS[@]}"
    touch "$VENV/.complete"
    # Environments for older keys are dead weight now.
    find "$CACHE_ROOT" -maxdepth 1 -name 'py39-*' ! -name "py39-$KEY" -exec rm -rf {} + 2>/dev/null || true
fi
PY="$VENV/bin/python"

# The pins must be what is installed (a transitive dependency may not drag one upwards).
"$PY" - "$OPENVINO_PIN" "${OLDEST_PINS[@]}" <<'EOF' || die "the environment does not hold the pinned versions"
import sys
from importlib.metadata import version
bad = []
for pin in sys.argv[1:]:
    name, _, wanted = pin.partition("==")
    have = version(name)
    if have != wanted:
        bad.append(f"{name} {have} (pinned {wanted})")
print("py39: installed " + ", ".join(p.replace("==", " ") for p in sys.argv[1:]))
if bad:
    sys.exit("py39: version drift: " + ", ".join(bad))
EOF

# -- install the package from source, compiling the Cython kernels (decoder, tracker) -----------------------
log "installing pose_fast from source (setuptools + Cython, against numpy ${OLDEST_PINS[0]#numpy==})"
pip_quiet install --no-deps --no-build-isolation --force-reinstall --no-cache-dir "$ROOT"

# Check the installed copy, from outside the work tree.
EXT_SOS="$(cd "$VENV" && "$PY" - <<'EOF'
import importlib.util
import os
import sys

import pose_fast
from pose_fast import _ov

print(f"py39: pose_fast from {os.path.dirname(pose_fast.__file__)}, OpenVINO {_ov.VERSION}", file=sys.stderr)
assert "site-packages" in pose_fast.__file__, pose_fast.__file__
assert _ov.VERSION_TUPLE[:2] == (2022, 3), _ov.VERSION
has_pyx = importlib.util.find_spec("pose_fast._decode") is not None
if not has_pyx:
    sys.exit("py39: the Cython extension pose_fast._decode was not built (see the pip log for the compiler error)")
import pose_fast._decode as ext  # noqa: E402

if importlib.util.find_spec("pose_fast.decoding") is not None:
    from pose_fast.decoding import BACKEND

    if BACKEND != "cython":
        sys.exit(f"py39: pose_fast.decoding.BACKEND is {BACKEND!r}, expected 'cython'")
    print("py39: pose_fast.decoding.BACKEND == 'cython'", file=sys.stderr)
if importlib.util.find_spec("pose_fast._track") is None:
    sys.exit("py39: the Cython extension pose_fast._track was not built (see the pip log for the compiler error)")
import pose_fast._track as track  # noqa: E402
from pose_fast.tracking import KERNELS  # noqa: E402

if KERNELS is not track:
    sys.exit(f"py39: pose_fast.tracking.KERNELS is {KERNELS.NAME!r}, expected the compiled pose_fast._track")
print(ext.__file__)
print(track.__file__)
EOF
)" || die "the installed package is not usable"

# The tests import pose_fast from the work tree (pytest puts the project root first on sys.path): give the tree
# the extensions this interpreter just compiled from it, so the tree runs the Cython kernels under 3.9 too.
# copy then rename: overwriting a loaded .so in place crashes processes that have it mapped
while IFS= read -r so; do
    cp -f "$so" "$ROOT/pose_fast/.ext.tmp" && mv -f "$ROOT/pose_fast/.ext.tmp" "$ROOT/pose_fast/$(basename "$so")"
done <<<"$EXT_SOS"

# -- the reference poses from the main environment (newest OpenVINO) ------------------------------------------
MAIN_PY="${POSE_FAST_MAIN_PYTHON:-$(command -v python || command -v python3)}"  # what .ci/run tested with
REF_DIR="$(mktemp -d)"
trap 'rm -rf "$REF_DIR"' EXIT
export POSE_FAST_COMPAT_REFERENCE="$REF_DIR/compat-reference.json"
MAIN_OV="$("$MAIN_PY" -c 'import openvino as ov; print(ov.get_version().split("-")[0])')" \
    || die "the main environment's Python ($MAIN_PY, set POSE_FAST_MAIN_PYTHON) cannot import openvino"
case "$MAIN_OV" in
    2022.*|2023.0.*) die "the main environment has OpenVINO $MAIN_OV: the comparison needs the newest (2023.1+) API there" ;;
esac
log "reference poses from the main environment ($MAIN_PY, OpenVINO $MAIN_OV)"
POSE_FAST_COMPAT_WRITE=1 "$MAIN_PY" -m pytest -q -p no:cacheprovider tests/test_compat.py -k cross_version \
    || die "the main environment could not write the reference poses"
[ -s "$POSE_FAST_COMPAT_REFERENCE" ] || die "no reference poses were written"

# -- the tests --------------------------------------------------------------------------------------------------
shopt -s nullglob
SELECTED=()
for pattern in "${TEST_FILES[@]}"; do
    for file in $pattern; do
        [ -f "$file" ] && SELECTED+=("$file")
    done
done
shopt -u nullglob
[ ${#SELECTED[@]} -gt 0 ] || die "none of the selected test files exist: ${TEST_FILES[*]}"
for pattern in "${TEST_FILES[@]}"; do
    compgen -G "$pattern" >/dev/null || log "note: no $pattern yet"
done
log "pytest ${SELECTED[*]} -m '$MARKERS' -k '$DESELECT'"
set +e
# Every decoder backend must load here (a backend that fails to import would otherwise only skip its tests).
export POSE_FAST_REQUIRE_BACKENDS="cython,numba,numpy"
# The venv's bin first: tests that start `pose-fast` or `python` in a subprocess get this environment's.
PATH="$VENV/bin:$PATH" "$PY" -m pytest -q -p no:cacheprovider -m "$MARKERS" -k "$DESELECT" "${SELECTED[@]}"
status=$?
set -e
[ $status -eq 0 ] || die "tests failed under Python $PY39_VERSION + OpenVINO 2022.3.2 (pytest exit $status)"
log "passed in $((SECONDS - START)) s"
