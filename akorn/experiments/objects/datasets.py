"""Multi-object images with exact per-object masks, generated deterministically from a seed.

Masks are integer label maps ``(H, W)`` with 0 = background and 1..K = objects (visible
pixels only, after occlusion). Images are uint8 ``(H, W, 3)``.

* Tetrominoes: 35x35, three non-overlapping pieces on black, 5-pixel blocks, six colours,
  cropped to 32x32. Shapes: the 17 fixed tetromino orientations other than the straight piece.
  Layout ``crop35`` (default): pieces anywhere on the 7x7 block grid of the 35x35 image, then the
  centre crop ``[1:33]`` of the reference code's converter, so a piece on the border may lose
  up to 2 pixel rows or columns (never a whole block). Layout ``dense32``: pieces on the 6x6
  block grid inside the top-left 32x32 crop (the generator before ``crop35``): the same three
  pieces in 36 cells instead of 49, so pieces touch in more images (85% against 69% for
  ``crop35``, 320 test images).
* Multi-dSprites "colored on grayscale": 64x64, 2-5 ovals, hearts or squares in random HSV
  colours on a random grey background, with occlusion.
* CLEVR-like: 128x128, 3-6 shaded spheres, cubes and cylinders on a lit ground, painted far to
  near so nearer objects occlude farther ones.

Readers for the real files: DeepMind multi-object data converted to ``.npz`` (``image``
``(N, H, W, 3)`` and ``mask`` ``(N, K, H, W[, 1])``, slot 0 = background) and CLEVRTex folders
(``*.png`` with ``*_flat.png`` index masks). No TensorFlow needed.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from akorn.errors import UserError

# Fixed tetrominoes as (row, col) cells; the straight piece (2 orientations) is left out -> 17.
TETROMINOES = [
    [(0, 0), (0, 1), (1, 0), (1, 1)],  # O
    [(0, 0), (0, 1), (0, 2), (1, 1)],
    [(0, 1), (1, 0), (1, 1), (2, 1)],  # T
    [(0, 1), (1, 0), (1, 1), (1, 2)],
    [(0, 0), (1, 0), (1, 1), (2, 0)],
    [(0, 1), (0, 2), (1, 0), (1, 1)],
    [(0, 0), (1, 0), (1, 1), (2, 1)],  # S
    [(0, 0), (0, 1), (1, 1), (1, 2)],
    [(0, 1), (1, 0), (1, 1), (2, 0)],  # Z
    [(0, 0), (1, 0), (2, 0), (2, 1)],
    [(0, 0), (0, 1), (0, 2), (1, 0)],  # L
    [(0, 0), (0, 1), (1, 1), (2, 1)],
    [(0, 2), (1, 0), (1, 1), (1, 2)],
    [(0, 1), (1, 1), (2, 1), (2, 0)],
    [(0, 0), (1, 0), (1, 1), (1, 2)],  # J
    [(0, 0), (0, 1), (1, 0), (2, 0)],
    [(0, 0), (0, 1), (0, 2), (1, 2)],
]
COLOURS = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255)], np.uint8)
NUM_CLUSTERS = {"tetrominoes": 4, "dsprites": 7, "clevr-like": 11, "clevr": 11, "clevrtex": 11}
IMAGE_SIZE = {"tetrominoes": 32, "dsprites": 64, "clevr-like": 128}


@dataclass
class ObjectSet:
    images: torch.Tensor  # (n, H, W, 3) uint8
    masks: torch.Tensor  # (n, H, W) uint8, 0 = background
    name: str = ""

    def __len__(self):
        return self.images.shape[0]

    def __getitem__(self, idx):
        return ObjectSet(self.images[idx], self.masks[idx], self.name)

    def batch(self, idx):
        return {"images": self.images[idx]}


TETROMINO_LAYOUTS = ("crop35", "dense32")


def check_tetromino_layout(layout: str) -> None:
    if layout not in TETROMINO_LAYOUTS:
        raise UserError(f"tetromino_layout must be one of {TETROMINO_LAYOUTS}, got {layout!r}")


def tetromino(rng: np.random.Generator, layout: str = "crop35", size: int = 35, crop: int = 32, block: int = 5):
    check_tetromino_layout(layout)
    img = np.zeros((size, size, 3), np.uint8)
    mask = np.zeros((size, size), np.uint8)
    cells_per_side = (size if layout == "crop35" else crop) // block
    occupied = np.zeros((cells_per_side, cells_per_side), bool)
    k = 0
    while k < 3:
        cells = TETROMINOES[rng.integers(len(TETROMINOES))]
        rows, cols = np.array(cells).T
        r0 = rng.integers(0, occupied.shape[0] - rows.max())
        c0 = rng.integers(0, occupied.shape[1] - cols.max())
        if occupied[rows + r0, cols + c0].any():
            continue
        occupied[rows + r0, cols + c0] = True
        colour = COLOURS[rng.integers(len(COLOURS))]
        k += 1
        for r, c in zip(rows + r0, cols + c0):
            img[r * block : (r + 1) * block, c * block : (c + 1) * block] = colour
            mask[r * block : (r + 1) * block, c * block : (c + 1) * block] = k
    top = (size - crop) // 2 if layout == "crop35" else 0  # the reference converter keeps rows/cols 1..32
    return img[top : top + crop, top : top + crop], mask[top : top + crop, top : top + crop]


def _shape_mask(kind: str, yy, xx, cy, cx, scale, angle):
    u, v = xx - cx, yy - cy
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = (ca * u + sa * v) / scale, (-sa * u + ca * v) / scale
    if kind == "square":
        return (np.abs(u) < 0.8) & (np.abs(v) < 0.8)
    if kind == "oval":
        return (u / 1.0) ** 2 + (v / 0.6) ** 2 < 1.0
    hx, hy = u * 1.1, -v * 1.1 + 0.25  # heart: (x^2 + y^2 - 1)^3 - x^2 y^3 < 0
    return (hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 < 0


def dsprite(rng: np.random.Generator, size: int = 64):
    grey = rng.uniform(0.0, 1.0)
    img = np.full((size, size, 3), grey, np.float32)
    mask = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    count = rng.integers(2, 6)
    k = 0
    for _ in range(count):
        kind = ("square", "oval", "heart")[rng.integers(3)]
        m = _shape_mask(
            kind,
            yy,
            xx,
            rng.uniform(0.15, 0.85),
            rng.uniform(0.15, 0.85),
            rng.uniform(0.08, 0.18),
            rng.uniform(0, 2 * np.pi),
        )
        if m.sum() < 12:
            continue
        k += 1
        img[m] = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0))
        mask[m] = k
    # relabel so that fully occluded sprites leave no gap in 1..K
    return (img * 255).round().astype(np.uint8), _compact(mask)


def _compact(mask: np.ndarray) -> np.ndarray:
    ids = [i for i in np.unique(mask) if i != 0]
    out = np.zeros_like(mask)
    for new, old in enumerate(ids, 1):
        out[mask == old] = new
    return out


def clevr_like(rng: np.random.Generator, size: int = 128):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    ground = 0.55 + 0.25 * yy  # lit ground, brighter near the viewer
    img = np.repeat(ground[..., None], 3, -1).astype(np.float32) * np.array([0.85, 0.85, 0.88], np.float32)
    mask = np.zeros((size, size), np.uint8)
    light = np.array([-0.5, -0.6, 0.62])
    light /= np.linalg.norm(light)
    n = rng.integers(3, 7)
    objs = sorted(
        [
            (
                rng.uniform(0.35, 0.85),
                rng.uniform(0.12, 0.88),
                rng.uniform(0.06, 0.11),
                rng.integers(3),
                np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.4, 0.9), rng.uniform(0.5, 0.95)), np.float32),
            )
            for _ in range(n)
        ],
        key=lambda o: o[0],
    )  # far (small y) first
    k = 0
    for cy, cx, r, kind, col in objs:
        r = r * (0.7 + 0.5 * cy)  # nearer objects look bigger
        # soft shadow on the ground
        sh = ((xx - cx - 0.3 * r) / (1.2 * r)) ** 2 + ((yy - cy - 0.05 * r) / (0.45 * r)) ** 2 < 1
        img[sh & (mask == 0)] *= 0.75
        if kind == 0:  # sphere: Lambertian shading of a hemisphere
            dx, dy = (xx - cx) / r, (yy - cy) / r
            inside = dx**2 + dy**2 < 1
            dz = np.sqrt(np.clip(1 - dx**2 - dy**2, 0, 1))
            shade = np.clip(dx * light[0] + dy * light[1] + dz * light[2], 0, 1) * 0.75 + 0.25
        elif kind == 1:  # cube: front face and a lighter top face
            front = (np.abs(xx - cx) < r * 0.85) & (yy > cy - r * 0.55) & (yy < cy + r * 0.85)
            top = (yy <= cy - r * 0.55) & (yy > cy - r * 1.05) & (np.abs(xx - cx - (cy - r * 0.55 - yy)) < r * 0.85)
            inside = front | top
            shade = np.where(top, 1.0, 0.7 - 0.2 * (xx - cx) / r)
        else:  # cylinder: body shaded across its width, elliptic top
            body = (np.abs(xx - cx) < r * 0.8) & (yy > cy - r * 0.6) & (yy < cy + r * 0.8)
            cap = ((xx - cx) / (0.8 * r)) ** 2 + ((yy - cy + r * 0.6) / (0.3 * r)) ** 2 < 1
            inside = body | cap
            shade = np.where(cap, 1.0, 0.55 + 0.4 * np.cos(np.clip((xx - cx) / (0.8 * r), -1, 1) * 1.3 + 0.4))
        if inside.sum() < 10:
            continue
        k += 1
        img[inside] = col[None] * shade[inside][:, None]
        mask[inside] = k
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), _compact(mask)


GENERATORS = {"tetrominoes": tetromino, "dsprites": dsprite, "clevr-like": clevr_like}


def generate(name: str, n: int, seed: int = 0, tetromino_layout: str = "crop35") -> ObjectSet:
    """``n`` images of a procedural dataset, the same for the same seed."""
    if name not in GENERATORS:
        raise UserError(f"unknown dataset {name!r}; choose from {sorted(GENERATORS)} or give an .npz / CLEVRTex folder")
    rng = np.random.default_rng(seed)
    make = partial(tetromino, layout=tetromino_layout) if name == "tetrominoes" else GENERATORS[name]
    pairs = [make(rng) for _ in range(n)]
    return ObjectSet(
        torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(np.stack([p[1] for p in pairs])), name
    )


def read_npz(path: str | Path) -> ObjectSet:
    """DeepMind multi-object data converted to npz: ``image`` (N,H,W,3) and ``mask`` (N,K,H,W[,1]) or labels (N,H,W)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
        images, masks = data["image"], data["mask"]
    except (KeyError, ValueError, OSError) as e:
        raise UserError(f"{path}: expected arrays 'image' and 'mask' ({e})") from None
    if images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"{path}: 'image' must be (N, H, W, 3), got {images.shape}")
    if masks.ndim == 5:
        masks = masks[..., 0]
    if masks.ndim == 4:  # (N, K, H, W) soft/binary slots -> labels, slot 0 = background
        masks = masks.argmax(1)
    if masks.shape != images.shape[:3]:
        raise UserError(f"{path}: masks {masks.shape} do not match images {images.shape[:3]}")
    return ObjectSet(torch.from_numpy(images.astype(np.uint8)), torch.from_numpy(masks.astype(np.uint8)), path.stem)


def read_clevrtex(folder: str | Path, size: int = 128, limit: int = 0) -> ObjectSet:
    """CLEVRTex: ``X.png`` with ``X_flat.png`` index mask; centre-cropped to a square and resized."""
    from PIL import Image

    folder = Path(folder)
    masks = sorted(folder.rglob("*_flat.png"))
    if not masks:
        raise UserError(f"{folder}: no CLEVRTex '*_flat.png' masks found")
    if limit:
        masks = masks[:limit]
    ims, ms = [], []
    for mp in masks:
        ip = mp.with_name(mp.name.replace("_flat.png", ".png"))
        if not ip.is_file():
            raise UserError(f"{mp}: image {ip.name} is missing")
        with Image.open(ip) as im, Image.open(mp) as m:
            im, m = im.convert("RGB"), np.asarray(m)
            if m.ndim == 3:
                m = m[..., 0]
            if (im.height, im.width) != m.shape:
                raise UserError(f"{mp}: mask {m.shape} does not match image {(im.height, im.width)}")
            s = min(im.height, im.width)
            t, l = (im.height - s) // 2, (im.width - s) // 2
            im = im.crop((l, t, l + s, t + s)).resize((size, size), Image.BILINEAR)
            mi = Image.fromarray(m[t : t + s, l : l + s].astype(np.uint8)).resize((size, size), Image.NEAREST)
            ims.append(np.asarray(im))
            ms.append(np.asarray(mi))
    return ObjectSet(torch.from_numpy(np.stack(ims)), torch.from_numpy(np.stack(ms)), "clevrtex")


def load(spec: str, n: int, seed: int, image_size: int | None = None, tetromino_layout: str = "crop35") -> ObjectSet:
    """A procedural dataset name, an ``.npz`` file or a CLEVRTex folder."""
    if spec in GENERATORS:
        return generate(spec, n, seed, tetromino_layout)
    p = Path(spec)
    if p.suffix == ".npz":
        ds = read_npz(p)
    elif p.is_dir():
        ds = read_clevrtex(p, image_size or 128, n)
    else:
        raise UserError(
            f"unknown dataset {spec!r}; choose from {sorted(GENERATORS)}, an .npz file or a CLEVRTex folder"
        )
    return ds[:n] if n else ds
