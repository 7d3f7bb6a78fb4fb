"""Kuramoto adapters: any backbone, maps and tokens, between blocks or on top; the backbone stays untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from akorn.core.adapter import KuramotoAdapter


class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU()),
        )
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return self.head(self.blocks(x).mean(dim=(2, 3)))


class TinyViT(nn.Module):
    """Tokens with a class token in front: (B, 1 + 16, 12)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 12, 4, 4)
        self.cls = nn.Parameter(torch.zeros(1, 1, 12))
        self.blocks = nn.Sequential(*(nn.TransformerEncoderLayer(12, 2, 24, 0.0, batch_first=True) for _ in range(2)))

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1)
        return self.blocks(t)[:, 0]


def _snapshot(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("coupling", ["attn", "conv"])
@pytest.mark.parametrize("placement", ["between", "top"])
def test_only_the_adapters_train_and_the_backbone_is_untouched(coupling, placement):
    torch.manual_seed(0)
    backbone = TinyConvNet()
    x = torch.rand(4, 3, 16, 16)
    before = _snapshot(backbone)
    reference = backbone.eval()(x)
    model = KuramotoAdapter(backbone, ["blocks.0", "blocks.1"], x, channels=8, n=2, steps=2, heads=2,
                            coupling=coupling, placement=placement)  # fmt: skip
    # untrained adapters between blocks leave the backbone's output as it was
    assert torch.allclose(model(x, torch.Generator().manual_seed(0)), reference, atol=1e-6)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-2)
    model.train()
    for step in range(3):
        feats = model.features(x, torch.Generator().manual_seed(step))
        loss = sum(f.square().mean() for f in feats.values())
        if placement == "between":
            loss = loss + model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    assert all(not p.requires_grad for p in backbone.parameters())
    assert all(p.grad is None for p in backbone.parameters())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("adapters.") for n in trainable)
    feats = model.features(x)
    assert feats["blocks.0"].shape == (4, 8, 8, 8) and feats["blocks.1"].shape == (4, 8, 4, 4)


@pytest.mark.parametrize("coupling", ["attn", "conv"])
def test_tokens_with_a_class_token(coupling):
    torch.manual_seed(0)
    backbone = TinyViT()
    x = torch.rand(2, 3, 16, 16)
    reference = backbone.eval()(x)
    model = KuramotoAdapter(backbone, "blocks.0", x, channels=8, n=2, steps=2, heads=2, coupling=coupling,
                            placement="between", prefix_tokens=1)  # fmt: skip
    assert model.grids["blocks.0"] == (4, 4)
    assert torch.allclose(model(x), reference, atol=1e-6)
    f = model.features(x)["blocks.0"]
    assert f.shape == ((2, 16, 8) if coupling == "attn" else (2, 8, 4, 4))


def test_bad_points():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="no submodule 'blocks.7'; its top-level ones are blocks, head"):
        KuramotoAdapter(TinyConvNet(), ["blocks.7"], x)
    with pytest.raises(ValueError, match="head: its output is not a feature map"):
        KuramotoAdapter(TinyConvNet(), ["head"], x)


def test_a_deep_copy_runs_its_own_adapters():
    """The EMA of a training run is a deep copy: its hooks must run the copy's adapters."""
    import copy

    x = torch.rand(2, 3, 16, 16)
    model = KuramotoAdapter(TinyConvNet(), ["blocks.1"], x, channels=8, n=2, steps=1, heads=2, placement="between")
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.adapters.parameters():
            p.add_(1.0)
    a = model.features(x, torch.Generator().manual_seed(0))["blocks.1"]
    b = twin.features(x, torch.Generator().manual_seed(0))["blocks.1"]
    assert not torch.allclose(a, b)
    assert torch.equal(model.features(x, torch.Generator().manual_seed(0))["blocks.1"], a)


@pytest.mark.parametrize("backbone, point, prefix", [(TinyConvNet, "blocks.1", 0), (TinyViT, "blocks.0", 1)])
def test_features_from_backbone_outputs_equal_features(backbone, point, prefix):
    """On top, the adapters' features from outputs computed beforehand (a feature cache) are the
    features of the images; stopping the backbone at the last point changes nothing either."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    model = KuramotoAdapter(backbone(), [point], x, channels=8, n=2, steps=2, heads=2, prefix_tokens=prefix)
    direct = model.features(x, torch.Generator().manual_seed(3))[point]
    whole = model.features(x, torch.Generator().manual_seed(3), stop_early=False)[point]
    outputs = model.backbone_outputs(x)
    cached = model.features_from(outputs, torch.Generator().manual_seed(3))[point]
    assert torch.equal(direct, whole) and torch.equal(direct, cached)
    with pytest.raises(ValueError, match="no backbone output given for"):
        model.features_from({}, None)


def test_features_from_refuses_adapters_between_blocks():
    x = torch.rand(1, 3, 16, 16)
    model = KuramotoAdapter(TinyConvNet(), ["blocks.0"], x, channels=8, n=2, steps=1, heads=2, placement="between")
    outputs = model.backbone_outputs(x)  # the backbone alone, adapters not run
    assert outputs["blocks.0"].shape == (1, 8, 8, 8)
    with pytest.raises(ValueError, match="needs placement='top'"):
        model.features_from(outputs)


def test_backbone_in_bf16_adapters_as_the_caller_runs_them():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    backbone = TinyConvNet()
    ref = KuramotoAdapter(backbone, ["blocks.1"], x, channels=8, n=2, steps=2, heads=2)
    low = KuramotoAdapter(copy_of(backbone), ["blocks.1"], x, channels=8, n=2, steps=2, heads=2,
                          backbone_precision="bf16")  # fmt: skip
    low.adapters.load_state_dict(ref.adapters.state_dict())
    outputs = low.backbone_outputs(x)["blocks.1"]
    assert outputs.dtype == torch.bfloat16
    a = ref.features(x, torch.Generator().manual_seed(1))["blocks.1"]
    b = low.features(x, torch.Generator().manual_seed(1))["blocks.1"]
    assert b.dtype == torch.float32 and not torch.equal(a, b)
    assert torch.allclose(a, b, atol=0.1)  # the backbone's bf16 rounding only
    b.sum().backward()
    block = low.block("blocks.1")
    assert block.project_in.weight.grad.dtype == torch.float32
    assert all(p.grad.dtype == torch.float32 for p in block.layer.parameters() if p.requires_grad)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # the caller's autocast reaches the adapters
        c = low.features(x, torch.Generator().manual_seed(1))["blocks.1"]
    assert not torch.equal(c, b) and torch.allclose(c.float(), b, atol=0.2)
    with pytest.raises(ValueError, match="backbone_precision must be one of"):
        KuramotoAdapter(TinyConvNet(), ["blocks.1"], x, backbone_precision="fp16")


def copy_of(module):
    import copy

    return copy.deepcopy(module)
