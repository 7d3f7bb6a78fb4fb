"""SimCLR augmentations in torch, batched, driven by an explicit generator (no torchvision).

Random resized crop, colour jitter (brightness, contrast, saturation 0.4, hue 0.1) with
probability 0.8, grayscale with probability 0.2. Hue is shifted by rotating chroma in YIQ
space, a close and cheap stand-in for an HSV hue shift.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LUMA = torch.tensor([0.299, 0.587, 0.114])


def _u(shape, lo, hi, g):
    return lo + (hi - lo) * torch.rand(shape, generator=g, device=g.device)


def random_resized_crop(x: torch.Tensor, g: torch.Generator, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> same size, each image a random crop resized back (bilinear)."""
    B = x.shape[0]
    area = _u(B, *scale, g)
    logr = _u(B, math.log(ratio[0]), math.log(ratio[1]), g)
    r = torch.exp(logr)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = _u(B, 0, 1, g) * (1 - w) + w / 2
    cy = _u(B, 0, 1, g) * (1 - h) + h / 2
    theta = torch.zeros(B, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1] = w, h
    theta[:, 0, 2], theta[:, 1, 2] = 2 * cx - 1, 2 * cy - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def colour_jitter(x, g, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8):
    B = x.shape[0]
    on = (torch.rand(B, generator=g, device=g.device) < p).float().view(B, 1, 1, 1)
    luma = LUMA.to(x.device).view(1, 3, 1, 1)
    y = x * _u(B, 1 - brightness, 1 + brightness, g).view(B, 1, 1, 1)
    mean = (y * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    y = (y - mean) * _u(B, 1 - contrast, 1 + contrast, g).view(B, 1, 1, 1) + mean
    grey = (y * luma).sum(1, keepdim=True)
    y = (y - grey) * _u(B, 1 - saturation, 1 + saturation, g).view(B, 1, 1, 1) + grey
    # hue: rotate the chroma plane of YIQ
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device)
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, y)
    a = _u(B, -hue, hue, g) * 2 * math.pi
    ca, sa = a.cos().view(B, 1, 1), a.sin().view(B, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack((yiq[:, 0], ca * i - sa * q, sa * i + ca * q), 1)
    y = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq).clamp(0, 1)
    return on * y + (1 - on) * x


def random_grayscale(x, g, p=0.2):
    B = x.shape[0]
    on = (torch.rand(B, generator=g, device=g.device) < p).float().view(B, 1, 1, 1)
    grey = (x * LUMA.to(x.device).view(1, 3, 1, 1)).sum(1, keepdim=True).expand_as(x)
    return on * grey + (1 - on) * x


def simclr_views(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One augmented view of every image; call twice for a SimCLR pair."""
    return random_grayscale(colour_jitter(random_resized_crop(x, g), g), g)
