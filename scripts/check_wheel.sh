#!/usr/bin/env bash
# Build the wheel and sdist, check their metadata, install the wheel with no extras into a fresh venv
# (pinned torch first) and run commands from it, outside the source tree: the shipped weights and
# the entry point travel, and a command that needs an extra says so in one line.
#
#   bash scripts/check_wheel.sh [WORK_DIR]      (run inside the project's venv: it needs build, twine)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
rm -rf "$WORK/dist"
python -m build --sdist --wheel --outdir "$WORK/dist" . > "$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
python -m twine check --strict "$WORK"/dist/*
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q torch==2.13.0
"$WORK/venv/bin/pip" install -q "$WORK"/dist/akorn-*.whl
cd "$WORK"
"$WORK/venv/bin/akorn" --version
"$WORK/venv/bin/akorn" demo
"$WORK/venv/bin/akorn" sudoku solve "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
set +e
msg=$("$WORK/venv/bin/akorn" viz waves --out "$WORK/waves" 2>&1)
code=$?
set -e
if [[ $code != 2 || $msg != *'pip install "akorn[viz]"'* || -e $WORK/waves ]]; then
  echo "check_wheel.sh: a core-only 'akorn viz waves' should exit 2 naming the viz extra; got $code: $msg" >&2
  exit 1
fi
echo "core-only install: ok ($msg)"
