"""Travelling waves: one Kuramoto layer with a fixed random conv coupling driven by an image.

Masking the background (``c = 0`` there) confines the waves to the object.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from akorn.core.layer import KuramotoLayer
from akorn.core.oscillators import order_parameter
from akorn.errors import UserError


def default_image(size: int = 64) -> np.ndarray:
    """A picture drawn in code (so it is always there offline): a disc, a square and a bar on a dark ground."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.full((size, size, 3), 0.06, np.float32)
    disc = (xx - 0.32) ** 2 + (yy - 0.38) ** 2 < 0.17**2
    square = (np.abs(xx - 0.7) < 0.14) & (np.abs(yy - 0.62) < 0.14)
    bar = (np.abs(yy - 0.85) < 0.05) & (xx > 0.15) & (xx < 0.55)
    img[disc] = (0.95, 0.55, 0.15)
    img[square] = (0.2, 0.6, 0.95)
    img[bar] = (0.4, 0.9, 0.4)
    return img


def image_to_rgb(im) -> np.ndarray:
    """A PIL image of any mode -> ``(H, W, 3)`` floats in [0, 1], keeping the full range of 16-bit
    and 32-bit greyscale (PIL's own RGB conversion clips those at 255)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
        a = np.clip(a / top, 0.0, 1.0) if im.mode != "F" else (a - a.min()) / max(float(np.ptp(a)), 1e-12)
        return np.repeat(a.astype(np.float32)[..., None], 3, -1)
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def load_image(path: str | Path, size: int) -> np.ndarray:
    """An image file as ``(H, W, 3)`` floats in [0, 1], resized to ``size`` x ``size`` unless ``size`` is 0."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgb = image_to_rgb(im)
    except FileNotFoundError:
        raise UserError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"image {path} is a folder, not a file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if size > 0:
        resized = Image.fromarray((rgb * 255).round().astype(np.uint8)).resize((size, size), Image.BILINEAR)
        rgb = np.asarray(resized, dtype=np.float32) / 255.0
    return rgb


def check_run_size(height: int, width: int, channels: int, steps: int, limit_bytes: int | None = None):
    """Refuse a run whose trajectory (``(T+1) x H x W x C`` floats, kept for the video) would not fit:
    at most half the memory available now, or ``limit_bytes``."""
    need = (steps + 1) * height * width * channels * 4 * 3  # states, their colours, the frames
    if limit_bytes is None:
        try:
            limit_bytes = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
        except (ValueError, OSError, AttributeError):
            limit_bytes = 4 << 30
    if need > limit_bytes:
        raise UserError(
            f"a {height}x{width} image over {steps} steps needs about {need / 2**30:.1f} GiB, more than "
            f"the {limit_bytes / 2**30:.1f} GiB at hand; resize it (--size 64) or run fewer --steps"
        )


def load_mask(path: str | Path, shape: tuple[int, int], original: tuple[int, int] | None = None) -> np.ndarray:
    """A mask image (non-zero = object) of the image's size (before or after resizing)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L")
            size = (im.height, im.width)
            if size != tuple(shape) and (original is None or size != tuple(original)):
                raise UserError(
                    f"mask {path} is {size[0]}x{size[1]}, the image is "
                    f"{(original or shape)[0]}x{(original or shape)[1]}"
                )
            if size != tuple(shape):
                im = im.resize((shape[1], shape[0]), Image.NEAREST)
            return np.asarray(im) > 0
    except FileNotFoundError:
        raise UserError(f"mask not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"mask {path} is a folder, not a file") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"cannot read mask {path}: {e}") from None


@torch.no_grad()
def run_waves(
    image: np.ndarray,
    mask: np.ndarray | None,
    n: int = 2,
    oscillators: int = 4,
    steps: int = 96,
    kernel_size: int = 9,
    gamma: float = 0.5,
    omega: float = 0.3,
    coupling_scale: float = 1.0,
    stimulus_scale: float = 1.0,
    seed: int = 0,
):
    """Run the layer from a random state; returns states ``(T+1, H*W, C)`` and energies ``(T+1,)``."""
    H, W, _ = image.shape
    C = n * oscillators
    g = torch.Generator().manual_seed(seed)
    layer = KuramotoLayer(
        C,
        n=n,
        coupling="conv",
        kernel_size=kernel_size,
        omega="global" if n % 2 == 0 else "none",
        omega_init=omega,
        gamma=gamma,
        c_norm=None,
        steps=steps,
    )
    conv = layer.coupling.conv
    conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * coupling_scale / (kernel_size * C**0.5))
    conv.bias.zero_()
    img = torch.from_numpy(image).permute(2, 0, 1)[None]  # (1, 3, H, W)
    proj = torch.randn(C, 3, generator=g)
    c = torch.einsum("oc,bchw->bohw", proj, img - 0.5) * stimulus_scale
    if mask is not None:
        c = c * torch.from_numpy(mask.astype(np.float32))[None, None]
    x0 = torch.randn(1, C, H, W, generator=g)
    r = layer(x0, c, return_trajectory=True, return_energy=True)
    states = r.trajectory[0].flatten(2).transpose(1, 2)  # (T+1, HW, C)
    return states, r.energy[0], layer


def order_curves(states: torch.Tensor, n: int, region: np.ndarray | None) -> dict[str, np.ndarray]:
    """Order parameter per step over the whole image and, if given, inside the region."""
    out = {"whole image": order_parameter(states, n, channel_dim=-1, dims=(1,)).numpy()}
    if region is not None and region.any():
        sel = torch.from_numpy(region.reshape(-1))
        out["object (mask)"] = order_parameter(states[:, sel], n, channel_dim=-1, dims=(1,)).numpy()
    return out
