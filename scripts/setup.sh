#!/usr/bin/env bash
# Create .venv and install akorn with everything its tests and demos need.
# torch is pinned and installed first, so nothing else pulls in a different build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install torch==2.13.0
pip install -e ".[dev]"
