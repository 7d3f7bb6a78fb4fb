"""Coupling ``J``: how every oscillator is pulled by the others.

Two kinds, both asymmetric in general:

* :class:`ConvCoupling` -- a ``C -> C`` convolution with an odd kernel and bias
  (native layout: images ``(B, C, H, W)`` or sequences ``(B, C, L)``);
* :class:`AttentionCoupling` -- multi-head softmax attention over all units with
  1x1 projections q, k, v, o and optional GTA positions (native layout: tokens ``(B, L, C)``).

Shape letters: B batch, C channels, L tokens, h heads, d = C/h head channels, U units.

Each coupling states its native ``layout`` so that :class:`akorn.KuramotoLayer`
converts the state once per layer, not once per step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from akorn.core import fast
from akorn.core.fast import ATTENTION_KERNELS, PAIR_ORDERS, choose_pair_order
from akorn.core.fast.layout import to_planar
from akorn.core.fast.materialize import materialize
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
    ``causal``: token i couples only to tokens j <= i, so that at every Kuramoto step the state of
    token t depends only on tokens up to t (a language model's coupling); ``window`` > 0 also
    limits the coupling to the ``window`` nearest tokens (i - j < window, both sides when not causal).
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
        causal: bool = False,
        window: int = 0,
    ):
        super().__init__()
        if not isinstance(window, int) or window < 0:
            raise ValueError(f"window must be a whole number of tokens >= 0 (0: no window), got {window!r}")
        self.causal, self.window = bool(causal), window
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

    def forward(
        self, x: torch.Tensor, planar_n: int | None = None, cache: CouplingCache | None = None
    ) -> torch.Tensor:  # (B, L, C) -> (B, L, C)
        """``J x = W_o · T_oᵀ attn(T_q q, T_k k, T_v v)``. With ``planar_n``, ``x`` and the result are in the
        planar order of :mod:`akorn.core.fast.layout` for oscillators of that dimension.

        The same maths as :func:`akorn.core.maths.attention_coupling` (dense GTA matrices, plain
        softmax attention), computed with the pair blocks as multiplies (:mod:`akorn.core.fast.pairs`),
        the projections permuted for the planar layout and the halves pair order, and the attention
        kernel chosen by :func:`akorn.core.fast.attend`.

        A causal coupling also takes the first L < U tokens of its grid (a prefix couples as it
        would inside the whole sequence). With ``cache``, ``x`` holds the tokens that follow the
        ones the cache has seen: their keys and values join the cache, and only they are computed."""
        B, L, C = x.shape
        if planar_n is not None and (not isinstance(planar_n, int) or planar_n < 1 or C % planar_n):
            raise ValueError(f"planar_n must be a positive divisor of the {C} channels, got {planar_n!r}")
        if cache is not None and not self.causal:
            raise ValueError("a key/value cache needs a causal coupling: earlier tokens would see later ones")
        start = 0 if cache is None else cache.length
        units = self.units
        if units is not None and start + L > units and self.positions != "none":
            raise ValueError(f"tokens {start}..{start + L - 1} lie outside the coupling's {units} positions")
        if units is not None and L != units and cache is None and not self.causal and self.positions != "none":
            raise ValueError(f"{L} tokens do not match the coupling's {units} positions")
        halves = self.positions != "none" and self.pair_order == "halves"
        q, k, v = self._project(x, planar_n, halves, slice(start, start + L))
        if cache is not None:
            k, v = cache.append(k, v, self.window)
        scale = 1.0 if self.positions != "none" else None
        o = fast.attend(q, k, v, self.attention, scale=scale, causal=self.causal, window=self.window)
        return self._output(o, planar_n, halves, slice(start, start + L))

    def _project(self, x, planar_n, halves: bool, rows: slice):
        """q, k, v ``(B, h, L, d)`` of tokens ``x`` at the positions ``rows``, position transforms applied."""
        B, L, C = x.shape
        h, d = self.heads, self.head_dim
        order = "halves" if halves else "interleaved"
        w, bias = self.qkv.weight, self.qkv.bias
        if halves:
            # Same parameters and maths as pairs (2i, 2i+1), computed with every head's channels in
            # halves order: permuting the projection rows and the output projection's columns gives
            # q, k, v and o in that order, where the pair transforms vectorise. The permutation is
            # a transpose, whose gradient is a transpose (no scatter). Halves order is the planar
            # order of pairs within each head.
            w = to_planar(w.view(3 * h, d, C), 2, 1).view(3 * C, C)
            bias = to_planar(bias.view(3 * h, d), 2).view(3 * C)
        if planar_n is not None:
            w = to_planar(w, planar_n, 1)
        split_bias = fast.bias_apart()
        if split_bias:
            # Under autocast the float32 bias promotes the sum, which keeps inductor from fusing it
            # back into an addmm (see fast.bias_apart for why it stays apart).
            qkv = F.linear(x, w)
            mm_dtype = qkv.dtype
            qkv = (qkv + (materialize(bias) if halves else bias)).view(B, L, 3, h, d)  # (B, L, 3C) -> (B, L, 3, h, d)
        else:
            qkv = F.linear(x, w, bias).view(B, L, 3, h, d)  # (B, L, 3C) -> (B, L, 3, h, d)
            mm_dtype = qkv.dtype
        if self.positions != "none":
            a, b = self.qkv_coefficients(mm_dtype)
            if a.shape[0] != L:
                a, b = a[rows], b[rows]
            qkv = fast.pair_transform(qkv, a, b, order)
        qkv = qkv.to(mm_dtype)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, heads, L, head_dim)
        if fast.compiling():
            # inductor then stores the transformed q, k, v straight in the layout the batched
            # matmuls read, instead of the attention kernel copying each of them again
            qkv = qkv.contiguous()
        return qkv.unbind(0)

    def _output(self, o, planar_n, halves: bool, rows: slice):
        """``W_o · T_oᵀ o`` for the attention output ``o`` ``(B, h, L, d)`` at the positions ``rows``."""
        B, h, L, d = o.shape
        C = h * d
        if self.positions == "gta":
            coefficients = half_pair_coefficients if halves else pair_coefficients
            a, b = coefficients(self.gta.mat_o.to(o.dtype))
            if a.shape[0] != L:
                a, b = a[rows], b[rows]
            o = fast.pair_transform(o, a, b, "halves" if halves else "interleaved")
        o = o.transpose(1, 2).reshape(B, L, C)  # (B, h, L, d) -> (B, L, C)
        w, bias = self.out.weight, self.out.bias
        if halves:
            w = to_planar(w.view(C, h, d), 2).view(C, C)
        if planar_n is not None:
            w, bias = to_planar(w, planar_n, 0), to_planar(bias, planar_n)
        if fast.bias_apart():  # the bias then joins the caller's elementwise kernel (see q, k, v above)
            out = F.linear(o, w)
            return (out + bias).to(out.dtype)  # eager mode's dtype
        return F.linear(o, w, bias)


class CouplingCache:
    """The keys and values of the tokens a causal :class:`AttentionCoupling` has seen, at one Kuramoto step.

    Every step couples the states of that step, so a run of T steps needs T caches (one per step
    and layer): generating a token costs T attention rows per layer instead of T full passes over
    the context. With a window, keys older than the window are dropped.
    """

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.length = 0  # tokens seen, the position of the next one

    def append(self, k: torch.Tensor, v: torch.Tensor, window: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Add keys and values ``(B, h, l, d)``; returns all the keys and values the new tokens may see."""
        if self.k is not None:
            k, v = torch.cat((self.k, k), -2), torch.cat((self.v, v), -2)
        self.length += k.shape[-2] - (0 if self.k is None else self.k.shape[-2])
        seen_k, seen_v = k, v
        if window:
            k, v = k[..., -window:, :], v[..., -window:, :]
        self.k, self.v = k, v
        return seen_k, seen_v


def _conv_coupling(channels: int, *, kernel_size: int, spatial_dims: int, **_) -> nn.Module:
    return ConvCoupling(channels, kernel_size, spatial_dims)


def _attention_coupling(channels: int, *, heads: int, positions: str, grid, **_) -> nn.Module:
    if positions != "none" and grid is None:
        raise ValueError("grid (H, W) or (L,) is required for attention with positions")
    return AttentionCoupling(channels, heads, positions, grid)


COUPLINGS = {"conv": _conv_coupling, "attn": _attention_coupling}
"""What :class:`akorn.KuramotoLayer` builds for ``coupling="conv"`` or ``"attn"``."""
