#!/usr/bin/env bash
# Set up what the remote-inference tests (tests/test_remote.py, bench/test_bench_remote.py) need:
#   1. the client library (the `remote` extra, tritonclient[grpc]) in the current Python;
#   2. a separate virtualenv .venv-kserve/ with kserve + openvino + numpy for tests/kserve_server.py (kserve's
#      dependencies and protobufs must not mix with the client's);
#   3. POSE_FAST_KSERVE_PYTHON, the test server's interpreter.
# Idempotent and quick when everything is already there. Use it as `source .ci/remote.sh` (exports the variable)
# or `eval "$(bash .ci/remote.sh)"` (prints the export line on stdout; progress goes to stderr).
# Optional: PYTHON (default: python), KSERVE_VENV (default: <project>/.venv-kserve).

_remote_setup() {
    local root py venv ov_version want have start
    start=$(date +%s)
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    py=${PYTHON:-python}
    venv=${KSERVE_VENV:-$root/.venv-kserve}

    if ! "$py" -c "import importlib.util as u; assert u.find_spec('tritonclient.grpc')" >/dev/null 2>&1; then
        echo "remote.sh: installing the client (tritonclient[grpc])" >&2
        "$py" -m pip install -q "tritonclient[grpc]>=2.30" 2>&1 | grep -v "^WARNING: Location" >&2 || true
        "$py" -c "import tritonclient.grpc" || return 1
    fi

    ov_version=$("$py" -c "from importlib.metadata import version; print(version('openvino'))") || return 1
    # The server runs the same OpenVINO as the local engine, so both give the same heatmaps.
    want="kserve==0.21.0 openvino==$ov_version numpy"
    have=$(cat "$venv/.pose-fast-requirements" 2>/dev/null || true)
    if [ "$have" != "$want" ] || ! "$venv/bin/python" -c \
            "import importlib.util as u; assert all(map(u.find_spec, ('kserve', 'openvino', 'numpy')))" >/dev/null 2>&1
    then
        echo "remote.sh: creating $venv ($want)" >&2
        "$py" -m venv "$venv" >&2 || return 1
        # shellcheck disable=SC2086
        if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check $want >"$venv/pip.log" 2>&1; then
            cat "$venv/pip.log" >&2
            return 1
        fi
        echo "$want" > "$venv/.pose-fast-requirements"
    fi

    export POSE_FAST_KSERVE_PYTHON="$venv/bin/python"
    echo "remote.sh: ready in $(( $(date +%s) - start )) s; POSE_FAST_KSERVE_PYTHON=$POSE_FAST_KSERVE_PYTHON" >&2
    echo "export POSE_FAST_KSERVE_PYTHON=$POSE_FAST_KSERVE_PYTHON"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -eu
    _remote_setup
else
    _remote_setup >/dev/null || return 1
fi
