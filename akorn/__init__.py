"""akorn: Artificial Kuramoto Oscillatory Neurons in PyTorch.

The public API is the core (``akorn.core``): ``from akorn import KuramotoLayer``. Names are
loaded on first use, so ``import akorn`` alone (the command line's ``--version``) does not
import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "AttentionCoupling": "akorn.core.coupling",
    "ConvCoupling": "akorn.core.coupling",
    "CouplingCache": "akorn.core.coupling",
    "GTA": "akorn.core.gta",
    "IteratedBlock": "akorn.core.networks",
    "IteratedNetwork": "akorn.core.networks",
    "KuramotoAdapter": "akorn.core.adapter",
    "KuramotoLayer": "akorn.core.layer",
    "KuramotoResult": "akorn.core.layer",
    "KuramotoStack": "akorn.core.networks",
    "OscillatorState": "akorn.core.layer",
    "Readout": "akorn.core.readout",
    "Speed": "akorn.core.layer",
    "lyapunov_energy": "akorn.core.maths",
    "normalize": "akorn.core.oscillators",
    "order_parameter": "akorn.core.oscillators",
    "project_tangent": "akorn.core.oscillators",
    "rotate_pairs": "akorn.core.oscillators",
    "voting_energy": "akorn.core.maths",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'akorn' has no attribute {name!r}")


def __dir__():
    return __all__
