"""What checkpoints of the authors' code (github.com/autonomousvision/akorn) share, whatever the model.

Their training scripts save ``ema_<epoch>.pth``: ``{"epoch", "model_state_dict"}`` holding an
``ema_pytorch.EMA`` state dict (``ema_model.*``, ``online_model.*``, ``initted``, ``step``); at the end
``model.pth`` / ``ema_model.pth``. Their attention splits the q, k, v and output channels of each
head as ``(c nh)`` (channel ``c * heads + h``) where ours are head-major (``h * head_dim + c``), and
its projections are 1x1 convolutions. Files are read with ``torch.load(weights_only=True)``: a
pickle that holds code is refused and nothing in it runs.
"""

from __future__ import annotations

import torch

from akorn.errors import UserError


def model_state_dict(obj, what: str) -> dict:
    """The model's weights inside whatever their scripts saved: an ``ema_*.pth`` (the EMA's weights),
    a ``{"model_state_dict": ...}`` checkpoint, or a plain state dict."""
    if isinstance(obj, dict) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        raise UserError(f"not a state dict of {what} (no model_state_dict, no parameter names)")
    if any(k.startswith("ema_model.") for k in obj):
        obj = {k.removeprefix("ema_model."): v for k, v in obj.items() if k.startswith("ema_model.")}
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f"not a state dict: {bad[0]!r} is not a tensor")
    return obj


def check_keys(sd: dict, expected: set, what: str):
    """A one-line error naming the missing and unexpected keys, if any."""
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
    if not (missing or unexpected):
        return
    parts = []
    for name, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
            parts.append(f"{name} {', '.join(keys[:4])}{more}")
    raise UserError(f"not {what}: " + "; ".join(parts))


def check_shapes(sd: dict, expect: dict, what: str):
    wrong = [f"{k} {tuple(sd[k].shape)} (expected {v})" for k, v in expect.items() if tuple(sd[k].shape) != v]
    if wrong:
        raise UserError(f"shapes do not fit {what}: " + "; ".join(wrong[:3]))


def head_major(n_heads: int, head_dim: int) -> torch.Tensor:
    """Positions in their ``(c nh)`` order of our head-major channels: ``ours[i] = theirs[perm[i]]``."""
    h = torch.arange(n_heads).repeat_interleave(head_dim)
    c = torch.arange(head_dim).repeat(n_heads)
    return c * n_heads + h


def attention(sd: dict, theirs: str, ours: str, channels: int, heads: int) -> dict:
    """Their ``Attention`` at ``theirs`` (W_qkv, W_o, GTA matrices) as our ``AttentionCoupling`` at ``ours``."""
    perm = head_major(heads, channels // heads)
    rows = torch.cat([perm + i * channels for i in range(3)])
    out = {
        f"{ours}.qkv.weight": sd[f"{theirs}.W_qkv.weight"].flatten(1)[rows].clone(),
        f"{ours}.qkv.bias": sd[f"{theirs}.W_qkv.bias"][rows].clone(),
        f"{ours}.out.weight": sd[f"{theirs}.W_o.weight"].flatten(1)[:, perm].clone(),
        f"{ours}.out.bias": sd[f"{theirs}.W_o.bias"].clone(),
    }
    for m in "qkvo":
        if f"{theirs}.mat_{m}" in sd:  # clone: on a CPU their q, k and v matrices share one storage
            out[f"{ours}.gta.mat_{m}"] = sd[f"{theirs}.mat_{m}"].clone()
    return out


def attention_to_authors(sd: dict, ours: str, theirs: str, channels: int, heads: int) -> dict:
    """The inverse of :func:`attention`: our ``AttentionCoupling`` at ``ours`` in their layout at ``theirs``."""
    to_theirs = torch.argsort(head_major(heads, channels // heads))
    rows = torch.cat([to_theirs + i * channels for i in range(3)])
    out = {
        f"{theirs}.W_qkv.weight": sd[f"{ours}.qkv.weight"][rows][:, :, None, None].clone(),
        f"{theirs}.W_qkv.bias": sd[f"{ours}.qkv.bias"][rows].clone(),
        f"{theirs}.W_o.weight": sd[f"{ours}.out.weight"][:, to_theirs][:, :, None, None].clone(),
        f"{theirs}.W_o.bias": sd[f"{ours}.out.bias"].clone(),
    }
    for m in "qkvo":
        if f"{ours}.gta.mat_{m}" in sd:
            out[f"{theirs}.mat_{m}"] = sd[f"{ours}.gta.mat_{m}"].clone()
    return out


ATTENTION_KEYS = ("W_qkv.weight", "W_qkv.bias", "W_o.weight", "W_o.bias", "mat_q", "mat_k", "mat_v", "mat_o")
