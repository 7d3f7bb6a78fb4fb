"""Softmax attention as two batched matmuls, in one operator that ``torch.compile`` keeps whole.

Inductor rewrites the plain ``softmax(q kᵀ s) v`` expression into its fused SDPA kernel, whose
CPU backward in bfloat16 is several times slower than batched matmuls. Registered as a custom
operator with its own backward, the matmul form survives compilation as written.

Shape letters: B batch, h heads, L queries, M keys, d head channels.

An optional additive ``mask`` ``(L, M)`` (0 where a query sees a key, -inf where not) makes it
causal or windowed; the backward needs nothing more, since a masked probability is 0.
"""

import torch


@torch.library.custom_op("akorn::matmul_attention", mutates_args=())
def _matmul_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.matmul(q, k.transpose(-1, -2))
    s = s if scale == 1.0 else s.mul_(scale)
    p = (s if mask is None else s.add_(mask)).softmax(-1)
    return torch.matmul(p, v), p


@_matmul_attention.register_fake
def _(q, k, v, scale, mask=None):
    return q.new_empty(q.shape[:-1] + v.shape[-1:]), q.new_empty(q.shape[:-1] + k.shape[-2:-1])


def _setup_context(ctx, inputs, output):
    q, k, v, scale = inputs[:4]
    o, p = output
    ctx.scale = scale
    ctx.mark_non_differentiable(p)
    ctx.save_for_backward(q, k, v, o, p)


def _backward(ctx, grad_o, grad_p):
    q, k, v, o, p = ctx.saved_tensors
    grad_v = torch.matmul(p.transpose(-1, -2), grad_o)
    # softmax backward: dS = P (dP - rowsum(dP P)), and rowsum(dP P) = rowsum(dO O)
    acc = torch.promote_types(q.dtype, torch.float32)  # float32 sums for half types, float64 kept
    row = (grad_o.to(acc) * o.to(acc)).sum(-1, keepdim=True)
    grad_s = (p.to(acc) * (torch.matmul(grad_o, v.transpose(-1, -2)).to(acc) - row)).to(q.dtype)
    if ctx.scale != 1.0:
        grad_s = grad_s.mul_(ctx.scale)
    grad_q = torch.matmul(grad_s, k)
    grad_k = torch.matmul(grad_s.transpose(-1, -2), q)
    return grad_q, grad_k, grad_v, None, None


_matmul_attention.register_autograd(_backward, setup_context=_setup_context)


def matmul_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ · scale + mask) v`` over ``(..., L, d)`` tensors, as two batched matmuls; ``scale``
    defaults to ``1/sqrt(d)``, ``mask`` is additive ``(L, M)``."""
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    return _matmul_attention(q, k, v, scale, None if mask is None else mask.to(q.dtype))[0]
