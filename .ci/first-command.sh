#!/usr/bin/env bash
# The README's first command, exactly as written, as a new user runs it: a fresh clone of this commit beside
# shared/, a new virtualenv, an empty HOME (no model cache) and no POSE_FAST_* variables, no display. It must
# install, run the demo to the end of the video and exit 0. Run from anywhere: `bash .ci/first-command.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
PARENT="$(dirname "$ROOT")"
[ -d "$PARENT/shared" ] || { echo "first-command: $PARENT/shared is missing" >&2; exit 1; }
# The first line of the README's first ```bash block.
COMMAND="$(awk '/^```bash$/ {getline; print; exit}' README.md)"
[ -n "$COMMAND" ] || { echo "first-command: no \`\`\`bash block in README.md" >&2; exit 1; }
PIP_CACHE="$(python -m pip cache dir 2>/dev/null || true)"  # the packages' cache, not the model's: a faster install
CLONE="$(mktemp -d "$PARENT/first-command.XXXXXX")"
EMPTY_HOME="$(mktemp -d)"
trap 'rm -rf "$CLONE" "$EMPTY_HOME"' EXIT
rmdir "$CLONE" && git clone -q "$ROOT" "$CLONE"  # beside shared/, so ../shared resolves from it
cd "$CLONE"
python -m venv .venv-first
echo "first-command: in a fresh clone ($CLONE), a new virtualenv, HOME=$EMPTY_HOME: $COMMAND"
set +e
env -i PATH="$CLONE/.venv-first/bin:/usr/local/bin:/usr/bin:/bin" HOME="$EMPTY_HOME" LANG=C.UTF-8 \
    ${PIP_CACHE:+PIP_CACHE_DIR="$PIP_CACHE"} PIP_DISABLE_PIP_VERSION_CHECK=1 \
    timeout 1200 bash -c "$COMMAND" >"$EMPTY_HOME/out.log" 2>&1
status=$?
set -e
tail -n 14 "$EMPTY_HOME/out.log"
[ $status -eq 0 ] || { echo "first-command: FAILED (exit $status)" >&2; exit 1; }
grep -q "frames in" "$EMPTY_HOME/out.log" || { echo "first-command: FAILED: no summary" >&2; exit 1; }
[ ! -e "$EMPTY_HOME/.cache/pose_fast/models" ] || { echo "first-command: FAILED: it downloaded the model" >&2; exit 1; }
echo "first-command: passed"
