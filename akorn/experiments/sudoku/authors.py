"""Sudoku models trained with the authors' code (``train_sudoku.py``), in our layout.

Besides what :mod:`akorn.experiments.authors_layout` describes: their feed-forward readout is
1x1 convolutions where ours are linear maps, γ sits at the top of their model, and ``x0`` is unused.
"""

from __future__ import annotations

from pathlib import Path

import torch

from akorn.engine.checkpoint import safe_torch_load
from akorn.errors import UserError
from akorn.experiments.authors_layout import attention, attention_to_authors, check_keys, check_shapes, model_state_dict

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


WHAT = "the authors' Sudoku AKOrN (one attention Kuramoto layer with GTA, global Ω)"


def convert(sd: dict) -> tuple[dict, dict]:
    """Their state dict -> ours, and the architecture read off the shapes (channels, n, heads)."""
    check_keys({k: v for k, v in sd.items() if k not in UNUSED}, EXPECTED - set(UNUSED), WHAT)
    C = sd["embedding.weight"].shape[1]
    n = max(1, sd["layers.0.1.0.invconv.weight"].shape[0] // max(C, 1))
    head_dim = 2 * sd["layers.0.0.connectivity.mat_q"].shape[1]
    check_shapes(
        sd,
        {
            "embedding.weight": (10, C),
            "layers.0.0.omg.omg_param": (2,),
            "layers.0.0.connectivity.W_qkv.weight": (3 * C, C, 1, 1),
            "layers.0.0.connectivity.W_o.weight": (C, C, 1, 1),
            "layers.0.0.connectivity.mat_q": (81, head_dim // 2, 2, 2),
            "layers.0.1.0.invconv.weight": (C * n, C, 1, 1),
            "out.1.weight": (9, C, 1, 1),
            "gamma": (1,),
        },
        WHAT,
    )
    if head_dim < 2 or C % head_dim:
        raise UserError(f"shapes do not fit {WHAT}: head size {head_dim} does not divide {C} channels")
    heads = C // head_dim
    ours = {mine: sd[theirs].clone() for theirs, mine in SAME.items() if "connectivity.mat" not in theirs}
    ours.update({mine: sd[theirs].flatten(1).clone() for theirs, mine in CONV_TO_LINEAR.items()})
    ours.update({mine: sd[theirs].clone() for theirs, mine in BIASES.items()})
    ours.update(attention(sd, "layers.0.0.connectivity", "kuramoto.coupling", C, heads))
    ours["kuramoto.gamma"] = sd["gamma"].reshape(()).clone()
    return ours, {"channels": C, "n": n, "heads": heads}


def load_authors_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Our state dict and architecture from a checkpoint file of theirs."""
    return convert(model_state_dict(safe_torch_load(Path(path)), WHAT))


def to_authors(ours: dict, channels: int, heads: int, x0: torch.Tensor | None = None) -> dict:
    """Our state dict in their layout, the inverse of :func:`convert`, for their ``eval_sudoku.py``.

    Their model holds an ``x0`` it never uses; ``x0`` fills it (zeros when not given)."""
    sd = {theirs: ours[mine].clone() for theirs, mine in SAME.items() if "connectivity.mat" not in theirs}
    sd.update({theirs: ours[mine][:, :, None, None].clone() for theirs, mine in CONV_TO_LINEAR.items()})
    sd.update({theirs: ours[mine].clone() for theirs, mine in BIASES.items()})
    sd.update(attention_to_authors(ours, "kuramoto.coupling", "layers.0.0.connectivity", channels, heads))
    sd["gamma"] = ours["kuramoto.gamma"].reshape(1).clone()
    sd["x0"] = x0.clone() if x0 is not None else torch.zeros(1, channels, 9, 9)
    return sd


def authors_ema_file(sd: dict) -> dict:
    """What their ``eval_sudoku.py`` loads: ``{"model_state_dict": ema_pytorch.EMA state dict}``, the
    same weights as the EMA and as the online model."""
    state = {f"ema_model.{k}": v for k, v in sd.items()}
    state.update({f"online_model.{k}": v.clone() for k, v in sd.items()})
    state.update({"initted": torch.tensor(True), "step": torch.tensor(0)})
    return {"model_state_dict": state}
