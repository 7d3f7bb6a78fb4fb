"""Faster implementations of the plain maths in :mod:`akorn.core.maths`, and the one place that chooses them.

Every fast path computes the same numbers as the plain expression it replaces and has an
equivalence test against :mod:`akorn.core.maths` (``tests/test_kuramoto.py``):

============================  ==============================================================
module                        what it speeds up
============================  ==============================================================
``update``                    the per-oscillator update with a hand-derived backward (eager)
``layout``                    the planar state layout (component-major channels), stacked pair swap
``pairs``                     GTA / rope pair blocks as multiplies into views; halves pair order
``attention_op``              attention as two batched matmuls that ``torch.compile`` keeps whole
``step_checkpoint``           activation checkpointing over the T steps into one buffer
``materialize``               a copy that inductor keeps as a call of its own
============================  ==============================================================

The functions below pick between the implementations: by whether the code is being traced
by ``torch.compile`` (inductor fuses plain expressions better than hand-written kernels), by
device and dtype, and by the options the user gave.

Shape letters: B batch, h heads, L tokens, d head channels, C channels, N oscillator dimension.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from akorn.core.fast.attention_op import matmul_attention
from akorn.core.fast.pairs import plain_pair_transform, viewed_pair_transform
from akorn.core.fast.update import fused_update, plain_update

ATTENTION_KERNELS = ("auto", "sdpa", "matmul")
PAIR_ORDERS = ("auto", "interleaved", "halves")


def compiling() -> bool:
    """True while ``torch.compile`` traces the code."""
    return torch.compiler.is_compiling()


def kuramoto_update(
    x, y, w, gamma, n: int, channel_dim: int, identity: bool = False, fused: bool = True, planar: bool = False
):
    """Next state and the energy of the current one (see :mod:`akorn.core.fast.update`): the
    hand-derived backward in eager mode when ``fused``, the plain expressions otherwise."""
    if fused and not compiling():
        return fused_update(x, y, w, gamma, n, channel_dim, identity, planar)
    return plain_update(x, y, w, gamma, n, channel_dim, identity, planar)


def pair_transform(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, order: str) -> torch.Tensor:
    """``a * x + b * swap(x)`` (see :mod:`akorn.core.fast.pairs`)."""
    return (plain_pair_transform if compiling() else viewed_pair_transform)(x, a, b, order)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kernel: str = "auto",
    scale: float | None = None,
    causal: bool = False,
    window: int = 0,
) -> torch.Tensor:
    """Softmax attention ``softmax(q kᵀ · scale) v`` over ``(B, heads, L, d)``; ``scale`` defaults to ``1/sqrt(d)``.

    ``causal``: query i sees keys j <= i; ``window`` > 0 also limits it to i - j < window
    (:func:`sequence_mask`). Causal without a window is SDPA's ``is_causal``, which GPU kernels
    run without building the mask.

    ``"sdpa"``: :func:`torch.nn.functional.scaled_dot_product_attention`. ``"matmul"``: two batched
    matmuls and a softmax (:mod:`akorn.core.fast.attention_op`). ``"auto"`` picks matmul for
    bfloat16 on a CPU, where the fused CPU kernel's backward is several times slower than the
    batched matmuls, and sdpa otherwise.
    """
    if kernel == "matmul" or (kernel == "auto" and q.device.type == "cpu" and q.dtype == torch.bfloat16):
        mask = None
        if causal or window:
            mask = torch.zeros(q.shape[-2], k.shape[-2], dtype=q.dtype, device=q.device)
            mask.masked_fill_(~sequence_mask(q.shape[-2], k.shape[-2], causal, window, q.device), float("-inf"))
        return matmul_attention(q, k, v, scale, mask)
    if causal and not window and q.shape[-2] == k.shape[-2]:
        return F.scaled_dot_product_attention(q, k, v, scale=scale, is_causal=True)
    if causal or window:
        allowed = sequence_mask(q.shape[-2], k.shape[-2], causal, window, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, scale=scale)


def sequence_mask(queries: int, keys: int, causal: bool, window: int = 0, device=None) -> torch.Tensor:
    """``(queries, keys)`` booleans, True where a query may see a key. The last query is the last
    key (queries may be the last few positions of the keys, as when generating). ``causal``: keys
    at or before the query; ``window`` > 0: keys fewer than ``window`` positions away."""
    qpos = torch.arange(keys - queries, keys, device=device)[:, None]
    kpos = torch.arange(keys, device=device)[None, :]
    allowed = torch.ones(queries, keys, dtype=torch.bool, device=device)
    if causal:
        allowed &= kpos <= qpos
    if window:
        allowed &= (qpos - kpos).abs() < window
    return allowed


def choose_pair_order(head_dim: int, requested: str = "auto") -> str:
    """``"auto"``: halves when a half head holds a multiple of 32 channels (whole vectors for float32
    and bfloat16 on AVX-512), where it measured faster; interleaved otherwise."""
    if requested != "auto":
        return requested
    return "halves" if (head_dim // 2) % 32 == 0 else "interleaved"


def bias_apart() -> bool:
    """Add the attention projections' bias in the next elementwise kernel instead of the matmul.

    Compiled and without gradients only: a CPU addmm first copies the broadcast bias into its
    whole output, an extra pass that costs a quarter of the projection's time in bfloat16. With
    gradients the float32 sum doubles what the backward reads, which is slower.
    """
    return compiling() and not torch.is_grad_enabled()


def planar_state(coupling, state_layout: str) -> bool:
    """Whether a layer with this coupling steps its state in the planar layout."""
    supported = getattr(coupling, "layout", None) == "tokens" and getattr(coupling, "supports_planar", False)
    if state_layout == "planar" and not supported:
        raise ValueError(
            "state_layout='planar' needs a tokens-layout coupling with supports_planar "
            f"(the attention coupling), got {type(coupling).__name__}"
        )
    return supported and state_layout != "interleaved"
