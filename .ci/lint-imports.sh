#!/usr/bin/env bash
# The import contracts of pyproject.toml ([tool.importlinter]: layers, independent engines, no cycles), checked on
# the package as pip installs it: in a checkout, cli/ and webapp/ sit beside pose_fast/, and import-linter reads
# only what is inside the package's folder. Run from anywhere: `bash .ci/lint-imports.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python -m pip install -q --no-deps --no-build-isolation --target "$WORK/site" "$ROOT" >"$WORK/pip.log" 2>&1 \
    || { tail -n 30 "$WORK/pip.log" >&2; echo "lint-imports: the package did not install" >&2; exit 1; }
cd "$WORK"  # not the checkout: its pose_fast/ would hide the installed one
PYTHONPATH="$WORK/site" lint-imports "$ROOT/pyproject.toml"
