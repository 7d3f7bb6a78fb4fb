"""Sudoku datasets: readers for the SATNet and RRN formats and plain puzzle lists, downloads, generation.

A :class:`SudokuSet` holds ``quiz`` and ``solution`` as ``(n, 81)`` uint8 tensors, row-major,
0 for blank in ``quiz``.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import random
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from akorn.engine.files import decode_lines
from akorn.errors import UserError
from akorn.experiments.sudoku import solver

# Public sources of the benchmark data (what the SATNet and RRN authors distribute).
SATNET_URL = "https://powei.tw/sudoku.zip"  # sudoku/features.pt, labels.pt, perm.pt
RRN_URL = "https://www.dropbox.com/s/rp3hbjs91xiqdgc/sudoku-hard.zip?dl=1"  # sudoku-hard/{train,valid,test}.csv
EXPECTED_ROWS = {"satnet": 10000, "rrn-train": 180000, "rrn-valid": 18000, "rrn-test": 18000}


@dataclass
class SudokuSet:
    quiz: torch.Tensor  # (n, 81) uint8
    solution: torch.Tensor  # (n, 81) uint8
    source: str = ""
    index: torch.Tensor | None = None  # (n,) each board's place in the file it came from

    def __post_init__(self):
        if self.index is None:
            self.index = torch.arange(self.quiz.shape[0])

    def __len__(self) -> int:
        return self.quiz.shape[0]

    def __getitem__(self, idx) -> SudokuSet:
        return SudokuSet(self.quiz[idx], self.solution[idx], self.source, self.index[idx])

    def givens(self) -> torch.Tensor:
        return (self.quiz > 0).sum(1)

    def batch(self, idx: torch.Tensor) -> dict:
        return {"quiz": self.quiz[idx].long(), "solution": self.solution[idx].long()}


def read_lines(path: Path) -> list[str]:
    """The lines of a text file, plain or ``.xz`` / ``.gz`` compressed; unreadable files are a one-line
    :class:`UserError` naming the file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a file")
    try:
        if path.suffix == ".xz":
            with lzma.open(path) as f:
                raw = f.read()
        elif path.suffix == ".gz":
            with gzip.open(path) as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise UserError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    return decode_lines(raw, str(path))


def parse_grid(text: str) -> list[int]:
    """81 characters, digits with '0' or '.' for blanks -> list of ints. Raises ValueError with the reason."""
    s = text.strip()
    if len(s) != 81:
        raise ValueError(f"a puzzle has 81 cells, got {len(s)} characters")
    bad = sorted({ch for ch in s if ch not in "0123456789."})
    if bad:
        raise ValueError(f"unexpected characters {''.join(bad)!r} (use digits, with 0 or . for blanks)")
    return [0 if ch == "." else int(ch) for ch in s]


def read_csv(path: str | Path, check: bool = True) -> SudokuSet:
    """``quiz,solution`` rows (optional header line; plain, .xz or .gz).

    With ``check``, every solution must be a valid grid agreeing with its quiz.
    Errors name the file and line.
    """
    path = Path(path)
    quizzes, solutions = [], []
    for lineno, line in enumerate(read_lines(path), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(",")
        if lineno == 1 and not parts[0].strip().replace(".", "0").isdigit():
            continue  # header
        if len(parts) != 2:
            raise UserError(f"{path}:{lineno}: expected 'quiz,solution', got {len(parts)} fields")
        try:
            q, s = parse_grid(parts[0]), parse_grid(parts[1])
        except ValueError as e:
            raise UserError(f"{path}:{lineno}: {e}") from None
        if check and not solver.is_valid_solution(s, q):
            raise UserError(f"{path}:{lineno}: the solution is not a valid grid agreeing with the quiz")
        quizzes.append(q)
        solutions.append(s)
    if not quizzes:
        raise UserError(f"{path}: no puzzles found")
    return SudokuSet(torch.tensor(quizzes, dtype=torch.uint8), torch.tensor(solutions, dtype=torch.uint8), str(path))


def onehot_to_digits(t: torch.Tensor) -> torch.Tensor:
    """(n, 9, 9, 9) one-hot (all zeros for blank) -> (n, 81) digits."""
    t = t.reshape(t.shape[0], 81, 9)
    filled = t.sum(-1) > 0
    return torch.where(filled, t.argmax(-1) + 1, torch.zeros((), dtype=torch.long)).to(torch.uint8)


def read_satnet(directory: str | Path) -> SudokuSet:
    """The SATNet original: ``features.pt`` and ``labels.pt`` one-hot tensors in ``directory``."""
    from akorn.engine.checkpoint import safe_torch_load

    d = Path(directory)
    feats, labels = safe_torch_load(d / "features.pt"), safe_torch_load(d / "labels.pt")
    for name, t in (("features.pt", feats), ("labels.pt", labels)):
        if not torch.is_tensor(t) or t.ndim != 4 or tuple(t.shape[1:]) != (9, 9, 9):
            raise UserError(f"{d / name}: expected a (n, 9, 9, 9) one-hot tensor")
    if feats.shape[0] != labels.shape[0]:
        raise UserError(f"{d}: features.pt has {feats.shape[0]} boards, labels.pt {labels.shape[0]}")
    return SudokuSet(onehot_to_digits(feats), onehot_to_digits(labels), str(d))


def stratified(ds: SudokuSet, per_givens: int) -> SudokuSet:
    """The first ``per_givens`` boards of every number of givens, in file order."""
    givens = ds.givens()
    keep = torch.cat([torch.nonzero(givens == g).flatten()[:per_givens] for g in torch.unique(givens)])
    return ds[keep.sort().values]


def satnet_split(full: SudokuSet, split: str) -> SudokuSet:
    """Standard split: the first 9,000 boards train, the last 1,000 test."""
    if split == "train":
        return full[: min(9000, len(full))]
    if split == "test":
        return full[9000:]
    raise UserError(f"SATNet split must be train or test, got {split!r}")


def read_puzzles(lines, source: str = "input") -> tuple[list[list[int] | None], list[str | None]]:
    """Plain 81-character puzzles, one a line. Returns grids (None where bad) and errors (None where good)."""
    grids, errors = [], []
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            g = parse_grid(line.split(",")[0])
            bad = solver.conflicts(g)
            if bad:
                more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
                raise ValueError("contradictory clues: " + "; ".join(bad[:3]) + more)
            grids.append(g)
            errors.append(None)
        except ValueError as e:
            grids.append(None)
            errors.append(f"{source}:{lineno}: {e}")
    return grids, errors


def generate_set(n: int, givens_range: tuple[int, int], seed: int = 0, style: str = "unique") -> SudokuSet:
    """``n`` puzzles with unique solutions, givens drawn uniformly from the inclusive range.

    ``style`` sets how hard they are (:func:`akorn.experiments.sudoku.solver.generate`); ``"satnet"``
    matches the SATNet boards, ``"unique"`` allows puzzles that need search.
    """
    if style not in solver.STYLES:
        raise UserError(f"unknown puzzle style {style!r}; choose one of {', '.join(solver.STYLES)}")
    rng = random.Random(seed)
    lo, hi = givens_range
    quizzes, solutions = [], []
    for _ in range(n):
        q, s = solver.generate(rng.randint(lo, hi), rng, style=style)
        quizzes.append(q)
        solutions.append(s)
    return SudokuSet(
        torch.tensor(quizzes, dtype=torch.uint8),
        torch.tensor(solutions, dtype=torch.uint8),
        f"generated{givens_range}-{style}",
    )


def write_csv(ds: SudokuSet, path: str | Path):
    path = Path(path)
    opener = lzma.open if path.suffix == ".xz" else gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as f:
        for q, s in zip(ds.quiz.tolist(), ds.solution.tolist()):
            f.write("".join(map(str, q)) + "," + "".join(map(str, s)) + "\n")


def _validate_all(ds: SudokuSet, name: str):
    """Content check standing in for archive hashes: every board valid and unique in count."""
    expected = EXPECTED_ROWS.get(name)
    if expected is not None and len(ds) != expected:
        raise UserError(f"downloaded {name} has {len(ds)} boards, expected {expected}")
    for i, (q, s) in enumerate(zip(ds.quiz.tolist(), ds.solution.tolist())):
        if not solver.is_valid_solution(s, q):
            raise UserError(f"downloaded {name}: board {i} is not a valid solution of its quiz")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(name: str, data_dir: str | Path) -> Path:
    """Fetch ``satnet`` or ``rrn`` into ``data_dir`` (needs internet); returns the extracted folder.

    The archive's sha256 is recorded in ``data_dir/<name>.sha256``; every board is checked
    for validity and the board counts against the published sizes.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    url = {"satnet": SATNET_URL, "rrn": RRN_URL}.get(name)
    if url is None:
        raise UserError(f"unknown dataset {name!r}; choose satnet or rrn")
    archive = data_dir / f"{name}.zip"
    tmp = archive.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"could not download {url}: {e}; pass data=PATH to local files instead") from None
    tmp.replace(archive)
    (data_dir / f"{name}.sha256").write_text(sha256(archive) + "  " + archive.name + "\n")
    with zipfile.ZipFile(archive) as z:
        z.extractall(data_dir)
    out = data_dir / ("sudoku" if name == "satnet" else "sudoku-hard")
    if name == "satnet":
        _validate_all(read_satnet(out), "satnet")
    else:
        for split in ("valid", "test"):
            _validate_all(read_csv(out / f"{split}.csv", check=False), f"rrn-{split}")
    return out


def load(spec: str, split: str = "train") -> SudokuSet:
    """Resolve a data spec to a set.

    ``spec``: a CSV file (``quiz,solution``; .xz/.gz ok), a SATNet folder (features.pt/labels.pt,
    ``split`` picks the standard train/test part), an RRN folder (``split``.csv), or
    ``generate:N:LO-HI[:SEED[:STYLE]]`` for N generated puzzles with LO..HI givens
    (STYLE: unique, singles or satnet; default unique).
    """
    if spec.startswith("generate:"):
        parts = spec.split(":")
        try:
            if len(parts) > 5:
                raise ValueError
            n = int(parts[1])
            lo, hi = (int(v) for v in parts[2].split("-"))
            seed = int(parts[3]) if len(parts) > 3 else 0
        except (IndexError, ValueError):
            raise UserError(f"bad generator spec {spec!r}; use generate:N:LO-HI[:SEED[:STYLE]]") from None
        return generate_set(n, (lo, hi), seed, parts[4] if len(parts) > 4 else "unique")
    p = Path(spec)
    if p.is_dir():
        if (p / "features.pt").exists():
            return satnet_split(read_satnet(p), split)
        name = {"train": "train.csv", "valid": "valid.csv", "test": "test.csv"}.get(split, f"{split}.csv")
        if (p / name).exists():
            return read_csv(p / name)
        raise UserError(f"{p}: neither a SATNet folder (features.pt) nor an RRN folder ({name})")
    if not p.exists():
        raise UserError(f"data not found: {p}")
    return read_csv(p)


def format_grid(grid) -> str:
    """An 81-digit board as nine lines with box separators; 0 prints as '.'."""
    lines = []
    for r in range(9):
        if r and r % 3 == 0:
            lines.append("------+-------+------")
        row = grid[9 * r : 9 * r + 9]
        lines.append(" | ".join(" ".join(str(d) if d else "." for d in row[i : i + 3]) for i in (0, 3, 6)))
    return "\n".join(lines)
