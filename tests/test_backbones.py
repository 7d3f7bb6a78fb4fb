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


def _official_layout(depth, width, patch, grid, layer_scale, registers, dinov2):
    """Key names and shapes as the official DINO / DINOv2 code saves them (written out, not taken from ours)."""
    D = width
    keys = {"cls_token": (1, 1, D), "pos_embed": (1, 1 + grid * grid, D),
            "patch_embed.proj.weight": (D, 3, patch, patch), "patch_embed.proj.bias": (D,),
            "norm.weight": (D,), "norm.bias": (D,)}  # fmt: skip
    if dinov2:
        keys["mask_token"] = (1, D)
    if registers:
        keys["register_tokens"] = (1, registers, D)
    for i in range(depth):
        b = f"blocks.{i}."
        keys.update({b + "norm1.weight": (D,), b + "norm1.bias": (D,), b + "attn.qkv.weight": (3 * D, D),
                     b + "attn.qkv.bias": (3 * D,), b + "attn.proj.weight": (D, D), b + "attn.proj.bias": (D,),
                     b + "norm2.weight": (D,), b + "norm2.bias": (D,), b + "mlp.fc1.weight": (4 * D, D),
                     b + "mlp.fc1.bias": (4 * D,), b + "mlp.fc2.weight": (D, 4 * D),
                     b + "mlp.fc2.bias": (D,)})  # fmt: skip
        if layer_scale:
            keys.update({b + "ls1.gamma": (D,), b + "ls2.gamma": (D,)})
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(shape, generator=g) for k, shape in keys.items()}


@pytest.mark.parametrize("dinov2", [False, True])
def test_vit_loads_the_official_layout(tmp_path, dinov2):
    from akorn.backbones import vit

    sd = _official_layout(2, 16, 4, 4, layer_scale=dinov2, registers=4 if dinov2 else 0, dinov2=dinov2)
    model = vit.VisionTransformer(4, 16, 2, 2, layer_scale=dinov2, registers=4 if dinov2 else 0, trained_image=16)
    vit.load_state_dict_checked(model, vit.official_state_dict(sd), "test")
    ours = model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in sd.items() if k != "mask_token")
    x = torch.rand(2, 3, 16, 16)
    assert model(x).shape == (2, 1 + (4 if dinov2 else 0) + 16, 16)
    assert model.patch_features(torch.rand(1, 3, 24, 32)).shape == (1, 16, 6, 8)  # resized positions
    # a DINO training checkpoint: the teacher's backbone under module.backbone., with a projection head
    train_ckpt = {"teacher": {f"module.backbone.{k}": v for k, v in sd.items()} | {"module.head.last_layer.weight": x}}
    vit.load_state_dict_checked(model, vit.official_state_dict(train_ckpt), "test")
    with pytest.raises(ValueError, match="multiples of the patch size 4"):
        model(torch.rand(1, 3, 2, 2))


def test_vit_weights_that_do_not_fit(tmp_path):
    from akorn.backbones import vit

    sd = _official_layout(12, 384, 16, 14, False, 0, False)
    del sd["blocks.11.mlp.fc2.bias"]
    sd["blocks.12.norm1.weight"] = torch.zeros(384)
    torch.save(sd, tmp_path / "dino.pth")
    with pytest.raises(UserError, match=r"missing 1 keys \(blocks.11.mlp.fc2.bias\); unexpected 1 keys"):
        vit.load("dino_vits16", tmp_path / "dino.pth")
    with pytest.raises(UserError, match="unknown ViT 'dino_vitz'"):
        vit.load("dino_vitz", tmp_path / "dino.pth")
