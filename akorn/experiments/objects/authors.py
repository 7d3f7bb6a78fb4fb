"""Object-discovery AKOrNs trained with the authors' code (``train_obj.py``), in our layout.

Besides what :mod:`akorn.experiments.authors_layout` describes: their γ sits at the top of the
model (one for every layer), their patch embedding normalises the image to [-1, 1] as ours does,
and a model built without GTA carries learned 2-D position embeddings (``pemb_x``, ``pemb_c``),
which our image model does not have: such checkpoints are refused.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from akorn.engine.checkpoint import safe_torch_load
from akorn.errors import UserError
from akorn.experiments.authors_layout import ATTENTION_KEYS, attention, check_keys, check_shapes, model_state_dict

WHAT = "the authors' object-discovery AKOrN (patch embedding, Kuramoto layers with readouts, SimCLR head)"


def convert(sd: dict, image_size: int = 0) -> tuple[dict, dict]:
    """Their state dict -> ours, and the config fields read off the shapes. ``image_size`` is needed
    only for a conv-coupled model (an attention model's GTA matrices give the grid)."""
    if "pemb_x" in sd or "pemb_c" in sd:
        raise UserError(f"not {WHAT} with GTA: it has position embeddings (pemb_x, pemb_c), built with gta=False")
    for key in ("patchfy.1.weight", "layers.0.1.invconv.weight", "gamma"):
        if key not in sd:
            check_keys(sd, {key}, WHAT)
    L = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k)))
    C, _, patch, _ = sd["patchfy.1.weight"].shape
    n = max(1, sd["layers.0.1.invconv.weight"].shape[0] // C)
    attn = "layers.0.0.connectivity.W_qkv.weight" in sd
    omega_shape = tuple(sd["layers.0.0.omg.omg_param"].shape) if "layers.0.0.omg.omg_param" in sd else None
    omega = {None: "identity", (2,): "global", (C // 2, 2): "per_pair"}.get(omega_shape)
    c_norm = "gn" if "layers.0.0.c_norm.weight" in sd else "none"
    check_keys(sd, _expected_keys(L, attn, omega, c_norm), WHAT)
    if omega is None:
        raise UserError(f"not {WHAT}: omg_param has shape {omega_shape}")
    if attn:
        units, half = sd["layers.0.0.connectivity.mat_q"].shape[:2]
        side = math.isqrt(units)
        if side * side != units or C % (2 * half):
            raise UserError(f"shapes do not fit {WHAT}: GTA matrices of {units} units, head size {2 * half}")
        heads, kernel, image = C // (2 * half), 1, side * patch
    else:
        heads, kernel = 1, sd["layers.0.0.connectivity.weight"].shape[-1]
        if image_size < 1:
            raise UserError("a conv-coupled checkpoint does not say its image size: give --image-size")
        image = image_size
    expect = {"gamma": (1,), "out.3.weight": (4 * C, C), "out.5.weight": (C, 4 * C)}
    for layer in range(L):
        expect[f"layers.{layer}.1.invconv.weight"] = (C * n, C, 1, 1)
        if attn:
            expect[f"layers.{layer}.0.connectivity.W_qkv.weight"] = (3 * C, C, 1, 1)
        else:
            expect[f"layers.{layer}.0.connectivity.weight"] = (C, C, kernel, kernel)
    check_shapes(sd, expect, WHAT)

    ours = _our_state_dict(sd, L, attn, omega, c_norm, C, heads)
    fields = dict(channels=C, n=n, patch=patch, layers=L, heads=heads, kernel_size=kernel, image_size=image)
    fields.update(coupling="attn" if attn else "conv", omega=omega, c_norm=c_norm, gamma=float(sd["gamma"]))
    return ours, fields


def _expected_keys(L: int, attn: bool, omega: str | None, c_norm: str) -> set[str]:
    """Every key a checkpoint of this architecture holds."""
    expected = {
        "gamma",
        "patchfy.1.weight",
        "patchfy.1.bias",
        "out.3.weight",
        "out.3.bias",
        "out.5.weight",
        "out.5.bias",
    }
    for layer in range(L):
        k = f"layers.{layer}.0"
        if attn:
            expected |= {f"{k}.connectivity.{a}" for a in ATTENTION_KEYS}
        else:
            expected |= {f"{k}.connectivity.weight", f"{k}.connectivity.bias"}
        if omega != "identity":
            expected.add(f"{k}.omg.omg_param")
        if c_norm == "gn":
            expected |= {f"{k}.c_norm.weight", f"{k}.c_norm.bias"}
        expected |= {f"layers.{layer}.1.invconv.weight", f"layers.{layer}.1.invconv.bias", f"layers.{layer}.1.bias"}
    return expected


def _our_state_dict(sd: dict, L: int, attn: bool, omega: str, c_norm: str, C: int, heads: int) -> dict:
    """Their tensors under our names."""
    ours = {"embed.proj.weight": sd["patchfy.1.weight"].clone(), "embed.proj.bias": sd["patchfy.1.bias"].clone()}
    for layer in range(L):
        theirs, mine = f"layers.{layer}.0", f"layers.{layer}"
        if attn:
            ours.update(attention(sd, f"{theirs}.connectivity", f"{mine}.coupling", C, heads))
        else:
            ours[f"{mine}.coupling.conv.weight"] = sd[f"{theirs}.connectivity.weight"].clone()
            ours[f"{mine}.coupling.conv.bias"] = sd[f"{theirs}.connectivity.bias"].clone()
        if omega != "identity":
            ours[f"{mine}.omega_param"] = sd[f"{theirs}.omg.omg_param"].clone()
        if c_norm == "gn":
            ours[f"{mine}.c_norm.weight"] = sd[f"{theirs}.c_norm.weight"].clone()
            ours[f"{mine}.c_norm.bias"] = sd[f"{theirs}.c_norm.bias"].clone()
        ours[f"{mine}.gamma"] = sd["gamma"].reshape(()).clone()
        ours[f"readouts.{layer}.proj.weight"] = sd[f"layers.{layer}.1.invconv.weight"].clone()
        ours[f"readouts.{layer}.proj.bias"] = sd[f"layers.{layer}.1.invconv.bias"].clone()
        ours[f"readouts.{layer}.bias"] = sd[f"layers.{layer}.1.bias"].clone()
    for theirs, mine in (("out.3", "head.mlp.0"), ("out.5", "head.mlp.2")):
        ours[f"{mine}.weight"] = sd[f"{theirs}.weight"].clone()
        ours[f"{mine}.bias"] = sd[f"{theirs}.bias"].clone()
    return ours


def load_authors_checkpoint(path: str | Path, image_size: int = 0) -> tuple[dict, dict]:
    """Our state dict and config fields from an object-discovery checkpoint file of theirs."""
    return convert(model_state_dict(safe_torch_load(Path(path)), WHAT), image_size)
