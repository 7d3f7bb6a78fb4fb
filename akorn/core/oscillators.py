"""Per-oscillator geometry: the building blocks of the Kuramoto step.

A feature tensor with ``C`` channels along ``channel_dim`` holds ``C / N``
oscillators of dimension ``N``; consecutive channels form one oscillator.
Every function here works for either layout the library uses:
images ``(B, C, H, W)`` (``channel_dim=1``) and tokens ``(B, L, C)``
(``channel_dim=-1``).

Shape letters: B batch, C channels, N oscillator dimension, O = C/N oscillators,
H, W image grid, L tokens, U units (H·W or L).
"""

from __future__ import annotations

import torch


def split_oscillators(x: torch.Tensor, n: int, channel_dim: int, planar: bool = False) -> tuple[torch.Tensor, int]:
    """View ``x`` with the channel axis split into ``(O, N)``, or ``(N, O)`` for a state in the planar
    layout (:mod:`akorn.core.fast.layout`); returns the view and the index of the length-``N`` axis."""
    cdim = channel_dim % x.ndim
    if planar:
        return x.unflatten(cdim, (n, -1)), cdim  # (.., C, ..) -> (.., N, O, ..)
    return x.unflatten(cdim, (-1, n)), cdim + 1  # (.., C, ..) -> (.., O, N, ..)


def merge_oscillators(xs: torch.Tensor, d: int, planar: bool = False) -> torch.Tensor:
    """Undo :func:`split_oscillators`: ``d`` is the index of the length-``N`` axis it returned."""
    return xs.flatten(d, d + 1) if planar else xs.flatten(d - 1, d)


SWAP_ORDERS = ("interleaved", "halves", "planar")


def pair_view(x: torch.Tensor, channel_dim: int, order: str, n: int | None = None) -> tuple[torch.Tensor, int]:
    """View ``x`` with its channel pairs on an axis of length 2; returns the view and that axis.

    ``order`` says where a channel's partner is: ``"interleaved"``, the next channel (pairs
    ``(2i, 2i+1)`` as stored); ``"halves"``, ``C/2`` channels away (the first members of all pairs,
    then the second members); ``"planar"``, ``C/N`` channels away within each half of the
    oscillator components (the planar state layout, which needs ``n``).
    """
    cdim = channel_dim % x.ndim
    if order == "interleaved":
        return x.unflatten(cdim, (-1, 2)), cdim + 1  # (.., C, ..) -> (.., C/2, 2, ..)
    if order == "halves":
        return x.unflatten(cdim, (2, -1)), cdim  # (.., C, ..) -> (.., 2, C/2, ..)
    if order == "planar":
        if n is None:
            raise ValueError("order='planar' needs the oscillator dimension n")
        return x.unflatten(cdim, (n // 2, 2, -1)), cdim + 1  # (.., C, ..) -> (.., N/2, 2, O, ..)
    raise ValueError(f"order must be one of {SWAP_ORDERS}, got {order!r}")


def swap_pairs(x: torch.Tensor, channel_dim: int = 1, order: str = "interleaved", n: int | None = None) -> torch.Tensor:
    """``(a, b) -> (b, a)`` for every channel pair along ``channel_dim``, pairs placed as ``order``
    says (see :func:`pair_view`)."""
    xs, d = pair_view(x, channel_dim, order, n)
    return xs.flip(d).reshape(x.shape)


def clamped_norm(xs: torch.Tensor, dim: int, eps: float) -> torch.Tensor:
    """``xs.norm(dim=dim, keepdim=True).clamp_min(eps)`` as ``sqrt(max(Σ x², eps²))``, computed in float32 or wider.

    Same values and gradients (zero below ``eps``), but eager ``vector_norm`` over an axis that is
    not the last one runs 10-20x slower on a CPU than this sum, and that is the oscillator axis
    of every image-layout state and readout.
    """
    if xs.dtype in (torch.float16, torch.bfloat16):
        xs = xs.float()
    return xs.square().sum(dim, keepdim=True).clamp_min(eps * eps).sqrt()


def normalize(x: torch.Tensor, n: int, channel_dim: int = 1, eps: float = 1e-12) -> torch.Tensor:
    """Rescale every N-vector to unit length (``normalize_N`` in the equations)."""
    xs, d = split_oscillators(x, n, channel_dim)
    return (xs / clamped_norm(xs, d, eps).to(xs.dtype)).flatten(d - 1, d)


def inner(x: torch.Tensor, y: torch.Tensor, n: int, channel_dim: int = 1) -> torch.Tensor:
    """``<x, y>`` inside every oscillator; the N axis is kept with size 1."""
    xs, d = split_oscillators(x, n, channel_dim)
    ys, _ = split_oscillators(y, n, channel_dim)
    return (xs * ys).sum(d, keepdim=True)


def project_tangent(y: torch.Tensor, x: torch.Tensor, n: int, channel_dim: int = 1) -> torch.Tensor:
    """``Proj_x(y) = y - <y, x> x`` for every oscillator (x on the sphere)."""
    xs, d = split_oscillators(x, n, channel_dim)
    ys, _ = split_oscillators(y, n, channel_dim)
    return (ys - (xs * ys).sum(d, keepdim=True) * xs).flatten(d - 1, d)


def rotation_coefficients(omega: torch.Tensor, x: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
    """``w`` with ``Ω x = w * swap_pairs(x)``: ``(ω, -ω)`` per pair, shaped to broadcast against ``x``.

    ``omega`` is a scalar (one frequency for the layer) or has ``C/2`` entries (one per channel pair).
    """
    cdim = channel_dim % x.ndim
    C = x.shape[cdim]
    om = omega.reshape(-1, 1)
    w = torch.cat((om, -om), 1).expand(C // 2, 2)  # built on omega's device: no host tensor per step
    shape = [1] * x.ndim
    shape[cdim] = C
    return w.reshape(shape).to(x.dtype)


def rotate_pairs(x: torch.Tensor, omega: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
    """Apply the antisymmetric generator Ω: ``(a, b) -> (ω b, -ω a)`` on channel pairs.

    ``omega`` is a scalar (one frequency for the layer) or has ``C/2`` entries
    (one frequency per channel pair).
    """
    return rotation_coefficients(omega, x, channel_dim) * swap_pairs(x, channel_dim)


def order_parameter(x: torch.Tensor, n: int, channel_dim: int = 1, dims=None) -> torch.Tensor:
    """Mean resultant length of oscillators: 1 when all in a group point the same way.

    Averages the unit N-vectors over ``dims`` (default: every unit, i.e. all
    axes other than batch, oscillator index and N) and returns the length of
    the mean, averaged over oscillator index.
    """
    xs, d = split_oscillators(x, n, channel_dim)
    if dims is None:
        dims = tuple(i for i in range(1, xs.ndim) if i not in (d - 1, d))
    r = xs.mean(dim=dims, keepdim=True).norm(dim=d)
    return r.mean(dim=tuple(range(1, r.ndim)))
