"""Training augmentations in torch on whole batches, every draw from one ``torch.Generator``.

The engine gives each step its own generator (a function of seed and step), so augmented batches are
reproduced exactly on resume. Images are float ``(B, C, H, W)`` in [0, 1]. The authors' recipe (their
torchvision pipeline) is flip -> random resized crop (scale 0.2-1) -> colour jitter (0.4, 0.4, 0.4,
0.1) -> AugMix; their "mix" variant adds random L-inf noise up to 64/255.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from akorn.experiments.colour import blend, grayscale, hsv_to_rgb, rgb_to_hsv

AUGMENTATIONS = ("flip", "crop", "jitter", "augmix", "noise")


def parse(spec: str) -> tuple[str, ...]:
    """``"flip,crop,jitter"`` -> the names, checked; ``""`` or ``"none"`` -> none."""
    names = tuple(s.strip() for s in spec.split(",") if s.strip() and s.strip() != "none")
    bad = [s for s in names if s not in AUGMENTATIONS]
    if bad:
        raise ValueError(f"unknown augmentation {bad[0]!r}; choose from {', '.join(AUGMENTATIONS)}")
    return names


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2."""
    mask = torch.rand(x.shape[0], generator=g, device=x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def affine(x: torch.Tensor, theta: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.dtype), [x.shape[0], x.shape[1], *(size or x.shape[2:])], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def resized_crop(
    x: torch.Tensor, g: torch.Generator, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), size: int | None = None
) -> torch.Tensor:
    """torchvision's RandomResizedCrop per image: area fraction in ``scale``, aspect ratio log-uniform
    in ``ratio``, resampled bilinearly to ``size`` (default: the input size)."""
    B, _, H, W = x.shape
    dev = x.device
    area = _uniform(B, *scale, g, dev)
    logr = _uniform(B, math.log(ratio[0]), math.log(ratio[1]), g, dev)
    r = logr.exp()
    w = (area * r).sqrt().clamp(max=1.0)  # fractions of the width and height
    h = (area / r).sqrt().clamp(max=1.0)
    cx = _uniform(B, 0, 1, g, dev) * (1 - w) + w / 2  # centre, as a fraction
    cy = _uniform(B, 0, 1, g, dev) * (1 - h) + h / 2
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = w, 2 * cx - 1
    theta[:, 1, 1], theta[:, 1, 2] = h, 2 * cy - 1
    out = size or H
    return affine(x, theta, (out, out if size else W)).clamp(0, 1)


def colour_jitter(x: torch.Tensor, g: torch.Generator, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1):
    """torchvision's ColorJitter: factors drawn per image, the four operations in a random order per batch."""
    B, dev = x.shape[0], x.device
    order = torch.randperm(4, generator=g, device="cpu" if dev.type != "cpu" else dev).tolist()
    for op in order:
        if op == 0 and brightness:
            x = blend(x, torch.zeros_like(x), _uniform(B, 1 - brightness, 1 + brightness, g, dev))
        elif op == 1 and contrast:
            mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
            x = blend(x, mean, _uniform(B, 1 - contrast, 1 + contrast, g, dev))
        elif op == 2 and saturation and x.shape[1] == 3:
            x = blend(x, grayscale(x), _uniform(B, 1 - saturation, 1 + saturation, g, dev))
        elif op == 3 and hue and x.shape[1] == 3:
            hsv = rgb_to_hsv(x)
            shift = _uniform(B, -hue, hue, g, dev)[:, None, None]
            hsv = torch.stack([(hsv[:, 0] + shift) % 1.0, hsv[:, 1], hsv[:, 2]], 1)
            x = hsv_to_rgb(hsv).clamp(0, 1)
    return x


def linf_noise(x: torch.Tensor, g: torch.Generator, eps: float = 64 / 255) -> torch.Tensor:
    """The "mix" variant's noise: ``x + e * sign(N(0, 1))`` with ``e ~ U(0, eps)`` per image, clamped.

    (The authors' code draws e once when it builds its transform, so one e serves a whole run; here
    every image draws its own.)"""
    e = _uniform(x.shape[0], 0, eps, g, x.device)[:, None, None, None]
    sign = torch.randn(x.shape, generator=g, device=x.device).sign()
    return (x + e * sign).clamp(0, 1)


def augment(
    x: torch.Tensor, g: torch.Generator, names: tuple[str, ...], crop_scale=(0.2, 1.0), noise_eps: float = 64 / 255
) -> torch.Tensor:
    """Apply ``names`` in the recipe's order (flip, crop, jitter, augmix, noise)."""
    if "flip" in names:
        x = flip(x, g)
    if "crop" in names:
        x = resized_crop(x, g, crop_scale)
    if "jitter" in names:
        x = colour_jitter(x, g)
    if "augmix" in names:
        from akorn.experiments.classify.augmix import augmix

        x = augmix(x, g)
    if "noise" in names:
        x = linf_noise(x, g, noise_eps)
    return x
