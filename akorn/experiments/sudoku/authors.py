"""Sudoku models trained with the authors' code (github.com/autonomousvision/akorn), in our layout.

Their ``train_sudoku.py`` saves ``ema_<epoch>.pth``: ``{"epoch", "model_state_dict"}`` holding an
``ema_pytorch.EMA`` state dict (``ema_model.*``, ``online_model.*``, ``initted``, ``step``), and
``model.pth`` / ``ema_model.pth`` at the end. What differs from ours:

* their attention splits the q, k, v and output channels of each head as ``(c nh)`` (channel
  ``c * heads + h``); ours are head-major (``h * head_dim + c``): a fixed permutation of the
  q/k/v rows and of the output projection's columns;
* their projections and readouts are 1x1 convolutions (``(out, in, 1, 1)``), ours linear maps;
* γ sits at the top of their model, Ω in the Kuramoto layer; ``x0`` is unused;
* on a CPU their GTA matrices of q, k and v share storage (one tensor saved three times).

Files are read with ``torch.load(weights_only=True)``: a pickle that holds code is refused and
nothing in it runs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from akorn.engine.checkpoint import safe_torch_load
from akorn.errors import UserError

# Their key (layer 0 of an L=1 model) -> ours: the same tensor, a 1x1 convolution as a linear map, a bias.
SAME = {
    "embedding.weight": "embedding.weight",
    "layers.0.0.omg.omg_param": "kuramoto.omega_param",
    "layers.0.0.connectivity.mat_q": "kuramoto.coupling.gta.mat_q",
    "layers.0.0.connectivity.mat_k": "kuramoto.coupling.gta.mat_k",
    "layers.0.0.connectivity.mat_v": "kuramoto.coupling.gta.mat_v",
    "layers.0.0.connectivity.mat_o": "kuramoto.coupling.gta.mat_o",
    "layers.0.1.0.invconv.weight": "readout.0.proj.weight",
    "layers.0.1.0.invconv.bias": "readout.0.proj.bias",
    "layers.0.1.0.bias": "readout.0.bias",
}
CONV_TO_LINEAR = {
    "layers.0.1.1.fn.fn.0.fn.2.weight": "readout.1.fn.1.weight",
    "layers.0.1.1.fn.fn.1.fn.2.weight": "readout.1.fn.3.weight",
    "layers.0.1.2.fn.2.weight": "readout.3.weight",
    "out.1.weight": "head.1.weight",
}
BIASES = {
    "layers.0.1.1.fn.fn.0.fn.2.bias": "readout.1.fn.1.bias",
    "layers.0.1.1.fn.fn.1.fn.2.bias": "readout.1.fn.3.bias",
    "layers.0.1.2.fn.2.bias": "readout.3.bias",
    "out.1.bias": "head.1.bias",
}
ATTENTION = ("layers.0.0.connectivity.W_qkv.weight", "layers.0.0.connectivity.W_qkv.bias",
              "layers.0.0.connectivity.W_o.weight", "layers.0.0.connectivity.W_o.bias")  # fmt: skip
UNUSED = ("x0",)
EXPECTED = set(SAME) | set(CONV_TO_LINEAR) | set(BIASES) | set(ATTENTION) | {"gamma", *UNUSED}


def model_state_dict(obj) -> dict:
    """The model's weights inside whatever their scripts saved: an ``ema_*.pth`` (the EMA's weights),
    a ``{"model_state_dict": ...}`` checkpoint, or a plain state dict."""
    if isinstance(obj, dict) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        raise UserError("not a state dict of the authors' Sudoku model (no model_state_dict, no parameter names)")
    if any(k.startswith("ema_model.") for k in obj):
        obj = {k.removeprefix("ema_model."): v for k, v in obj.items() if k.startswith("ema_model.")}
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f"not a state dict: {bad[0]!r} is not a tensor")
    return obj


def head_major(n_heads: int, head_dim: int) -> torch.Tensor:
    """Positions in their ``(c nh)`` order of our head-major channels: ``ours[i] = theirs[perm[i]]``."""
    h = torch.arange(n_heads).repeat_interleave(head_dim)
    c = torch.arange(head_dim).repeat(n_heads)
    return c * n_heads + h


def convert(sd: dict) -> tuple[dict, dict]:
    """Their state dict -> ours, and the architecture read off the shapes (channels, n, heads)."""
    keys = set(sd)
    missing, unexpected = sorted(EXPECTED - keys - set(UNUSED)), sorted(keys - EXPECTED)
    if missing or unexpected:
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:4])}" + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
                if missing
                else "",
                f"unexpected {', '.join(unexpected[:4])}"
                + (f" and {len(unexpected) - 4} more" if len(unexpected) > 4 else "")
                if unexpected
                else "",
            )
            if part
        )
        raise UserError(f"not the authors' Sudoku AKOrN (one attention Kuramoto layer with GTA, global Ω): {detail}")
    C = sd["embedding.weight"].shape[1]
    n = sd["layers.0.1.0.invconv.weight"].shape[0] // C
    head_dim = 2 * sd["layers.0.0.connectivity.mat_q"].shape[1]
    expect = {
        "embedding.weight": (10, C),
        "layers.0.0.omg.omg_param": (2,),
        "layers.0.0.connectivity.W_qkv.weight": (3 * C, C, 1, 1),
        "layers.0.0.connectivity.W_o.weight": (C, C, 1, 1),
        "layers.0.0.connectivity.mat_q": (81, head_dim // 2, 2, 2),
        "layers.0.1.0.invconv.weight": (C * n, C, 1, 1),
        "out.1.weight": (9, C, 1, 1),
        "gamma": (1,),
    }
    wrong = [f"{k} {tuple(sd[k].shape)} (expected {v})" for k, v in expect.items() if tuple(sd[k].shape) != v]
    if wrong or head_dim < 2 or C % head_dim or C % n:
        raise UserError("shapes do not fit the authors' Sudoku AKOrN: " + ("; ".join(wrong[:3]) or f"channels {C}"))
    heads = C // head_dim
    perm = head_major(heads, head_dim)
    ours = {}
    for theirs, mine in SAME.items():
        ours[mine] = sd[theirs].clone()  # clone: their q, k and v matrices may share one storage
    for theirs, mine in CONV_TO_LINEAR.items():
        ours[mine] = sd[theirs].flatten(1).clone()
    for theirs, mine in BIASES.items():
        ours[mine] = sd[theirs].clone()
    w, b = sd["layers.0.0.connectivity.W_qkv.weight"].flatten(1), sd["layers.0.0.connectivity.W_qkv.bias"]
    rows = torch.cat([perm + i * C for i in range(3)])
    ours["kuramoto.coupling.qkv.weight"] = w[rows].clone()
    ours["kuramoto.coupling.qkv.bias"] = b[rows].clone()
    ours["kuramoto.coupling.out.weight"] = sd["layers.0.0.connectivity.W_o.weight"].flatten(1)[:, perm].clone()
    ours["kuramoto.coupling.out.bias"] = sd["layers.0.0.connectivity.W_o.bias"].clone()
    ours["kuramoto.gamma"] = sd["gamma"].reshape(()).clone()
    return ours, {"channels": C, "n": n, "heads": heads}


def load_authors_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Our state dict and architecture from a checkpoint file of theirs."""
    return convert(model_state_dict(safe_torch_load(Path(path))))
