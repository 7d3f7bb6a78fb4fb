"""SimCLR augmentations in torch, batched, driven by an explicit generator (no torchvision).

Random resized crop, colour jitter (brightness, contrast, saturation 0.4, hue 0.1) with
probability 0.8, grayscale with probability 0.2: the authors' ``simclr_augmentation``, in two styles.

* ``"torchvision"``: as torchvision draws and applies them. The crop box is integer pixels, its
  area from ``crop_scale`` of the image and its aspect ratio drawn up to 10 times until it fits
  (else the whole image, aspect-clamped, centred); the four jitters run in a random order per
  image, each clamped to [0, 1], the hue shifted in HSV. What is left out is the uint8 rounding
  between PIL's steps.
* ``"yiq"``: cheaper and gentler: a continuous crop box clamped to the image, the jitters in a
  fixed order with one clamp at the end, the hue shifted by rotating chroma in YIQ space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from akorn.experiments.colour import blend, grayscale, hsv_to_rgb, rgb_to_hsv

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


VIEW_STYLES = ("torchvision", "yiq")


def simclr_views(x: torch.Tensor, g: torch.Generator, style: str = "torchvision", crop_scale_min: float = 0.08):
    """One augmented view of every image; call twice for a SimCLR pair. ``crop_scale_min`` 0.08
    is torchvision's default, which the authors' Tetrominoes and dSprites training keeps."""
    scale = (crop_scale_min, 1.0)
    if style == "yiq":
        return random_grayscale(colour_jitter(random_resized_crop(x, g, scale=scale), g), g)
    if style != "torchvision":
        raise ValueError(f"style must be one of {VIEW_STYLES}, got {style!r}")
    return random_grayscale(colour_jitter_random_order(pixel_resized_crop(x, g, scale=scale), g), g)


def crop_boxes(B: int, H: int, W: int, g: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """(B, 4) integer boxes (top, left, height, width), drawn as torchvision's RandomResizedCrop
    draws one: 10 tries of area and log-uniform aspect, the first that fits, else the centred
    whole image with its aspect clamped to ``ratio``."""
    tries = 10
    area = H * W * _u((B, tries), *scale, g)
    r = torch.exp(_u((B, tries), math.log(ratio[0]), math.log(ratio[1]), g))
    w = torch.sqrt(area * r).round()
    h = torch.sqrt(area / r).round()
    fits = (w > 0) & (w <= W) & (h > 0) & (h <= H)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((B,), -1, device=g.device))
    own = W / H
    fw = W if ratio[0] <= own <= ratio[1] else (W if own < ratio[0] else round(H * ratio[1]))
    fh = H if ratio[0] <= own <= ratio[1] else (round(W / ratio[0]) if own < ratio[0] else H)
    pick = first.clamp(min=0).unsqueeze(1)
    ok = first >= 0
    w = torch.where(ok, w.gather(1, pick).squeeze(1), torch.full((B,), float(fw), device=g.device))
    h = torch.where(ok, h.gather(1, pick).squeeze(1), torch.full((B,), float(fh), device=g.device))
    # torchvision: top uniform over the integer positions 0 .. H - h (the fallback: centred)
    top = torch.floor(torch.rand(B, generator=g, device=g.device) * (H - h + 1))
    left = torch.floor(torch.rand(B, generator=g, device=g.device) * (W - w + 1))
    top = torch.where(ok, top, torch.round((H - h) / 2))
    left = torch.where(ok, left, torch.round((W - w) / 2))
    return torch.stack([top, left, h, w], 1)


def pixel_resized_crop(x: torch.Tensor, g: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """(B, 3, H, W) -> same size: each image's :func:`crop_boxes` box resized back bilinearly
    (pixel centres, as PIL's and torch's bilinear resize place them)."""
    B, _, H, W = x.shape
    top, left, h, w = crop_boxes(B, H, W, g, scale, ratio).to(x.device).unbind(1)
    theta = torch.zeros(B, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1] = w / W, h / H
    theta[:, 0, 2], theta[:, 1, 2] = (2 * left + w) / W - 1, (2 * top + h) / H - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1], hue turned by ``shift`` (B,) of a full turn, in HSV."""
    h, sat, v = rgb_to_hsv(x).unbind(1)
    return hsv_to_rgb(torch.stack([torch.remainder(h + shift.view(-1, 1, 1), 1.0), sat, v], 1)).clamp(0, 1)


def colour_jitter_random_order(x, g, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8):
    """torchvision's ColorJitter under RandomApply(p): the four adjustments in a random order per
    image, each blended as torchvision blends it and clamped to [0, 1]."""
    B = x.shape[0]
    dev = g.device
    on = (torch.rand(B, generator=g, device=dev) < p).float().view(B, 1, 1, 1)
    order = torch.argsort(torch.rand(B, 4, generator=g, device=dev), 1)
    fb, fc, fs = (_u(B, 1 - s, 1 + s, g) for s in (brightness, contrast, saturation))
    fh = _u(B, -hue, hue, g)
    ops = (
        lambda y: blend(y, torch.zeros_like(y), fb),
        lambda y: blend(y, grayscale(y).mean((1, 2, 3), keepdim=True).expand_as(y), fc),
        lambda y: blend(y, grayscale(y), fs),
        lambda y: shift_hue(y, fh),
    )
    y = x
    for k in range(4):
        which = order[:, k].to(x.device).view(B, 1, 1, 1)
        y = sum((which == j).float() * op(y) for j, op in enumerate(ops))
    return on * y + (1 - on) * x
