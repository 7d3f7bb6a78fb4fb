#!/usr/bin/env bash
# A Python environment in which both sides of a parity run work: the authors' scripts import
# torchvision, ema_pytorch, einops, pandas, tensorboard, tqdm, matplotlib and accelerate; akorn (with
# scikit-learn and pillow, for its object-discovery evaluator) is installed
# from this checkout into the same environment, so both sides run on the same torch.
#
#   bash scripts/parity/setup_env.sh [VENV]      (default .parity-venv)
#
# TORCH_SPEC picks the torch/torchvision pair (default: torch==2.14.1 torchvision==0.29.1, a pair
# that imports together on x86_64; on aarch64 torch==2.9.1 torchvision==0.24.1).
set -euo pipefail
VENV=${1:-.parity-venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q $TORCH_SPEC
"$VENV/bin/pip" install -q ema_pytorch einops pandas tensorboard tqdm matplotlib scipy sympy safetensors pyyaml numpy \
    accelerate scikit-learn pillow
# train_classification.py imports fra31's autoattack (not on PyPI); pyautoattack is that code packaged.
# akorn classify eval needs the classify extra's packages too.
"$VENV/bin/pip" install -q --no-deps pyautoattack
"$VENV/bin/pip" install -q imagecorruptions-imaug torchmetrics
"$VENV/bin/pip" install -q --no-deps -e "$(dirname "$0")/../.."
"$VENV/bin/python" -c "import torch, torchvision, ema_pytorch, akorn; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
