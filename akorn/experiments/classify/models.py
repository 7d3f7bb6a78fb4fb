"""Image classifiers: the conv-coupled AKOrN of the paper's robustness experiment, an attention-coupled
AKOrN for larger images, and the ResNet-18 and ViT baselines.

Every model maps images ``(B, C_in, H, W)`` with values in [0, 1] to logits ``(B, classes)``; the
AKOrN models draw their initial oscillator states from ``generator`` (their forward pass is random).
"""

from __future__ import annotations

import torch
from torch import nn

from akorn.core.layer import KuramotoLayer, Speed
from akorn.core.networks import sinusoid_2d
from akorn.core.readout import Readout

MODELS = ("akorn", "akorn-attn", "resnet18", "vit")


def check_images(img: torch.Tensor, channels: int, size: int | None = None):
    if img.ndim != 4 or img.shape[1] != channels:
        raise ValueError(f"images must be (B, {channels}, H, W), got shape {tuple(img.shape)}")
    if size is not None and tuple(img.shape[2:]) != (size, size):
        raise ValueError(f"images must be {size}x{size} for this model, got {tuple(img.shape[2:])}")


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "bn" else nn.GroupNorm(min(8, channels), channels)


class NormReLUConv(nn.Sequential):
    """``norm -> ReLU -> conv`` (pre-activation), size-preserving."""

    def __init__(self, cin: int, cout: int, kernel_size: int, norm: str = "bn"):
        super().__init__(_norm(norm, cin), nn.ReLU(), nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)


class ConvReadout(nn.Sequential):
    """The classifier's readout after a Kuramoto layer: a kxk group-norm readout (N' = ``group``), a
    residual pair of norm-ReLU-convs, one more norm-ReLU-conv; its output is the next layer's stimulus."""

    def __init__(self, channels: int, group: int, kernel_size: int = 3, norm: str = "bn"):
        super().__init__(
            Readout(channels, channels, group=group, kernel_size=kernel_size),
            Residual(nn.Sequential(*(NormReLUConv(channels, channels, kernel_size, norm) for _ in range(2)))),
            NormReLUConv(channels, channels, kernel_size, norm),
        )


class AKOrNClassifier(nn.Module):
    """The conv-coupled AKOrN classifier (paper §robustness; the authors' ``knet.AKOrN``).

    3x3 stem conv (stimulus c, input scaled to [-1, 1]) -> stages of (strided 3x3 conv applied to both
    x and c with one weight, a conv-coupled Kuramoto layer with GroupNorm on c and a learnable global
    ω, a :class:`ConvReadout`) -> average pool of the last readout -> linear. The first stage keeps the
    resolution; each later one halves it and doubles the channels.
    """

    def __init__(
        self,
        classes: int = 10,
        in_channels: int = 3,
        channels: int = 64,
        stages: int = 3,
        n: int = 2,
        steps: int = 3,
        kernel_sizes: tuple[int, ...] = (9, 7, 5),
        readout_kernel: int = 3,
        readout_group: int = 2,
        norm: str = "bn",
        omega_init: float = 1.0,
        gamma: float = 1.0,
        checkpoint: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        kernel_sizes = tuple(kernel_sizes)
        if len(kernel_sizes) == 1:
            kernel_sizes = kernel_sizes * stages
        if len(kernel_sizes) != stages:
            raise ValueError(f"kernel_sizes needs one size or one per stage ({stages}), got {kernel_sizes}")
        self.in_channels = in_channels
        widths = [channels * 2**i for i in range(stages)]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.transitions = nn.ModuleList(
            nn.Identity() if i == 0 else nn.Conv2d(widths[i - 1], widths[i], 3, 2, padding=1) for i in range(stages)
        )
        self.layers = nn.ModuleList(
            KuramotoLayer(
                w,
                n=n,
                coupling="conv",
                kernel_size=k,
                omega="global",
                omega_init=omega_init,
                gamma=gamma,
                c_norm="gn",
                steps=steps,
                speed=Speed(checkpoint=checkpoint, compile=compile, check_inputs=False),
            )
            for w, k in zip(widths, kernel_sizes)
        )
        self.readouts = nn.ModuleList(ConvReadout(w, readout_group, readout_kernel, norm) for w in widths)
        self.head = nn.Linear(widths[-1], classes)

    def features(self, img: torch.Tensor, generator: torch.Generator | None = None, return_states: bool = False):
        """The last readout ``(B, C, h, w)`` (and every layer's final state)."""
        check_images(img, self.in_channels)
        c = self.stem(img * 2 - 1)
        x = torch.randn(c.shape, generator=generator, device=c.device, dtype=c.dtype)
        states = []
        for transition, layer, readout in zip(self.transitions, self.layers, self.readouts):
            x, c = transition(x), transition(c)
            x = layer(x, c)
            states.append(x)
            c = readout(x)
        return (c, states) if return_states else c

    def forward(self, img, generator=None):
        return self.head(self.features(img, generator).mean(dim=(2, 3)))


class AttentionAKOrN(nn.Module):
    """Patch embedding (stimulus) -> Kuramoto layers with attention coupling and GTA, each followed by
    a readout that is the next layer's stimulus -> LayerNorm -> mean over patches -> linear.

    ``features`` gives the per-patch features ``(B, C, h, w)`` for mask extraction.
    """

    def __init__(
        self,
        classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        patch: int = 4,
        channels: int = 256,
        layers: int = 4,
        n: int = 4,
        steps: int = 4,
        heads: int = 8,
        gamma: float = 1.0,
        checkpoint: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} must be divisible by patch {patch}")
        self.in_channels, self.image_size, self.patch, self.channels = in_channels, image_size, patch, channels
        self.grid = (image_size // patch, image_size // patch)
        self.embed = nn.Conv2d(in_channels, channels, patch, stride=patch)
        self.layers = nn.ModuleList(
            KuramotoLayer(
                channels,
                n=n,
                coupling="attn",
                heads=heads,
                positions="gta",
                grid=self.grid,
                omega="identity",
                gamma=gamma,
                c_norm="gn",
                steps=steps,
                speed=Speed(checkpoint=checkpoint, compile=compile, check_inputs=False),
            )
            for _ in range(layers)
        )
        self.readouts = nn.ModuleList(Readout(channels, channels, group=n) for _ in range(layers))
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, classes)

    def features(self, img, generator=None, return_states: bool = False):
        check_images(img, self.in_channels, self.image_size)
        c = self.embed(img * 2 - 1)
        x = torch.randn(c.shape, generator=generator, device=c.device, dtype=c.dtype)
        states = []
        for layer, readout in zip(self.layers, self.readouts):
            x = layer(x, c)
            states.append(x)
            c = readout(x)
        return (c, states) if return_states else c

    def forward(self, img, generator=None):
        return self.head(self.norm(self.features(img, generator).mean(dim=(2, 3))))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for small images (3x3 stem, no max-pool), inputs standardised with CIFAR-10's statistics."""

    MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

    def __init__(self, classes: int = 10, in_channels: int = 3, width: int = 64):
        super().__init__()
        self.in_channels = in_channels
        mean = self.MEAN if in_channels == 3 else (0.5,) * in_channels
        std = self.STD if in_channels == 3 else (0.25,) * in_channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, classes)

    def forward(self, img, generator=None):
        check_images(img, self.in_channels)
        h = self.blocks(self.stem((img - self.mean) / self.std))
        return self.head(h.mean(dim=(2, 3)))


class ViT(nn.Module):
    """A small Vision Transformer: patches + learnable positions (2-D sinusoid init), pre-norm blocks,
    mean-pooled tokens -> LayerNorm -> linear."""

    def __init__(
        self,
        classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        patch: int = 4,
        channels: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: int = 4,
    ):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} must be divisible by patch {patch}")
        self.in_channels, self.image_size = in_channels, image_size
        grid = image_size // patch
        self.embed = nn.Conv2d(in_channels, channels, patch, stride=patch)
        self.pos = nn.Parameter(sinusoid_2d(channels, grid, grid))
        layer = nn.TransformerEncoderLayer(
            channels, heads, mlp_ratio * channels, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, classes)

    def forward(self, img, generator=None):
        check_images(img, self.in_channels, self.image_size)
        tokens = self.embed(img * 2 - 1).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.norm(self.blocks(tokens).mean(dim=1)))
