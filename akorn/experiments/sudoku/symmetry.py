"""Sudoku's symmetry group: relabel the digits, permute the bands, the stacks, the rows within a band
and the columns within a stack, and transpose. Every element maps a valid board to a valid board
with the same number of givens, the same number of solutions and the same difficulty."""

from __future__ import annotations

import torch


def _block_permutation(generator: torch.Generator) -> torch.Tensor:
    """A permutation of 0..8 that moves whole blocks of three and lines within them."""
    blocks = torch.randperm(3, generator=generator, device=generator.device).cpu()
    within = [torch.randperm(3, generator=generator, device=generator.device).cpu() for _ in range(3)]
    return torch.cat([3 * b + w for b, w in zip(blocks, within)])


def random_symmetries(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random elements of the group: cell sources ``(n, 81)`` (new cell i takes old cell
    ``cells[i]``) and digit maps ``(n, 10)`` (0, a blank, stays 0)."""
    cells, digits = torch.empty(n, 81, dtype=torch.long), torch.zeros(n, 10, dtype=torch.long)
    r, c = torch.arange(81) // 9, torch.arange(81) % 9
    for i in range(n):
        rows, cols = _block_permutation(generator), _block_permutation(generator)
        transpose = bool(torch.randint(2, (1,), generator=generator, device=generator.device))
        cells[i] = rows[c] * 9 + cols[r] if transpose else rows[r] * 9 + cols[c]
        digits[i, 1:] = torch.randperm(9, generator=generator, device=generator.device).cpu() + 1
    return cells, digits


def apply_symmetries(grids: torch.Tensor, cells: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
    """``grids`` ``(n, 81)`` moved by the symmetries of :func:`random_symmetries`."""
    moved = grids.long().gather(1, cells.to(grids.device))
    return digits.to(grids.device).gather(1, moved).to(grids.dtype)
