"""Geometric transform attention (GTA): learnable per-unit 2x2 blocks on channel pairs.

Each unit (grid cell or sequence position) owns one 2x2 matrix per channel pair
of an attention head (shared by all heads). At initialisation the blocks are the
rotations of a rotary embedding: for a 2-D grid, pairs alternate between the row
and the column coordinate, with frequencies ``base^(-f/F)``, ``F = ceil(head_dim/4)``;
for a 1-D sequence, frequencies ``base^(-2f/head_dim)``. The blocks are applied as
elementwise pair multiplies, never as dense matrices.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from akorn.oscillators import swap_channel_pairs


def grid_coordinates(height: int, width: int) -> torch.Tensor:
    """(row, col) of every cell of a ``height x width`` grid, row-major: ``(H*W, 2)``."""
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    return torch.stack((rows.flatten(), cols.flatten()), dim=-1)


def rotary_angles(grid: tuple[int, ...], head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """Rotary angles ``(units, head_dim/2)`` for a 2-D grid ``(H, W)`` or a sequence ``(L,)``."""
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for rotary blocks, got {head_dim}")
    pairs = head_dim // 2
    if len(grid) == 2:
        nfreq = -(-head_dim // 4)  # ceil: one pair per frequency per coordinate
        freqs = base ** (-torch.arange(nfreq, dtype=torch.float64) / nfreq)
        coords = grid_coordinates(*grid)  # (U, 2)
        # (U, F, 2): for each frequency, row angle then column angle
        angles = coords[:, None, :] * freqs[None, :, None]
        return angles.flatten(1)[:, :pairs]
    if len(grid) == 1:
        freqs = base ** (-2.0 * torch.arange(pairs, dtype=torch.float64) / head_dim)
        pos = torch.arange(grid[0], dtype=torch.float64)
        return pos[:, None] * freqs[None, :]
    raise ValueError(f"grid must be (H, W) or (L,), got {tuple(grid)}")


def rotation_blocks(angles: torch.Tensor) -> torch.Tensor:
    """2x2 rotation matrices ``[[cos, -sin], [sin, cos]]`` for every angle: ``(..., 2, 2)``."""
    cos, sin = angles.cos(), angles.sin()
    return torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)


def pair_coefficients(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``(..., D/2, 2, 2)`` blocks into the diagonal ``a`` and off-diagonal ``b``, each ``(..., D)``.

    With them ``M @ (x0, x1) = a * x + b * swap_channel_pairs(x)``: two fused multiplies over the
    tensor instead of a strided gather per matrix entry, which is what makes GTA cheap in eager mode.
    """
    a = torch.stack((blocks[..., 0, 0], blocks[..., 1, 1]), -1).flatten(-2)
    b = torch.stack((blocks[..., 0, 1], blocks[..., 1, 0]), -1).flatten(-2)
    return a, b


def halves_order(head_dim: int) -> torch.Tensor:
    """Channel order that puts the first element of every pair in the first half of the head
    and the second in the second half: ``[0, 2, 4, .., 1, 3, 5, ..]``.

    In that order a pair's partner sits ``D/2`` channels away, so swapping partners moves two
    contiguous halves, which vectorises, instead of gathering every other channel.
    """
    return torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))


def half_pair_coefficients(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`pair_coefficients` for channels in :func:`halves_order`: ``M @ pair = a * x + b * swap_halves(x)``."""
    a = torch.cat((blocks[..., 0, 0], blocks[..., 1, 1]), -1)
    b = torch.cat((blocks[..., 0, 1], blocks[..., 1, 0]), -1)
    return a, b


def swap_halves(x: torch.Tensor) -> torch.Tensor:
    """Swap the two halves of the last axis: every pair's partner in :func:`halves_order`."""
    return x.unflatten(-1, (2, -1)).flip(-2).flatten(-2)


def partner_views(t: torch.Tensor, order: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first and second members of every channel pair on the last axis, as views:
    the two halves in :func:`halves_order`, every other channel in interleaved order."""
    if order == "halves":
        return t.unflatten(-1, (2, -1)).unbind(-2)
    return t.unflatten(-1, (-1, 2)).unbind(-1)


def _pair_multiply(x, a, b, order: str) -> torch.Tensor:
    """``a * x + b * swap(x)`` as a multiply and two half-size multiply-adds into views, so that
    the swapped copy of ``x`` is never materialised."""
    out = x * a
    (o0, o1), (x0, x1), (b0, b1) = (partner_views(t, order) for t in (out, x, b))
    o0.addcmul_(x1, b0)
    o1.addcmul_(x0, b1)
    return out


class _PairTransform(torch.autograd.Function):
    """``a * x + b * swap(x)``, keeping only ``x`` for the backward (autograd over the expression
    also keeps ``swap(x)``, for the gradient of ``b``: 47 MB per step on q, k, v at the Sudoku size)."""

    @staticmethod
    def forward(ctx, x, a, b, order: str):
        ctx.order = order
        ctx.save_for_backward(x, a, b)
        return _pair_multiply(x, a, b, order)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, a, b = ctx.saved_tensors
        order = ctx.order
        gx = ga = gb = None
        if ctx.needs_input_grad[0]:
            # out_i = a_i x_i + b_i x_p(i) with p the pairing: gx_j = a_j g_j + b_p(j) g_p(j)
            gx = _pair_multiply(g, a, swap_partners(b, order), order)
        if ctx.needs_input_grad[1]:
            ga = (g * x).sum_to_size(a.shape)
        if ctx.needs_input_grad[2]:
            (g0, g1), (x0, x1), (b0, b1) = (partner_views(t, order) for t in (g, x, b))
            gb = torch.stack(((g0 * x1).sum_to_size(b0.shape), (g1 * x0).sum_to_size(b1.shape)),
                             -2 if order == "halves" else -1).flatten(-2)
        return gx, ga, gb, None


def swap_partners(t: torch.Tensor, order: str) -> torch.Tensor:
    """Exchange the members of every channel pair on the last axis (``order``: see :func:`partner_views`)."""
    return swap_halves(t) if order == "halves" else swap_channel_pairs(t, -1)


def pair_transform(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, order: str) -> torch.Tensor:
    """``a * x + b * swap(x)``: the 2x2 pair blocks of GTA and rope applied with their coefficients
    (:func:`pair_coefficients` for ``order="interleaved"``, :func:`half_pair_coefficients` for
    ``"halves"``), ``a`` and ``b`` broadcasting against ``x``.

    Under ``torch.compile``, the plain expression, which inductor fuses into one pass. In eager
    mode, multiply-adds into views of the pair members (no swapped copy) and, with gradients, a
    function that saves only ``x``.
    """
    if torch.compiler.is_compiling():
        return torch.addcmul(x * a, swap_partners(x, order), b)
    if not torch.is_grad_enabled():
        return _pair_multiply(x, a, b, order)
    return _PairTransform.apply(x, a, b, order)


def apply_pair_blocks(blocks: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Multiply every channel pair of ``x`` by its unit's 2x2 block.

    blocks: ``(U, D/2, 2, 2)``; x: ``(..., U, D)``. Returns ``M @ pair`` for every pair.
    """
    a, b = pair_coefficients(blocks.to(x.dtype))
    return pair_transform(x, a, b, "interleaved")


class GTA(nn.Module):
    """Learnable per-unit 2x2 blocks for q, k, v and (transposed) for the attention output."""

    def __init__(self, grid: tuple[int, ...], head_dim: int, base: float = 10000.0, learnable: bool = True):
        super().__init__()
        self.grid = tuple(int(g) for g in grid)
        self.units = math.prod(self.grid)
        blocks = rotation_blocks(rotary_angles(self.grid, head_dim, base)).float()  # (U, D/2, 2, 2)
        for name, init in (("q", blocks), ("k", blocks), ("v", blocks), ("o", blocks.transpose(-1, -2))):
            p = nn.Parameter(init.clone(), requires_grad=learnable)
            self.register_parameter(f"mat_{name}", p)

    def extra_repr(self) -> str:
        return f"grid={self.grid}"
