"""``materialize``: a contiguous copy that ``torch.compile`` keeps as a call of its own.

Inductor inlines small permuted tensors (such as the halves-ordered q, k, v bias) into the
kernel that reads them, as a scalar gather per element of the large tensor they broadcast
against. Computed once through this operator, they are read with contiguous vector loads.
"""

import torch


@torch.library.custom_op("akorn::materialize", mutates_args=())
def _materialize(t: torch.Tensor) -> torch.Tensor:
    return t.clone(memory_format=torch.contiguous_format)


@_materialize.register_fake
def _(t):
    return torch.empty(t.shape, dtype=t.dtype, device=t.device)


_materialize.register_autograd(lambda ctx, g: g, setup_context=lambda ctx, inputs, output: None)


def materialize(t: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of ``t`` that inductor does not fuse into its readers (gradient: identity)."""
    return _materialize(t)
