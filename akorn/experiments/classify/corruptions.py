"""Common corruptions (Hendrycks & Dietterich): 15 types x 5 severities, through ``imagecorruptions``.

That package implements the ImageNet-C parameters (made for 224-pixel images); on 32-pixel CIFAR
images they are harsher than CIFAR-10-C's own. Every image's corruption is seeded by (seed, type,
severity, index), so a subset or a resumed evaluation sees the same corrupted pixels.
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np

from akorn.errors import UserError

COMMON = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)


def parse(text: str) -> tuple[str, ...]:
    """``all`` (the 15 common ones), ``none`` or a comma list of names."""
    text = text.strip()
    if text == "all":
        return COMMON
    names = tuple(s.strip() for s in text.split(",") if s.strip() and s.strip() != "none")
    bad = [s for s in names if s not in COMMON]
    if bad:
        raise UserError(f"unknown corruption {bad[0]!r}; choose from all, none or {', '.join(COMMON)}")
    return names


def parse_severities(text: str) -> tuple[int, ...]:
    try:
        sev = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UserError(f"severities must be integers 1..5 separated by commas, got {text!r}") from None
    if not sev or any(s < 1 or s > 5 for s in sev):
        raise UserError(f"severities must be in 1..5, got {text!r}")
    return sev


def check_size(size: tuple[int, int]):
    if min(size) < 32:
        raise UserError(
            f"the corruptions need images of at least 32x32 pixels, these are {size[1]}x{size[0]} (--corruptions none)"
        )


def corrupt_images(images: np.ndarray, name: str, severity: int, first_index: int = 0, seed: int = 0) -> np.ndarray:
    """uint8 ``(B, H, W, 3)`` -> the same images corrupted; image ``i`` is seeded by its index."""
    from imagecorruptions import corrupt

    if name not in COMMON:
        raise UserError(f"unknown corruption {name!r}")
    check_size(images.shape[1:3])
    out = np.empty_like(images)
    state = np.random.get_state()
    try:
        for i, img in enumerate(images):
            np.random.seed(zlib.crc32(f"{seed}:{name}:{severity}:{first_index + i}".encode()))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = corrupt(img, severity=severity, corruption_name=name)
            c = np.asarray(c, np.float64)[: img.shape[0], : img.shape[1]]
            if img.shape[2] == 1:  # the package makes grey images RGB
                c = c.mean(axis=2, keepdims=True) if c.ndim == 3 else c[..., None]
            out[i] = np.clip(c, 0, 255).round().astype(np.uint8)
    finally:
        np.random.set_state(state)
    return out
