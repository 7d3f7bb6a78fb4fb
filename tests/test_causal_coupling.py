"""Causal and windowed attention coupling: no token's state ever depends on a later token."""

import pytest
import torch

from akorn import KuramotoLayer
from akorn.core.coupling import AttentionCoupling
from akorn.core.fast import attend, sequence_mask

L, C, N = 12, 16, 4


def dense_reference(q, k, v, allowed, scale):
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~allowed, float("-inf"))
    return s.softmax(-1) @ v


@pytest.mark.parametrize("kernel", ["sdpa", "matmul"])
@pytest.mark.parametrize("causal,window", [(True, 0), (True, 3), (False, 3)])
def test_masked_attention_matches_a_dense_reference_with_gradients(kernel, causal, window):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, L, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    allowed = sequence_mask(L, L, causal, window)
    got = attend(q, k, v, kernel, scale=0.3, causal=causal, window=window)
    want = dense_reference(q, k, v, allowed, 0.3)
    torch.testing.assert_close(got, want)
    g = torch.randn_like(got)
    grads = torch.autograd.grad(got, (q, k, v), g)
    wants = torch.autograd.grad(want, (q, k, v), g)
    for a, b in zip(grads, wants):
        torch.testing.assert_close(a, b)


def test_sequence_mask_counts():
    m = sequence_mask(5, 5, causal=True, window=2)
    assert m.sum(1).tolist() == [1, 2, 2, 2, 2]
    assert sequence_mask(5, 5, causal=True).sum(1).tolist() == [1, 2, 3, 4, 5]
    assert sequence_mask(5, 5, causal=False, window=2).sum(1).tolist() == [2, 3, 3, 3, 2]
    last = sequence_mask(2, 5, causal=True)  # the last two queries of five keys, as when generating
    assert last.sum(1).tolist() == [4, 5]


@pytest.mark.parametrize("positions", ["gta", "rope", "none"])
@pytest.mark.parametrize("window", [0, 4])
def test_future_tokens_never_reach_the_past_at_any_step(positions, window):
    torch.manual_seed(1)
    coupling = AttentionCoupling(C, heads=2, positions=positions, grid=(L,), causal=True, window=window)
    layer = KuramotoLayer(C, n=N, coupling=coupling, steps=6, grid=(L,), c_norm=None).double()
    x = torch.randn(2, L, C, dtype=torch.float64)
    c = torch.randn(2, L, C, dtype=torch.float64)
    t = 7
    x2, c2 = x.clone(), c.clone()
    x2[:, t + 1 :] += torch.randn_like(x2[:, t + 1 :])
    c2[:, t + 1 :] += 5 * torch.randn_like(c2[:, t + 1 :])
    a = layer(x, c, return_trajectory=True).trajectory
    b = layer(x2, c2, return_trajectory=True).trajectory
    assert a.shape[1] == 7  # x_0 .. x_6
    torch.testing.assert_close(a[:, :, : t + 1], b[:, :, : t + 1], rtol=0, atol=1e-12)
    assert (a[:, -1, t + 1 :] - b[:, -1, t + 1 :]).abs().max() > 1e-3  # the future did change


def test_without_causality_the_future_does_reach_the_past():
    torch.manual_seed(1)
    layer = KuramotoLayer(C, n=N, coupling=AttentionCoupling(C, 2, "gta", (L,)), steps=3, grid=(L,)).double()
    x, c = torch.randn(1, L, C, dtype=torch.float64), torch.randn(1, L, C, dtype=torch.float64)
    c2 = c.clone()
    c2[:, -1] += 5
    assert (layer(x, c)[:, 0] - layer(x, c2)[:, 0]).abs().max() > 1e-6


def test_a_window_that_is_not_a_whole_number_of_tokens_is_refused():
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="window"):
            AttentionCoupling(C, 2, "gta", (L,), causal=True, window=bad)


def test_a_group_norm_over_tokens_is_refused_with_a_causal_coupling():
    with pytest.raises(ValueError, match="c_norm"):
        KuramotoLayer(C, n=N, coupling=AttentionCoupling(C, 2, "gta", (L,), causal=True), grid=(L,))
