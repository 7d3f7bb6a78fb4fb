"""The per-oscillator part of one Kuramoto step as a single autograd function, and as plain expressions.

Given the state ``x`` and the pull ``y = J(x) + c`` (both in the layer's native layout),
computes::

    dx     = Proj_x(y) + Ω x  (+ x for the reference code's identity in Ω's place)
    x_next = normalize_N(x + γ dx)
    energy = -Σ <x, y>                                  # per sample

Autograd over the plain expression stores about twice as many full-size tensors and runs
about twice as many passes over them in the backward as the hand-derived gradient below,
and in eager mode on a CPU those passes cost as much as the matmuls. ``torch.compile``
fuses the plain expression instead, so :class:`akorn.KuramotoLayer` uses this function only
in eager mode (:mod:`akorn.core.fast` chooses). Both give the same values and gradients as
:func:`akorn.core.maths.kuramoto_step` (``tests/test_kuramoto.py``).

Shape letters: C channels, N oscillator dimension, O = C/N oscillators.
"""

from __future__ import annotations

import torch

from akorn.core.fast.layout import swap_pairs_stacked
from akorn.core.oscillators import clamped_norm, merge_oscillators, split_oscillators, swap_pairs


def plain_update(x, y, w, gamma, n: int, channel_dim: int, identity: bool, planar: bool = False):
    """The same update written as plain tensor expressions (what ``torch.compile`` fuses)."""
    xs, d = split_oscillators(x, n, channel_dim, planar)
    ys, _ = split_oscillators(y, n, channel_dim, planar)
    xy = (xs * ys).sum(d, keepdim=True)
    dx = ys - xy * xs
    if w is not None:
        swapped = swap_pairs(x, channel_dim, "planar" if planar else "interleaved", n)
        dx = dx + split_oscillators(w * swapped, n, channel_dim, planar)[0]
    if identity:
        dx = dx + xs
    u = xs + gamma * dx
    x_next = u / u.norm(dim=d, keepdim=True).clamp_min(1e-12)
    return merge_oscillators(x_next, d, planar), -xy.flatten(1).sum(1)


class _FusedUpdate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, w, gamma, n: int, channel_dim: int, identity: bool, planar: bool):
        xs, d = split_oscillators(x, n, channel_dim, planar)
        ys, _ = split_oscillators(y, n, channel_dim, planar)
        xy = (xs * ys).sum(d, keepdim=True)
        dx = torch.addcmul(ys, xy, xs, value=-1)
        if w is not None:
            dx.add_(split_oscillators(w * swap_pairs_stacked(x, n, channel_dim, planar), n, channel_dim, planar)[0])
        if identity:
            dx.add_(xs)
        u = torch.addcmul(xs, dx, gamma)
        r = clamped_norm(u, d, 1e-12)
        out = u.div_(r)
        ctx.save_for_backward(x, y, w, gamma, xy, out, r)
        ctx.layout = (n, channel_dim, identity, d, planar)
        return merge_oscillators(out, d, planar), -xy.flatten(1).sum(1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out, g_energy):
        x, y, w, gamma, xy, out, r = ctx.saved_tensors
        n, cdim, identity, d, planar = ctx.layout
        xs, _ = split_oscillators(x, n, cdim, planar)
        ys, _ = split_oscillators(y, n, cdim, planar)
        merge = lambda t: merge_oscillators(t, d, planar)  # noqa: E731
        swap = lambda t: swap_pairs_stacked(t, n, cdim, planar)  # noqa: E731
        # Through the normalisation: gu = (g - <g, x_next> x_next) / |u|.
        if g_out is None:
            gu = torch.zeros_like(xs)
        else:
            g, _ = split_oscillators(g_out, n, cdim, planar)
            gu = torch.addcmul(g, (g * out).sum(d, keepdim=True), out, value=-1).div_(r)
        # u = x + γ (y - <x, y> x + w·swap(x) [+ x]); energy = -Σ <x, y>.
        g_xy = -gamma * (gu * xs).sum(d, keepdim=True)
        if g_energy is not None:
            g_xy = g_xy - g_energy.reshape((-1,) + (1,) * (g_xy.ndim - 1))
        need_x, need_y, need_w, need_gamma = ctx.needs_input_grad[:4]
        gx = gy = gw = ggamma = None
        # The parameter gradients (reductions) first, so that their temporaries are freed before
        # the full-size gradients of x and y are allocated: a lower peak inside checkpointing.
        swapped = swap(x) if w is not None and (need_w or need_gamma) else None
        if need_w:
            gw = _sum_to(merge(gu) * swapped, w.shape).mul_(gamma)
        if need_gamma:
            dx = torch.addcmul(ys, xy, xs, value=-1)
            if w is not None:
                dx.add_(split_oscillators(w * swapped, n, cdim, planar)[0])
            if identity:
                dx.add_(xs)
            ggamma = (dx.mul_(gu)).sum().reshape(gamma.shape)
            del dx
        del swapped
        if need_y:
            gy = merge(torch.addcmul(gu * gamma, g_xy, xs))
        if need_x:
            coef = (1 + gamma if identity else torch.ones_like(gamma)) - gamma * xy
            gxs = gu * coef
            gxs.addcmul_(g_xy, ys)
            gx = merge(gxs)
            if w is not None:
                gx = gx.addcmul_(swap(merge(gu) * w), gamma)
        return gx, gy, gw, ggamma, None, None, None, None


def _sum_to(t: torch.Tensor, shape) -> torch.Tensor:
    dims = [i for i, (a, b) in enumerate(zip(t.shape, shape)) if b == 1 and a != 1]
    return t.sum(dims, keepdim=True) if dims else t


def fused_update(x, y, w, gamma, n: int, channel_dim: int, identity: bool = False, planar: bool = False):
    """Next state and the energy of the current one, with the hand-derived backward (eager mode)."""
    return _FusedUpdate.apply(x, y, w, gamma, n, channel_dim, identity, planar)
