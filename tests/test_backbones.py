"""Pretrained backbones in plain torch: MobileNetV2 with torchvision's ImageNet weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from akorn.backbones.mobilenet import MobileNetV2, mobilenet_v2
from akorn.errors import UserError


def _photo(name: str) -> torch.Tensor:
    import skimage.data

    img = getattr(skimage.data, name)()[..., :3]
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255
    return torch.nn.functional.interpolate(x, size=224, mode="bilinear", antialias=True, align_corners=False)


def test_mobilenet_v2_imagenet_weights_classify_bundled_photographs():
    model = mobilenet_v2("imagenet")
    with torch.no_grad():
        cat = model(_photo("chelsea")).softmax(1)[0]
        coffee = model(_photo("coffee")).softmax(1)[0]
    assert int(cat.argmax()) in (281, 282, 285)  # tabby, tiger cat, Egyptian cat
    assert int(coffee.argmax()) == 967 and coffee[967] > 0.9  # espresso


def test_mobilenet_v2_weights_file_that_does_not_fit(tmp_path):
    sd = MobileNetV2().state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["classifier.1.bias"]
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"missing 1 keys \(classifier.1.bias\); unexpected 1 keys \(extra.weight\)"):
        mobilenet_v2(tmp_path / "bad.pth")
    (tmp_path / "torn.pth").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(UserError, match="torn.pth: not a readable state dict"):
        mobilenet_v2(tmp_path / "torn.pth")
    with pytest.raises(UserError, match="not found"):
        mobilenet_v2(tmp_path / "missing.pth")


def test_kuramoto_adapter_on_pretrained_mobilenet():
    from akorn.core.adapter import KuramotoAdapter

    backbone = mobilenet_v2("imagenet")
    x = torch.rand(2, 3, 64, 64)
    reference = backbone(x)
    model = KuramotoAdapter(backbone, ["features.6", "features.13"], x, channels=16, n=4, steps=2, heads=2,
                            placement="between")  # fmt: skip
    assert torch.allclose(model(x), reference, atol=1e-5)
    feats = model.features(x)
    assert feats["features.6"].shape == (2, 16, 8, 8) and feats["features.13"].shape == (2, 16, 4, 4)
