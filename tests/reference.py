"""A plain implementation of the Kuramoto layer written straight from the equations.

It is the correctness oracle for the fast path: dense per-unit GTA matrices, a dense
antisymmetric Ω, explicit per-oscillator loops over nothing clever. It reads the
parameters of an :class:`akorn.KuramotoLayer` but shares none of its code paths.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def dense_omega(layer) -> torch.Tensor | None:
    """The (C, C) block-diagonal antisymmetric matrix Ω with (a, b) -> (ω b, -ω a)."""
    C = layer.channels
    if layer.omega_kind not in ("global", "per_pair"):
        return None
    w = layer.omega()
    w = w.expand(C // 2) if w.ndim == 0 else w
    om = torch.zeros(C, C, dtype=w.dtype)
    for p in range(C // 2):
        om[2 * p, 2 * p + 1] = w[p]
        om[2 * p + 1, 2 * p] = -w[p]
    return om


def dense_blocks(mats: torch.Tensor) -> torch.Tensor:
    """(U, D/2, 2, 2) pair blocks -> (U, D, D) block-diagonal matrices."""
    U, P = mats.shape[:2]
    out = torch.zeros(U, 2 * P, 2 * P, dtype=mats.dtype)
    for p in range(P):
        out[:, 2 * p : 2 * p + 2, 2 * p : 2 * p + 2] = mats[:, p]
    return out


def reference_attention(att, x: torch.Tensor) -> torch.Tensor:
    """J(x) for tokens (B, L, C): softmax(q k^T / sqrt(d)) v with dense GTA matrices."""
    B, L, C = x.shape
    h, d = att.heads, att.head_dim
    qkv = x @ att.qkv.weight.T + att.qkv.bias
    q, k, v = qkv[..., :C], qkv[..., C : 2 * C], qkv[..., 2 * C :]
    q, k, v = (t.reshape(B, L, h, d) for t in (q, k, v))
    if att.positions == "gta":
        mq, mk, mv, mo = (dense_blocks(getattr(att.gta, f"mat_{n}").to(x.dtype)) for n in "qkvo")
        q = torch.einsum("lij,blhj->blhi", mq, q)
        k = torch.einsum("lij,blhj->blhi", mk, k)
        v = torch.einsum("lij,blhj->blhi", mv, v)
    scores = torch.einsum("blhd,bmhd->bhlm", q, k) / d**0.5
    o = torch.einsum("bhlm,bmhd->blhd", scores.softmax(-1), v)
    if att.positions == "gta":
        o = torch.einsum("lij,blhj->blhi", mo, o)
    return o.reshape(B, L, C) @ att.out.weight.T + att.out.bias


def reference_coupling(layer, x: torch.Tensor) -> torch.Tensor:
    """J(x) in the layer's native layout."""
    cp = layer.coupling
    if cp.layout == "tokens":
        return reference_attention(cp, x)
    conv = cp.conv
    if x.ndim == 4:
        return F.conv2d(x, conv.weight, conv.bias, padding=conv.padding)
    return F.conv1d(x, conv.weight, conv.bias, padding=conv.padding)


def reference_run(layer, x: torch.Tensor, c: torch.Tensor, steps: int):
    """States x_0..x_T and energies E(x_0..x_T) (layer given in native layout, channel axis known)."""
    n, C = layer.n, layer.channels
    tokens = layer.coupling.layout == "tokens"

    def as_units(t):  # -> (B, U, C)
        return t if tokens else t.flatten(2).transpose(1, 2)

    def from_units(t, like):
        return t if tokens else t.transpose(1, 2).reshape(like.shape)

    def norm_osc(t):  # (B, U, C) unit N-vectors
        tt = t.reshape(t.shape[0], t.shape[1], C // n, n)
        return (tt / torch.sqrt((tt * tt).sum(-1, keepdim=True))).reshape(t.shape)

    if layer.c_norm is not None:
        gn = layer.c_norm
        c = F.group_norm(c.transpose(1, 2) if tokens else c, gn.num_groups, gn.weight, gn.bias, gn.eps)
        c = c.transpose(1, 2) if tokens else c
    om = dense_omega(layer)
    om = None if om is None else om.to(x.dtype)
    gamma = layer.gamma.to(x.dtype)
    xu = norm_osc(as_units(x))
    cu = as_units(c)
    states, energies = [xu], []
    for _ in range(steps + 1):
        y = as_units(reference_coupling(layer, from_units(xu, x))) + cu
        energies.append(-(xu * y).sum(dim=(1, 2)))
        if len(states) == steps + 1:
            break
        xs = xu.reshape(*xu.shape[:2], C // n, n)
        ys = y.reshape(*y.shape[:2], C // n, n)
        proj = (ys - (xs * ys).sum(-1, keepdim=True) * xs).reshape(xu.shape)
        drift = proj
        if om is not None:
            drift = drift + xu @ om.T
        elif layer.omega_kind == "identity":
            drift = drift + xu
        xu = norm_osc(xu + gamma * drift)
        states.append(xu)
    return [from_units(s, x) for s in states], torch.stack(energies, 1)


def reference_forward(layer, x: torch.Tensor, c: torch.Tensor, steps: int) -> torch.Tensor:
    """Final state only (native layout), for timing the plain implementation."""
    n, C = layer.n, layer.channels
    tokens = layer.coupling.layout == "tokens"
    if not tokens:
        raise ValueError("reference_forward times the attention coupling (tokens layout)")
    if layer.c_norm is not None:
        gn = layer.c_norm
        c = F.group_norm(c.transpose(1, 2), gn.num_groups, gn.weight, gn.bias, gn.eps).transpose(1, 2)
    om = dense_omega(layer)
    shape = (x.shape[0], x.shape[1], C // n, n)

    def norm_osc(t):
        tt = t.reshape(shape)
        return (tt / torch.sqrt((tt * tt).sum(-1, keepdim=True))).reshape(t.shape)

    xu = norm_osc(x)
    for _ in range(steps):
        y = reference_attention(layer.coupling, xu) + c
        xs, ys = xu.reshape(shape), y.reshape(shape)
        drift = (ys - (xs * ys).sum(-1, keepdim=True) * xs).reshape(xu.shape)
        if om is not None:
            drift = drift + xu @ om.T
        xu = norm_osc(xu + layer.gamma * drift)
    return xu
