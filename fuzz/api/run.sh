#!/usr/bin/env bash
# Fuzzes Clarion's HTTP API with schemathesis (fuzz/README.md "The HTTP API with schemathesis", docs/testing.md):
#
#   fuzz/api/run.sh [EXAMPLES] [run.py / schemathesis options...]
#
# EXAMPLES: test cases per operation and phase (default 1000). scripts/test.sh runs a bounded,
# deterministic pass: `fuzz/api/run.sh 40 --deterministic`. Makes its own virtualenv
# (fuzz/api/.venv) with the pinned requirements.txt from PyPI, remade when that file changes.
# Exits non-zero on any failed check, a 5xx included.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv="$here/.venv"
req="$here/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.requirements"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.requirements"
fi
examples=1000
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  examples=$1
  shift
fi
exec "$venv/bin/python" "$here/run.py" --examples "$examples" "$@"
