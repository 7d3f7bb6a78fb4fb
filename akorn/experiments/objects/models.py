"""Image models for object discovery: AKOrN (attention or conv coupling), ItrSA and ItrConv.

All map images ``(B, 3, H, W)`` in [0, 1] to per-patch features ``(B, C, h, w)`` (``features``)
and to a contrastive embedding ``(B, C)`` (``forward``: global max-pool -> Linear(C, 4C) -> ReLU
-> Linear(4C, C)).
"""

from __future__ import annotations

import torch
from torch import nn

from akorn.core.layer import KuramotoLayer, Speed
from akorn.core.networks import IteratedNetwork
from akorn.core.readout import Readout


class PatchEmbed(nn.Module):
    def __init__(self, channels: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(3, channels, patch, stride=patch)

    def forward(self, img):  # [0, 1] -> normalised to [-1, 1] -> patches (B, C, h, w)
        return self.proj(img * 2 - 1)


class ContrastiveHead(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.ReLU(), nn.Linear(4 * channels, channels))

    def forward(self, feats):  # (B, C, h, w) -> (B, C)
        return self.mlp(feats.amax(dim=(2, 3)))


def _check_images(img, size):
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(img.shape)}")
    if tuple(img.shape[2:]) != (size, size):
        raise ValueError(f"images must be {size}x{size} for this model, got {tuple(img.shape[2:])}")


class ImageAKOrN(nn.Module):
    """Patch embedding (stimulus c) -> L Kuramoto layers with readouts -> per-patch features.

    ``omega="identity"`` with ``gamma=1`` is the reference code's behaviour (no Ω; its identity in Ω's
    place makes the step ``normalize(x + ½ Proj y)``); ``omega="none"`` with ``gamma=0.5`` is the same
    dynamics written as the paper's equation.
    """

    def __init__(
        self,
        image_size: int = 32,
        patch: int = 4,
        channels: int = 128,
        n: int = 4,
        layers: int = 1,
        steps: int = 8,
        coupling: str = "attn",
        kernel_size: int = 5,
        heads: int = 8,
        omega: str = "identity",
        omega_init: float = 1.0,
        gamma: float = 1.0,
        c_norm: str | None = None,
        checkpoint: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} must be divisible by patch {patch}")
        self.image_size, self.patch, self.channels, self.n = image_size, patch, channels, n
        grid = (image_size // patch, image_size // patch)
        self.grid = grid
        self.embed = PatchEmbed(channels, patch)
        self.layers = nn.ModuleList(
            KuramotoLayer(
                channels,
                n=n,
                coupling=coupling,
                kernel_size=kernel_size,
                heads=heads,
                grid=grid,
                omega=omega,
                omega_init=omega_init,
                gamma=gamma,
                c_norm=c_norm,
                steps=steps,
                speed=Speed(checkpoint=checkpoint, compile=compile, check_inputs=False),
            )
            for _ in range(layers)
        )
        self.readouts = nn.ModuleList(Readout(channels, channels, group=n) for _ in range(layers))
        self.head = ContrastiveHead(channels)

    def features(self, img, generator=None, return_states: bool = False):
        _check_images(img, self.image_size)
        c = self.embed(img)
        x = torch.randn(c.shape, generator=generator, device=c.device, dtype=c.dtype)
        states = []
        for layer, readout in zip(self.layers, self.readouts):
            if return_states:
                r = layer(x, c, return_trajectory=True)
                x = r.x
                states.append(r.trajectory)
            else:
                x = layer(x, c)
            c = readout(x)
        return (c, states) if return_states else c

    def forward(self, img, generator=None):
        return self.head(self.features(img, generator))


class ImageIterated(nn.Module):
    """ItrSA (``mixer="attn"``) or ItrConv (``mixer="conv"``) on patches, T iterations, shared weights."""

    def __init__(
        self,
        image_size: int = 32,
        patch: int = 4,
        channels: int = 128,
        layers: int = 1,
        steps: int = 8,
        mixer: str = "attn",
        kernel_size: int = 5,
        heads: int = 8,
    ):
        super().__init__()
        self.image_size, self.patch, self.channels = image_size, patch, channels
        self.grid = (image_size // patch, image_size // patch)
        self.embed = PatchEmbed(channels, patch)
        self.net = IteratedNetwork(
            channels, self.grid, blocks=layers, steps=steps, heads=heads, mixer=mixer, kernel_size=kernel_size
        )
        self.head = ContrastiveHead(channels)

    def features(self, img, generator=None, return_states: bool = False):
        _check_images(img, self.image_size)
        tok = self.embed(img).flatten(2).transpose(1, 2)
        out = self.net(tok).transpose(1, 2).reshape(img.shape[0], self.channels, *self.grid)
        return (out, []) if return_states else out

    def forward(self, img, generator=None):
        return self.head(self.features(img, generator))
