"""Readout: from oscillator states to rotation-invariant features.

``conv (1x1 or kxk) -> C_out groups of N' channels -> L2 norm of every group -> + bias``.
The norm makes the readout invariant to the common rotation of a synchronised group.

Shape letters: B batch, C channels, N oscillator dimension, O = C/N oscillators, H, W image grid.
"""

from __future__ import annotations

import torch
from torch import nn

from akorn.core.oscillators import clamped_norm

# sqrt of the smallest normal float32: the norm's value where all N' entries are 0, where its gradient is 0
_TINY = torch.finfo(torch.float32).tiny ** 0.5


class Readout(nn.Module):
    """``||W x||_{N'-groups} + b``: ``(B, C_in, H, W) -> (B, C_out, H, W)`` or tokens ``(B, L, C_in) -> (B, L, C_out)``.

    Token input needs ``kernel_size=1``.
    """

    def __init__(self, in_channels: int, out_channels: int, group: int = 4, kernel_size: int = 1):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        if group < 1:
            raise ValueError(f"group (N') must be positive, got {group}")
        self.in_channels, self.out_channels, self.group, self.kernel_size = (
            in_channels,
            out_channels,
            group,
            kernel_size,
        )
        self.proj = nn.Conv2d(in_channels, out_channels * group, kernel_size, padding=kernel_size // 2)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            if x.shape[1] != self.in_channels:
                raise ValueError(f"Readout expects {self.in_channels} channels in dim 1, got shape {tuple(x.shape)}")
            z = self.proj(x).unflatten(1, (self.out_channels, self.group))
            return clamped_norm(z, 2, _TINY).squeeze(2) + self.bias[:, None, None]
        if x.ndim == 3:
            if x.shape[-1] != self.in_channels:
                raise ValueError(f"Readout expects {self.in_channels} channels in dim 2, got shape {tuple(x.shape)}")
            if self.kernel_size != 1:
                raise ValueError("a Readout with kernel_size > 1 needs image input (B, C, H, W)")
            w = self.proj.weight.flatten(1)
            z = nn.functional.linear(x, w, self.proj.bias).unflatten(-1, (self.out_channels, self.group))
            return clamped_norm(z, -1, _TINY).squeeze(-1) + self.bias
        raise ValueError(f"Readout takes (B, C, H, W) or (B, L, C), got shape {tuple(x.shape)}")
