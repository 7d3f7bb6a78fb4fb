"""The attention coupling's forward pass, arranged for speed.

The same maths as :func:`akorn.core.maths.attention_coupling` (dense GTA matrices, plain
softmax attention), computed with the pair blocks as multiplies (:mod:`akorn.core.fast.pairs`),
the projections permuted for the planar state layout and the halves pair order, and the
attention kernel chosen by :func:`akorn.core.fast.attend`.
"""

from __future__ import annotations

import torch.nn.functional as F

from akorn.core import fast
from akorn.core.fast.layout import to_planar
from akorn.core.fast.materialize import materialize
from akorn.core.fast.pairs import half_pair_coefficients
from akorn.core.gta import pair_coefficients


def attention_coupling(att, x, planar_n: int | None = None):
    """``J x`` of an :class:`akorn.core.coupling.AttentionCoupling` ``att`` on tokens ``(B, L, C)``;
    with ``planar_n``, ``x`` and the result in planar order for oscillators of that dimension."""
    B, L, C = x.shape
    h, d = att.heads, att.head_dim
    if planar_n is not None and (not isinstance(planar_n, int) or planar_n < 1 or C % planar_n):
        raise ValueError(f"planar_n must be a positive divisor of the {C} channels, got {planar_n!r}")
    halves = att.positions != "none" and att.pair_order == "halves"
    order = "halves" if halves else "interleaved"
    w, bias = att.qkv.weight, att.qkv.bias
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
    compiling = fast.compiling()
    split_bias = fast.bias_apart()
    if split_bias:
        # Under autocast the float32 bias promotes the sum, which keeps inductor from fusing it
        # back into an addmm (see fast.bias_apart for why it stays apart).
        qkv = F.linear(x, w)
        mm_dtype = qkv.dtype
        qkv = (qkv + (materialize(bias) if halves else bias)).view(B, L, 3, h, d)
    else:
        qkv = F.linear(x, w, bias).view(B, L, 3, h, d)
        mm_dtype = qkv.dtype
    if att.positions != "none":
        a, b = att.qkv_coefficients(mm_dtype)
        qkv = fast.pair_transform(qkv, a, b, order)
    qkv = qkv.to(mm_dtype)
    qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, heads, L, head_dim)
    if compiling:
        # inductor then stores the transformed q, k, v straight in the layout the batched
        # matmuls read, instead of the attention kernel copying each of them again
        qkv = qkv.contiguous()
    q, k, v = qkv.unbind(0)
    o = fast.attend(q, k, v, att.attention, scale=1.0 if att.positions != "none" else None)
    if att.positions == "gta":
        coefficients = half_pair_coefficients if halves else pair_coefficients
        a, b = coefficients(att.gta.mat_o.to(o.dtype))
        o = fast.pair_transform(o, a, b, order)
    o = o.transpose(1, 2).reshape(B, L, C)
    w, bias = att.out.weight, att.out.bias
    if halves:
        w = to_planar(w.view(C, h, d), 2).view(C, C)
    if planar_n is not None:
        w, bias = to_planar(w, planar_n, 0), to_planar(bias, planar_n)
    if split_bias:  # the bias then joins the caller's elementwise kernel (see q, k, v above)
        out = F.linear(o, w)
        return (out + bias).to(out.dtype)  # eager mode's dtype
    return F.linear(o, w, bias)
