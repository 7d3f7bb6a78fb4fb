"""AugMix (Hendrycks et al., 2020) on batches, with torchvision's defaults as the authors' recipe uses
them: severity 3, 3 chains of 1-3 operations, Dirichlet(1) chain weights, Beta(1, 1) mixing with the
original, all 13 operations, magnitudes from torchvision's 10-bin tables.

Every image draws its own operations and magnitudes; images that drew the same operation at the same
place in the same chain are transformed together.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from akorn.experiments.classify.augment import affine
from akorn.experiments.colour import blend, grayscale

SEVERITY, WIDTH, MAX_DEPTH, BINS = 3, 3, 3, 10
OPS = (
    "autocontrast",
    "equalize",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "brightness",
    "color",
    "contrast",
    "sharpness",
)
SIGNED = {"rotate", "shear_x", "shear_y", "translate_x", "translate_y", "brightness", "color", "contrast", "sharpness"}


def magnitude(op: str, level: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision's magnitude table entry ``level`` (0 .. SEVERITY-1) of ``op``."""
    frac = level.float() / (BINS - 1)
    if op in ("shear_x", "shear_y"):
        return 0.3 * frac
    if op in ("translate_x", "translate_y"):
        return (size / 3.0) * frac
    if op == "rotate":
        return 30.0 * frac
    if op == "posterize":
        return 4 - (level.float() / ((BINS - 1) / 4)).round()
    if op == "solarize":
        return 1.0 - frac
    return 0.9 * frac  # brightness, color, contrast, sharpness


def _levels(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().clamp(0, 255)


def autocontrast(x):
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    scale = torch.where(hi > lo, 1 / (hi - lo).clamp(min=1e-12), torch.ones_like(hi))
    return torch.where(hi > lo, (x - lo) * scale, x).clamp(0, 1)


def equalize(x):
    """Per-channel histogram equalisation on 256 levels (PIL's rule, as torchvision applies it)."""
    B, C, H, W = x.shape
    v = _levels(x).long().view(B * C, H * W)
    hist = torch.zeros(B * C, 256, device=x.device).scatter_add_(1, v, torch.ones_like(v, dtype=torch.float))
    last = hist.gather(1, (v.max(dim=1, keepdim=True).values))  # count of the top level present
    step = torch.div(hist.sum(1, keepdim=True) - last, 255, rounding_mode="floor")
    half = torch.div(step, 2, rounding_mode="floor")
    lut = torch.div(hist.cumsum(1) + half, step.clamp(min=1), rounding_mode="floor")
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut[:, :-1]], 1).clamp(0, 255)
    out = torch.where(step > 0, lut.gather(1, v), v.float())
    return (out / 255).view(B, C, H, W)


def posterize(x, bits):
    shift = (8 - bits).long()[:, None, None, None]
    v = _levels(x).long()
    return ((v >> shift) << shift).float() / 255


def solarize(x, threshold):
    return torch.where(x >= threshold[:, None, None, None], 1 - x, x)


def sharpness(x, factor):
    k = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=x.device, dtype=x.dtype) / 13
    C = x.shape[1]
    smooth = F.conv2d(x, k.expand(C, 1, 3, 3), padding=1, groups=C)
    smooth[..., 0, :], smooth[..., -1, :] = x[..., 0, :], x[..., -1, :]  # borders stay, as in PIL
    smooth[..., :, 0], smooth[..., :, -1] = x[..., :, 0], x[..., :, -1]
    return blend(x, smooth, factor)


def geometric(x, op, m):
    """Rotation (degrees), shear or translation (pixels) about the centre, bilinear, zeros outside."""
    B, _, H, W = x.shape
    theta = torch.zeros(B, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    if op == "rotate":
        a = m * math.pi / 180
        theta[:, 0, 0], theta[:, 0, 1] = a.cos(), -a.sin()
        theta[:, 1, 0], theta[:, 1, 1] = a.sin(), a.cos()
    elif op == "shear_x":
        theta[:, 0, 1] = m
    elif op == "shear_y":
        theta[:, 1, 0] = m
    elif op == "translate_x":
        theta[:, 0, 2] = -2 * m / W
    else:
        theta[:, 1, 2] = -2 * m / H
    return affine(x, theta)


def apply(op: str, x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    m = magnitude(op, level, x.shape[-1]).to(x.device)
    if op in SIGNED:
        m = m * sign
    if op == "autocontrast":
        return autocontrast(x)
    if op == "equalize":
        return equalize(x)
    if op == "posterize":
        return posterize(x, m)
    if op == "solarize":
        return solarize(x, m)
    if op == "brightness":
        return blend(x, torch.zeros_like(x), 1 + m)
    if op == "color":
        return blend(x, grayscale(x), 1 + m)
    if op == "contrast":
        return blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x), 1 + m)
    if op == "sharpness":
        return sharpness(x, 1 + m)
    return geometric(x, op, m)


def augmix(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    B, dev = x.shape[0], x.device

    def draw(shape, high):
        return torch.randint(high, shape, generator=g, device=dev)

    # With every concentration 1 (torchvision's alpha), Dirichlet weights are normalised Exp(1) draws
    # and the Beta(1, 1) mixing weight is uniform.
    e = -torch.rand(B, WIDTH, generator=g, device=dev).clamp(min=1e-12).log()
    weights = e / e.sum(1, keepdim=True)
    m = torch.rand(B, generator=g, device=dev)
    mix = torch.zeros_like(x)
    for chain in range(WIDTH):
        depth = 1 + draw((B,), MAX_DEPTH)
        aug = x.clone()
        for d in range(MAX_DEPTH):
            op_idx, level = draw((B,), len(OPS)), draw((B,), SEVERITY)
            sign = torch.where(torch.rand(B, generator=g, device=dev) < 0.5, -1.0, 1.0)
            active = depth > d
            for k, op in enumerate(OPS):
                rows = (active & (op_idx == k)).nonzero().flatten()
                if len(rows):
                    aug[rows] = apply(op, aug[rows], level[rows], sign[rows]).clamp(0, 1)
        mix += weights[:, chain, None, None, None] * aug
    return (m[:, None, None, None] * x + (1 - m[:, None, None, None]) * mix).clamp(0, 1)
