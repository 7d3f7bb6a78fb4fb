"""Coupling ``J``: how every oscillator is pulled by the others.

Two kinds, both asymmetric in general:

* :class:`ConvCoupling` -- a ``C -> C`` convolution with an odd kernel and bias
  (native layout: images ``(B, C, H, W)`` or sequences ``(B, C, L)``);
* :class:`AttentionCoupling` -- multi-head softmax attention over all units with
  1x1 projections q, k, v, o and optional GTA positions (native layout: tokens ``(B, L, C)``).

Each coupling states its native ``layout`` so that :class:`akorn.KuramotoLayer`
converts the state once per layer, not once per step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from akorn.core.fast import ATTENTION_KERNELS, PAIR_ORDERS, choose_pair_order
from akorn.core.fast.attention_coupling import attention_coupling
from akorn.core.fast.pairs import half_pair_coefficients
from akorn.core.gta import GTA, pair_coefficients, rotary_angles, rotation_blocks


class ConvCoupling(nn.Module):
    """``J x = conv_k(x) + b`` over a 2-D grid (``spatial_dims=2``) or a sequence (``spatial_dims=1``)."""

    layout = "channels_first"

    def __init__(self, channels: int, kernel_size: int = 3, spatial_dims: int = 2, bias: bool = True):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        if spatial_dims not in (1, 2):
            raise ValueError(f"spatial_dims must be 1 or 2, got {spatial_dims}")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv1d
        self.spatial_dims = spatial_dims
        self.conv = conv(channels, channels, kernel_size, padding=kernel_size // 2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, *spatial) -> same
        return self.conv(x)


class AttentionCoupling(nn.Module):
    """Multi-head attention coupling ``J x = W_o · attn(q, k, v)`` with GTA positions.

    ``positions``: ``"gta"`` (learnable per-unit blocks on q, k, v and their transposes
    on the output, initialised as rotary), ``"rope"`` (fixed rotary on q and k) or ``"none"``.
    ``grid`` is ``(H, W)`` or ``(L,)`` and is required unless ``positions="none"``.
    ``attention``: the kernel, see :func:`akorn.core.fast.attend`.
    ``pair_order``: how the position transforms are computed, with identical results:
    ``"interleaved"`` or ``"halves"`` (see :mod:`akorn.core.fast.pairs`); ``"auto"``
    chooses (:func:`akorn.core.fast.choose_pair_order`).
    """

    layout = "tokens"
    supports_planar = True  # forward(x, planar_n=N) takes and returns x in akorn.core.fast.layout's planar order

    def __init__(
        self,
        channels: int,
        heads: int = 8,
        positions: str = "gta",
        grid: tuple[int, ...] | None = None,
        rope_base: float = 10000.0,
        attention: str = "auto",
        pair_order: str = "auto",
    ):
        super().__init__()
        if attention not in ATTENTION_KERNELS:
            raise ValueError(f"attention must be one of {ATTENTION_KERNELS}, got {attention!r}")
        if pair_order not in PAIR_ORDERS:
            raise ValueError(f"pair_order must be one of {PAIR_ORDERS}, got {pair_order!r}")
        self.attention = attention
        if heads < 1 or channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        if positions not in ("gta", "rope", "none"):
            raise ValueError(f"positions must be 'gta', 'rope' or 'none', got {positions!r}")
        self.channels, self.heads, self.head_dim = channels, heads, channels // heads
        if positions != "none":
            if grid is None:
                raise ValueError(f"grid (H, W) or (L,) is required for positions={positions!r}")
            if self.head_dim % 2:
                raise ValueError(f"head_dim = channels/heads must be even for {positions}, got {self.head_dim}")
        self.positions = positions
        self.pair_order = choose_pair_order(self.head_dim, pair_order)
        self.grid = None if grid is None else tuple(int(g) for g in grid)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        if positions == "gta":
            self.gta = GTA(self.grid, self.head_dim, rope_base)
        elif positions == "rope":
            self.register_buffer(
                "rope",
                rotation_blocks(rotary_angles(self.grid, self.head_dim, rope_base)).to(torch.get_default_dtype()),
                persistent=False,
            )

    @property
    def units(self) -> int | None:
        return None if self.grid is None else math.prod(self.grid)

    def qkv_coefficients(self, dtype: torch.dtype):
        """Coefficients ``(U, 3, 1, D)`` in ``pair_order`` that transform q, k and v in one pass
        (identity for v under rope), with the attention scale ``1/sqrt(D)`` folded into q's."""
        if self.positions == "gta":
            blocks = torch.stack((self.gta.mat_q, self.gta.mat_k, self.gta.mat_v), dim=1)  # (U, 3, D/2, 2, 2)
        else:
            eye = torch.eye(2, dtype=self.rope.dtype, device=self.rope.device).expand_as(self.rope)
            blocks = torch.stack((self.rope, self.rope, eye), dim=1)
        coefficients = half_pair_coefficients if self.pair_order == "halves" else pair_coefficients
        a, b = coefficients(blocks)
        # scaling q's transform costs nothing per element; scaling q kᵀ would be another pass
        scale = blocks.new_tensor([self.head_dim**-0.5, 1.0, 1.0]).view(1, 3, 1)
        return (a * scale).to(dtype).unsqueeze(2), (b * scale).to(dtype).unsqueeze(2)

    def forward(self, x: torch.Tensor, planar_n: int | None = None) -> torch.Tensor:  # (B, L, C) -> (B, L, C)
        """``J x = W_o · T_oᵀ attn(T_q q, T_k k, T_v v)``. With ``planar_n``, ``x`` and the result are in the
        planar order of :mod:`akorn.core.fast.layout` for oscillators of that dimension."""
        return attention_coupling(self, x, planar_n)
