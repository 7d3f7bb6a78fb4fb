"""The equations of AKOrN, written plainly: the reference every fast path is tested against.

For the oscillator ``x_i`` (a unit N-vector) at every unit ``i``::

    y_i      = (J x)_i + c_i                                 # coupling plus stimulus
    x_i     <- normalize( x_i + γ (Ω x_i + Proj_{x_i}(y_i)) )  # one Kuramoto step
    Proj_x(y) = y - <y, x> x                                  # tangent projection

Two energies, not to be confused:

* the **voting energy** ``E(x) = -Σ_i <x_i, (J x)_i + c_i>``: what the paper's energy voting ranks
  trajectories by, recorded by the reference code at every step;
* the **Lyapunov energy** ``L(x) = -½ Σ_ij <x_i, W_ij x_j> - Σ_i <x_i, b_i + c_i>`` for a coupling
  ``J x = W x + b``: for a symmetric ``W`` and Ω = 0 it does not rise along the continuous
  dynamics ``dx/dt = Proj_x(y)``.

Everything here works on units ``(B, U, C)`` (tokens; images flattened to ``U = H·W`` units) with
dense matrices: a dense antisymmetric Ω, dense per-unit GTA blocks, attention written as softmax
of scores. It reads the parameters of an :class:`akorn.KuramotoLayer` and shares none of its code.

Shape letters: B batch, U units, C channels, N oscillator dimension, O = C/N oscillators, h heads,
d head channels, T steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def oscillators(x: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, U, C)`` -> ``(B, U, C/N, N)``: consecutive channels form one oscillator."""
    return x.reshape(*x.shape[:-1], x.shape[-1] // n, n)


def normalize(x: torch.Tensor, n: int) -> torch.Tensor:
    """Every N-vector rescaled to unit length."""
    xs = oscillators(x, n)
    return (xs / torch.sqrt((xs * xs).sum(-1, keepdim=True))).reshape(x.shape)


def tangent_projection(y: torch.Tensor, x: torch.Tensor, n: int) -> torch.Tensor:
    """``Proj_x(y) = y - <y, x> x`` in every oscillator."""
    xs, ys = oscillators(x, n), oscillators(y, n)
    return (ys - (xs * ys).sum(-1, keepdim=True) * xs).reshape(x.shape)


def kuramoto_step(
    x: torch.Tensor, y: torch.Tensor, omega: torch.Tensor | None, gamma, n: int, identity: bool = False
) -> torch.Tensor:
    """``normalize(x + γ (Ω x + Proj_x(y)))``. ``omega``: the dense ``(C, C)`` Ω or None (Ω = 0);
    ``identity``: the reference code's identity in Ω's place (a layer built without Ω)."""
    drift = tangent_projection(y, x, n)
    if omega is not None:
        drift = drift + x @ omega.T
    elif identity:
        drift = drift + x
    return normalize(x + gamma * drift, n)


def voting_energy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``E(x) = -Σ <x, y>`` per sample, with ``y = J x + c``."""
    return -(x * y).flatten(1).sum(1)


def lyapunov_energy(x: torch.Tensor, Wx: torch.Tensor, b_plus_c: torch.Tensor) -> torch.Tensor:
    """``L(x) = -½ Σ <x, W x> - Σ <x, b + c>`` per sample."""
    return -(0.5 * (x * Wx) + x * b_plus_c).flatten(1).sum(1)


def omega_matrix(layer) -> torch.Tensor | None:
    """The ``(C, C)`` block-diagonal antisymmetric Ω with ``(a, b) -> (ω b, -ω a)`` on channel pairs."""
    if layer.omega_kind not in ("global", "per_pair"):
        return None
    C = layer.channels
    w = layer.omega()
    w = w.expand(C // 2) if w.ndim == 0 else w
    om = torch.zeros(C, C, dtype=w.dtype)
    for p in range(C // 2):
        om[2 * p, 2 * p + 1] = w[p]
        om[2 * p + 1, 2 * p] = -w[p]
    return om


def block_diagonal(blocks: torch.Tensor) -> torch.Tensor:
    """``(U, D/2, 2, 2)`` pair blocks -> ``(U, D, D)`` block-diagonal matrices."""
    U, P = blocks.shape[:2]
    out = torch.zeros(U, 2 * P, 2 * P, dtype=blocks.dtype)
    for p in range(P):
        out[:, 2 * p : 2 * p + 2, 2 * p : 2 * p + 2] = blocks[:, p]
    return out


def attention_coupling(att, x: torch.Tensor) -> torch.Tensor:
    """``J x`` of an attention coupling on ``(B, L, C)``: ``W_o T_oᵀ softmax((T_q q)(T_k k)ᵀ/√d) (T_v v)``
    per head, with dense GTA matrices ``T`` (or none)."""
    B, L, C = x.shape
    h, d = att.heads, att.head_dim
    qkv = x @ att.qkv.weight.T + att.qkv.bias
    q, k, v = (t.reshape(B, L, h, d) for t in (qkv[..., :C], qkv[..., C : 2 * C], qkv[..., 2 * C :]))
    if att.positions == "gta":
        mq, mk, mv, mo = (block_diagonal(getattr(att.gta, f"mat_{m}").to(x.dtype)) for m in "qkvo")
        q, k, v = (torch.einsum("lij,blhj->blhi", m, t) for m, t in ((mq, q), (mk, k), (mv, v)))
    elif att.positions == "rope":
        rope = block_diagonal(att.rope.to(x.dtype))
        q, k = (torch.einsum("lij,blhj->blhi", rope, t) for t in (q, k))
    scores = torch.einsum("blhd,bmhd->bhlm", q, k) / d**0.5
    o = torch.einsum("bhlm,bmhd->blhd", scores.softmax(-1), v)
    if att.positions == "gta":
        o = torch.einsum("lij,blhj->blhi", mo, o)
    return o.reshape(B, L, C) @ att.out.weight.T + att.out.bias


def coupling(layer, x: torch.Tensor, spatial: tuple[int, ...] | None = None) -> torch.Tensor:
    """``J x`` on units ``(B, U, C)``; ``spatial``: the ``(H, W)`` or ``(L,)`` a conv coupling runs over."""
    cp = layer.coupling
    if cp.layout == "tokens":
        return attention_coupling(cp, x)
    conv = cp.conv
    img = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *spatial)
    conv_fn = F.conv2d if len(spatial) == 2 else F.conv1d
    return conv_fn(img, conv.weight, conv.bias, padding=conv.padding).flatten(2).transpose(1, 2)


def run(layer, x: torch.Tensor, c: torch.Tensor, steps: int):
    """States ``x_0 .. x_T`` and voting energies ``E(x_0) .. E(x_T)`` ``(B, T+1)`` of ``layer`` from ``x``
    with stimulus ``c``, both in the layer's input layout (images ``(B, C, H, W)`` for a conv
    coupling over a grid, tokens ``(B, L, C)`` otherwise)."""
    n = layer.n
    images = layer.coupling.layout == "channels_first" and x.ndim == 4
    spatial = tuple(x.shape[2:]) if images else (x.shape[1],)

    def units(t):
        return t.flatten(2).transpose(1, 2) if images else t

    def back(t):
        return t.transpose(1, 2).reshape(x.shape) if images else t

    if layer.c_norm is not None:
        gn = layer.c_norm
        cu = units(c) if images else c
        c = back(F.group_norm(cu.transpose(1, 2), gn.num_groups, gn.weight, gn.bias, gn.eps).transpose(1, 2))
    omega = omega_matrix(layer)
    omega = None if omega is None else omega.to(x.dtype)
    gamma = layer.gamma.to(x.dtype)
    xu, cu = normalize(units(x), n), units(c)
    states, energies = [xu], []
    for t in range(steps + 1):
        y = coupling(layer, xu, spatial) + cu
        energies.append(voting_energy(xu, y))
        if t == steps:
            break
        xu = kuramoto_step(xu, y, omega, gamma, n, identity=layer.omega_kind == "identity")
        states.append(xu)
    return [back(s) for s in states], torch.stack(energies, 1)
