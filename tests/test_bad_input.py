import pytest
import torch

from akorn import KuramotoLayer, Readout


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(channels=10, n=4), "channels"),
        (dict(channels=9, n=3, omega="global"), "even n"),
        (dict(channels=8, n=4, coupling="attn"), "grid"),
        (dict(channels=8, n=4, coupling="conv", kernel_size=4), "kernel_size"),
        (dict(channels=8, n=4, omega="spin"), "omega"),
        (dict(channels=8, n=4, c_norm="bn"), "c_norm"),
        (dict(channels=8, n=4, energy_mode="last"), "energy_mode"),
        (dict(channels=12, n=4, coupling="attn", grid=(2, 2), heads=5), "heads"),
    ],
)
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KuramotoLayer(**kwargs)


def test_bad_calls():
    layer = KuramotoLayer(8, n=4, coupling="attn", grid=(3, 3), heads=2)
    x = torch.randn(1, 8, 3, 3)
    with pytest.raises(ValueError, match="same shape"):
        layer(x, torch.randn(1, 8, 3, 2))
    with pytest.raises(ValueError, match="grid"):
        layer(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match="units"):
        layer(torch.randn(1, 10, 8), torch.randn(1, 10, 8))
    with pytest.raises(ValueError, match="8 channels"):
        layer(torch.randn(1, 6, 3, 3), torch.randn(1, 6, 3, 3))
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        layer(bad, x)
    with pytest.raises(ValueError, match="c contains NaN"):
        layer(x, bad)
    with pytest.raises(ValueError, match="image .* or tokens"):
        layer(torch.randn(8), torch.randn(8))
    with pytest.raises(ValueError, match="steps"):
        layer(x, x, steps=-1)
    conv = KuramotoLayer(8, n=4, coupling="conv")
    with pytest.raises(ValueError, match="grid"):
        conv(torch.randn(1, 9, 8), torch.randn(1, 9, 8))
    with pytest.raises(ValueError, match="Readout"):
        Readout(8, 4)(torch.randn(1, 6, 2, 2))
