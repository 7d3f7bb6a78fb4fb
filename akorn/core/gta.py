"""Geometric transform attention (GTA): learnable per-unit 2x2 blocks on channel pairs.

Each unit (grid cell or sequence position) owns one 2x2 matrix per channel pair
of an attention head (shared by all heads). At initialisation the blocks are the
rotations of a rotary embedding: for a 2-D grid, pairs alternate between the row
and the column coordinate, with frequencies ``base^(-f/F)``, ``F = ceil(head_dim/4)``;
for a 1-D sequence, frequencies ``base^(-2f/head_dim)``. The blocks are applied as
elementwise pair multiplies, never as dense matrices.

Shape letters: U units (grid positions), D head channels, P = D/2 channel pairs, h heads.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from akorn.core.oscillators import swap_pairs


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

    With them ``M @ (x0, x1) = a * x + b * swap_pairs(x)``: two fused multiplies over the
    tensor instead of a strided gather per matrix entry, which is what makes GTA cheap in eager mode.
    """
    a = torch.stack((blocks[..., 0, 0], blocks[..., 1, 1]), -1).flatten(-2)
    b = torch.stack((blocks[..., 0, 1], blocks[..., 1, 0]), -1).flatten(-2)
    return a, b


def apply_pair_blocks(blocks: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Multiply every channel pair of ``x`` by its unit's 2x2 block.

    blocks: ``(U, D/2, 2, 2)``; x: ``(..., U, D)``. Returns ``M @ pair`` for every pair.
    """
    a, b = pair_coefficients(blocks.to(x.dtype))
    return a * x + b * swap_pairs(x, -1)


class GTA(nn.Module):
    """Learnable per-unit 2x2 blocks for q, k, v and (transposed) for the attention output."""

    def __init__(self, grid: tuple[int, ...], head_dim: int, base: float = 10000.0, learnable: bool = True):
        super().__init__()
        self.grid = tuple(int(g) for g in grid)
        self.units = math.prod(self.grid)
        blocks = rotation_blocks(rotary_angles(self.grid, head_dim, base)).to(
            torch.get_default_dtype()
        )  # (U, D/2, 2, 2)
        for name, init in (("q", blocks), ("k", blocks), ("v", blocks), ("o", blocks.transpose(-1, -2))):
            p = nn.Parameter(init.clone(), requires_grad=learnable)
            self.register_parameter(f"mat_{name}", p)

    def extra_repr(self) -> str:
        return f"grid={self.grid}"
