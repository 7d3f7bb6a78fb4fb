"""Stacks of Kuramoto layers and the baselines that share their scaffold (ItrSA, ItrConv, Transformer).

A stack of L layers carries the oscillator state from layer to layer and feeds each
layer the previous layer's readout as its stimulus::

    x_1 = K_1(x_0, c_0);  c_1 = R_1(x_1);  x_2 = K_2(x_1, c_1); ...  -> returns c_L (and the states)

Shape letters: B batch, C channels, H, W image grid, L tokens, T steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from akorn.core.fast import attend
from akorn.core.layer import KuramotoLayer


class KuramotoStack(nn.Module):
    """L Kuramoto layers with a readout after each: ``x`` carried over, ``c`` = previous readout.

    Returns the last readout; with ``return_states=True`` also the final state of every layer
    and, with ``return_energy=True``, every layer's energies ``(B, T+1)``.
    """

    def __init__(self, layers: Sequence[KuramotoLayer], readouts: Sequence[nn.Module]):
        super().__init__()
        if len(layers) != len(readouts) or not layers:
            raise ValueError(f"need one readout per layer, got {len(layers)} layers and {len(readouts)} readouts")
        self.layers = nn.ModuleList(layers)
        self.readouts = nn.ModuleList(readouts)

    def forward(self, x, c, steps: int | Sequence[int] | None = None, return_states=False, return_energy=False):
        steps_per = list(steps) if isinstance(steps, (list, tuple)) else [steps] * len(self.layers)
        if len(steps_per) != len(self.layers):
            raise ValueError(f"steps must be one int or one per layer ({len(self.layers)}), got {steps}")
        states, energies = [], []
        for layer, readout, T in zip(self.layers, self.readouts, steps_per):
            if return_energy:
                x, _, e = layer(x, c, steps=T, return_energy=True)
                energies.append(e)
            else:
                x = layer(x, c, steps=T)
            states.append(x)
            c = readout(x)
        if not (return_states or return_energy):
            return c
        out = (c,)
        if return_states:
            out += (states,)
        if return_energy:
            out += (energies,)
        return out


def sinusoid_2d(channels: int, height: int, width: int) -> torch.Tensor:
    """2-D sinusoidal position code ``(H*W, C)``: half the channels for columns, half for rows."""
    if channels % 4:
        raise ValueError(f"2-D sinusoids need channels divisible by 4, got {channels}")
    half = channels // 2
    div = torch.exp(torch.arange(0.0, half, 2) * -(math.log(10000.0) / half))
    pe = torch.zeros(channels, height, width)
    col = torch.arange(width, dtype=torch.float32)[:, None] * div  # (W, half/2)
    row = torch.arange(height, dtype=torch.float32)[:, None] * div
    pe[0:half:2] = col.sin().T[:, None, :].expand(-1, height, -1)
    pe[1:half:2] = col.cos().T[:, None, :].expand(-1, height, -1)
    pe[half::2] = row.sin().T[:, :, None].expand(-1, -1, width)
    pe[half + 1 :: 2] = row.cos().T[:, :, None].expand(-1, -1, width)
    return pe.flatten(1).T.contiguous()


class _TokenConv(nn.Module):
    """A ``C -> C`` convolution applied to tokens laid out on a 2-D grid."""

    def __init__(self, channels: int, kernel_size: int, grid: tuple[int, int]):
        super().__init__()
        self.grid = tuple(grid)
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x):  # (B, L, C)
        B, L, C = x.shape
        img = x.transpose(1, 2).reshape(B, C, *self.grid)
        return self.conv(img).flatten(2).transpose(1, 2)


class _SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int, causal: bool = False):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x):  # (B, L, C)
        B, L, C = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        o = attend(q, k, v, causal=self.causal)
        return self.out(o.transpose(1, 2).reshape(B, L, C))


def _attention_mixer(channels: int, *, heads: int, causal: bool = False, **_) -> nn.Module:
    return _SelfAttention(channels, heads, causal)


def _conv_mixer(channels: int, *, kernel_size: int, grid, causal: bool = False, **_) -> nn.Module:
    if causal:
        raise ValueError("mixer='conv' is not causal; causal=True needs mixer='attn'")
    if grid is None:
        raise ValueError("mixer='conv' needs grid=(H, W)")
    return _TokenConv(channels, kernel_size, grid)


MIXERS = {"attn": _attention_mixer, "conv": _conv_mixer}


class IteratedBlock(nn.Module):
    """``x <- x + Mix(LN(x))`` T times with shared weights, then ``x <- x + MLP(LN(x))``.

    ``mixer="attn"`` gives the ItrSA block (T=1: a Transformer block); ``mixer="conv"`` gives ItrConv.
    ``causal``: token i attends to tokens j <= i only (a language model's block).
    """

    def __init__(
        self,
        channels: int,
        heads: int = 8,
        steps: int = 8,
        mixer: str = "attn",
        kernel_size: int = 3,
        grid: tuple[int, int] | None = None,
        mlp_ratio: int = 2,
        causal: bool = False,
    ):
        super().__init__()
        if mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {tuple(MIXERS)}, got {mixer!r}")
        self.mix = MIXERS[mixer](channels, heads=heads, kernel_size=kernel_size, grid=grid, causal=causal)
        self.steps = steps
        self.norm1 = nn.LayerNorm(channels)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, mlp_ratio * channels), nn.GELU(), nn.Linear(mlp_ratio * channels, channels)
        )

    def forward(self, x, steps: int | None = None):  # (B, L, C)
        for _ in range(self.steps if steps is None else steps):
            x = x + self.mix(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class IteratedNetwork(nn.Module):
    """L iterated blocks on tokens with a learnable position embedding (2-D sinusoid init) added once.

    ``IteratedNetwork(C, blocks=1, steps=16)`` is ItrSA; ``blocks=8, steps=1`` is the Transformer;
    ``mixer="conv"`` is ItrConv. ``causal=True`` (a language model) also takes the first
    L' < L tokens, which then see what they would see inside the whole sequence.
    """

    def __init__(
        self,
        channels: int,
        grid: tuple[int, int],
        blocks: int = 1,
        steps: int = 8,
        heads: int = 8,
        mixer: str = "attn",
        kernel_size: int = 3,
        mlp_ratio: int = 2,
        causal: bool = False,
    ):
        super().__init__()
        self.causal = causal
        self.pos = nn.Parameter(sinusoid_2d(channels, *grid))
        self.blocks = nn.ModuleList(
            IteratedBlock(channels, heads, steps, mixer, kernel_size, grid, mlp_ratio, causal) for _ in range(blocks)
        )

    def forward(self, x, steps: int | None = None):  # (B, L, C) -> (B, L, C)
        L, C = self.pos.shape
        prefix = self.causal and x.ndim == 3 and 1 <= x.shape[1] <= L and x.shape[2] == C
        if not prefix and (x.ndim != 3 or x.shape[1:] != self.pos.shape):
            raise ValueError(f"expected tokens of shape (B, {L}, {C}), got {tuple(x.shape)}")
        x = x + self.pos[: x.shape[1]]
        for block in self.blocks:
            x = block(x, steps)
        return x
