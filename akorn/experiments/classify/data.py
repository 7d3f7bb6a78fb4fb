"""Labelled image sets: the official CIFAR-10 python batches, image folders (one sub-folder per class,
ImageNet's layout), ``.npz`` arrays and Fashion-MNIST's IDX files.

In memory a set is ``images`` uint8 ``(N, H, W, C)`` and ``labels`` int64; an image folder too large
for memory streams instead (:class:`FolderSet`), its files decoded and resized in worker processes.
Both answer ``batch(indices) -> {"images", "labels"}`` for the training engine.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import tarfile
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from akorn.errors import UserError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm")


@dataclass
class ImageSet:
    """Images in memory: ``images`` uint8 ``(N, H, W, C)``, ``labels`` int64 ``(N,)``."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    source: str = ""

    def __post_init__(self):
        check_set(self.images, self.labels, len(self.class_names), self.source)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def __getitem__(self, rows) -> ImageSet:
        return ImageSet(self.images[rows], self.labels[rows], self.class_names, self.source)

    def batch(self, indices: torch.Tensor) -> dict:
        return {"images": self.images[indices], "labels": self.labels[indices]}


def check_set(images: torch.Tensor, labels: torch.Tensor, classes: int, source: str):
    where = f"{source}: " if source else ""
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise UserError(f"{where}images must be (N, H, W, 1 or 3) uint8, got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        raise UserError(f"{where}images must be uint8, got {images.dtype}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise UserError(f"{where}{len(images)} images but labels of shape {tuple(labels.shape)}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        bad = labels[(labels < 0) | (labels >= classes)][0]
        raise UserError(f"{where}label {int(bad)} is outside 0..{classes - 1} ({classes} classes)")


# -- CIFAR-10 -------------------------------------------------------------------------------------


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_cifar10(root: Path) -> Path:
    """Fetch and unpack the official python batches into ``root`` (checksum checked); their folder."""
    folder = root / "cifar-10-batches-py"
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-10-python.tar.gz"
    if not archive.exists() or md5sum(archive) != CIFAR10_MD5:
        part = archive.with_suffix(".part")
        try:
            urllib.request.urlretrieve(CIFAR10_URL, part)
        except OSError as e:
            part.unlink(missing_ok=True)
            raise UserError(f"cannot download CIFAR-10 from {CIFAR10_URL}: {e}") from None
        if md5sum(part) != CIFAR10_MD5:
            part.unlink()
            raise UserError(f"the CIFAR-10 download does not match its checksum {CIFAR10_MD5}; try again")
        part.replace(archive)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return folder


def read_cifar10(folder: str | Path, split: str = "train") -> ImageSet:
    """The official ``cifar-10-batches-py`` pickles: ``data_batch_1..5`` (train) or ``test_batch``."""
    folder = Path(folder)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    for name in names:
        path = folder / name
        try:
            with open(path, "rb") as f:
                d = pickle.load(f, encoding="bytes")
            data, lab = d[b"data"], d[b"labels"]
        except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError) as e:
            raise UserError(f"{path}: not a readable CIFAR-10 batch ({type(e).__name__}: {e})") from None
        images.append(np.asarray(data, np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(lab, np.int64))
    return ImageSet(
        torch.from_numpy(np.concatenate(images)),
        torch.from_numpy(np.concatenate(labels)),
        CIFAR10_CLASSES,
        str(folder),
    )


# -- arrays ---------------------------------------------------------------------------------------


def read_npz(path: str | Path) -> ImageSet:
    """``images`` (N, H, W, C) or (N, C, H, W), uint8 or floats in [0, 1]; ``labels``; ``class_names`` optional."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z or "labels" not in z:
                raise UserError(f"{path}: needs arrays 'images' and 'labels', has {sorted(z.files)}")
            images, labels = z["images"], z["labels"]
            names = tuple(str(s) for s in z["class_names"]) if "class_names" in z else ()
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable .npz file ({e})") from None
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[3] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating) or images.min() < 0 or images.max() > 1:
            raise UserError(f"{path}: images must be uint8 or floats in [0, 1], got {images.dtype}")
        images = np.round(images * 255).astype(np.uint8)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if not names:
        names = tuple(str(i) for i in range(int(labels.max()) + 1 if len(labels) else 1))
    return ImageSet(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels), names, str(path))


# -- Fashion-MNIST --------------------------------------------------------------------------------

FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as e:
        raise UserError(f"{path}: not a readable IDX file ({e})") from None


def read_fashion_mnist(folder: str | Path, split: str = "train") -> ImageSet:
    """Fashion-MNIST's IDX files (``train-images-idx3-ubyte[.gz]`` ...; Debian's dataset-fashion-mnist)."""
    folder = Path(folder)
    prefix = "train" if split == "train" else "t10k"

    def find(kind):
        for name in (f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte", f"{prefix}-{kind}"):
            for suffix in ("", ".gz"):
                if (folder / (name + suffix)).exists():
                    return folder / (name + suffix)
        raise UserError(f"{folder}: no {prefix}-{kind}-idx* file (Fashion-MNIST IDX files)")

    images, labels = _read_idx(find("images")), _read_idx(find("labels"))
    labels = torch.from_numpy(labels.astype(np.int64))
    return ImageSet(torch.from_numpy(images.copy())[..., None], labels, FASHION_CLASSES, str(folder))


# -- image folders --------------------------------------------------------------------------------


def list_folder(root: str | Path) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Files and labels of a folder with one sub-folder per class (sorted names give the labels)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such image folder")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files, labels = [], []
    for i, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        files += found
        labels += [i] * len(found)
    if not files:
        raise UserError(f"{root}: no images (expected class sub-folders of {', '.join(IMAGE_SUFFIXES)} files)")
    return files, np.asarray(labels, np.int64), tuple(classes)


def decode_image(path: str | Path, size: int | None, channels: int = 3) -> np.ndarray:
    """One file as uint8 ``(H, W, C)``: resized (shorter side, then centre crop) to ``size`` if given."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if channels == 3 else "L")
            if size is not None and im.size != (size, size):
                w, h = im.size
                scale = size / min(w, h)
                im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
                w, h = im.size
                left, top = (w - size) // 2, (h - size) // 2
                im = im.crop((left, top, left + size, top + size))
            a = np.asarray(im, np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise UserError(f"{path}: cannot decode this image ({type(e).__name__}: {e})") from None
    return a if a.ndim == 3 else a[..., None]


def _decode_many(args) -> np.ndarray:
    paths, size, channels = args
    return np.stack([decode_image(p, size, channels) for p in paths])


class FolderSet:
    """An image folder read on demand: each batch's files decoded in ``workers`` processes (the
    engine reads the next batch while a step computes)."""

    streams = True

    def __init__(self, root: str | Path, size: int | None, channels: int = 3, workers: int = 0):
        self.files, labels, self.class_names = list_folder(root)
        self.labels = torch.from_numpy(labels)
        self.source, self.channels, self.workers = str(root), channels, workers
        first = decode_image(self.files[0], size, channels)
        self.size = (first.shape[0], first.shape[1])
        self._size_arg = size if size is not None else None
        if size is None:
            self._size_arg = first.shape[0] if first.shape[0] == first.shape[1] else None
            if self._size_arg is None:
                raise UserError(f"{root}: images are not square ({first.shape[1]}x{first.shape[0]}); give image_size")
        self._pool = None

    def __len__(self) -> int:
        return len(self.files)

    def decode(self, indices) -> np.ndarray:
        paths = [str(self.files[int(i)]) for i in indices]
        if self.workers <= 0 or len(paths) < 2 * self.workers:
            return _decode_many((paths, self._size_arg, self.channels))
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers)
        chunks = [paths[i :: self.workers] for i in range(self.workers)]
        parts = list(self._pool.map(_decode_many, [(c, self._size_arg, self.channels) for c in chunks]))
        out = np.empty((len(paths), *parts[0].shape[1:]), np.uint8)
        for i, part in enumerate(parts):
            out[i :: self.workers] = part
        return out

    def batch(self, indices: torch.Tensor) -> dict:
        return {"images": torch.from_numpy(self.decode(indices.tolist())), "labels": self.labels[indices]}

    def load(self) -> ImageSet:
        """Every image decoded into memory."""
        chunk = 2048
        parts = [self.decode(range(s, min(s + chunk, len(self)))) for s in range(0, len(self), chunk)]
        return ImageSet(torch.from_numpy(np.concatenate(parts)), self.labels, self.class_names, self.source)


# -- by name --------------------------------------------------------------------------------------


def default_root() -> Path:
    return Path(os.environ.get("AKORN_DATA", Path.home() / ".cache" / "akorn"))


def split_folder(root: Path, split: str) -> Path:
    """``root/train`` or ``root/test`` (``root/val``) when the folder has splits, else ``root`` itself."""
    names = ("train",) if split == "train" else ("test", "val")
    for name in names:
        if (root / name).is_dir():
            return root / name
    return root


def load(spec: str, split: str = "train", image_size: int = 0, workers: int = 0, in_memory: bool = True):
    """A labelled set by name: ``cifar10`` (downloaded to $AKORN_DATA, checksum checked),
    ``cifar10:FOLDER`` (the python batches), ``fashion-mnist:FOLDER``, ``FILE.npz`` or an image folder
    (with ``train``/``test`` sub-folders, or one split)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    kind, _, where = spec.partition(":")
    if kind == "cifar10":
        folder = Path(where) if where else download_cifar10(default_root() / "cifar10")
        if (folder / "cifar-10-batches-py").is_dir():
            folder = folder / "cifar-10-batches-py"
        ds = read_cifar10(folder, split)
    elif kind == "fashion-mnist":
        ds = read_fashion_mnist(where or "/usr/share/dataset-fashion-mnist", split)
    elif spec.endswith(".npz"):
        ds = read_npz(spec)
    else:
        folder = split_folder(Path(spec), split)
        fs = FolderSet(folder, image_size or None, 3, workers)
        return fs.load() if in_memory else fs
    if image_size and ds.size != (image_size, image_size):
        raise UserError(f"{spec}: images are {ds.size[0]}x{ds.size[1]}, the config asks for {image_size}x{image_size}")
    return ds
