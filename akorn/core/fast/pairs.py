"""GTA and rope pair transforms ``a * x + b * swap(x)``, in two channel orders and two implementations.

``order="interleaved"``: pairs (2i, 2i+1) as stored. ``order="halves"``: every head's channels
permuted to :func:`halves_order`, where a pair's partner sits ``D/2`` channels away, so swapping
partners moves two contiguous halves, which vectorises. Same results in both orders.

Shape letters: U units, h heads, D head channels; pairs lie on the last axis.
"""

from __future__ import annotations

import torch

from akorn.core.oscillators import pair_view, swap_pairs


def halves_order(head_dim: int) -> torch.Tensor:
    """Channel order that puts the first element of every pair in the first half of the head
    and the second in the second half: ``[0, 2, 4, .., 1, 3, 5, ..]``.

    In that order a pair's partner sits ``D/2`` channels away, so swapping partners moves two
    contiguous halves, which vectorises, instead of gathering every other channel.
    """
    return torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))


def half_pair_coefficients(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`pair_coefficients` for channels in :func:`halves_order`:
    ``M @ pair = a * x + b * swap_pairs(x, -1, "halves")``."""
    a = torch.cat((blocks[..., 0, 0], blocks[..., 1, 1]), -1)
    b = torch.cat((blocks[..., 0, 1], blocks[..., 1, 0]), -1)
    return a, b


def partner_views(t: torch.Tensor, order: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first and second members of every channel pair on the last axis, as views (``order``:
    see :func:`akorn.core.oscillators.pair_view`)."""
    ts, d = pair_view(t, -1, order)
    return ts.unbind(d)


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
            gx = _pair_multiply(g, a, swap_pairs(b, -1, order), order)
        if ctx.needs_input_grad[1]:
            ga = (g * x).sum_to_size(a.shape)
        if ctx.needs_input_grad[2]:
            (g0, g1), (x0, x1), (b0, b1) = (partner_views(t, order) for t in (g, x, b))
            gb = torch.stack(
                ((g0 * x1).sum_to_size(b0.shape), (g1 * x0).sum_to_size(b1.shape)), -2 if order == "halves" else -1
            ).flatten(-2)
        return gx, ga, gb, None


def plain_pair_transform(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, order: str) -> torch.Tensor:
    """``a * x + b * swap(x)`` as written (what ``torch.compile`` fuses into one pass)."""
    return torch.addcmul(x * a, swap_pairs(x, -1, order), b)


def viewed_pair_transform(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, order: str) -> torch.Tensor:
    """``a * x + b * swap(x)`` with multiply-adds into views of the pair members (no swapped copy)
    and, with gradients, a backward that saves only ``x``."""
    if not torch.is_grad_enabled():
        return _pair_multiply(x, a, b, order)
    return _PairTransform.apply(x, a, b, order)
