"""Make every picture of docs/ from the akorn commands, and write docs/pictures.md.

    python scripts/make_pictures.py                      # a few minutes on 2 CPU cores
    python scripts/make_pictures.py --objects-run RUN    # masks of an object-discovery run of yours

Each picture comes from one command, run here in a subprocess into a scratch folder (``--work``);
this script only picks frames out of the animations, lays them side by side and writes small PNGs
into docs/images. The mask pictures are of the shipped ``pretrained:tetrominoes`` unless
``--objects-run`` names another model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def akorn(*words: str) -> str:
    """Run one akorn command; returns what it printed."""
    cmd = [sys.executable, "-m", "akorn", *map(str, words)]
    print("$ akorn " + " ".join(map(str, words)), flush=True)
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    print(f"  {time.time() - t0:.0f} s", flush=True)
    return r.stdout


def gif_frames(path: Path, picks: list[int]) -> list[np.ndarray]:
    """Frames ``picks`` (negative: from the end) of an animated GIF, as RGB arrays."""
    frames = []
    with Image.open(path) as im:
        n = im.n_frames
        for k in picks:
            im.seek(k % n)
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def strip(frames: list[np.ndarray], gap: int = 4) -> np.ndarray:
    h = max(f.shape[0] for f in frames)
    sep = np.full((h, gap, 3), 255, np.uint8)
    parts = []
    for f in frames:
        pad = np.full((h - f.shape[0], f.shape[1], 3), 255, np.uint8)
        parts += [np.concatenate([f, pad], 0), sep]
    return np.concatenate(parts[:-1], 1)


def save(array_or_path, name: str, width: int | None = None) -> str:
    """A PNG in docs/images (copied or made from an array; shrunk to ``width`` pixels if wider)."""
    im = Image.open(array_or_path).convert("RGB") if isinstance(array_or_path, Path) else Image.fromarray(array_or_path)
    if width and im.width > width:
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    im.save(IMAGES / name, optimize=True)
    return f"images/{name}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/pictures", help="scratch folder for the commands' outputs")
    p.add_argument("--objects-run", help="an object-discovery run folder (default: pretrained:tetrominoes)")
    p.add_argument("--boards", type=int, default=100, help="held-out boards for the extension curves")
    a = p.parse_args()
    work = ROOT / a.work
    work.mkdir(parents=True, exist_ok=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    page = [
        "# Pictures",
        "",
        "Made by `python scripts/make_pictures.py`, which runs the commands written under each",
        "picture and keeps frames of their animations.",
        "",
    ]

    # Travelling waves: one Kuramoto layer with a fixed random conv coupling, driven by an image.
    akorn("viz", "waves", "--threshold", "0.2", "--steps", "96", "--out", work / "waves")
    frames = gif_frames(work / "waves" / "waves.gif", [0, 8, 24, 48, -1])
    save(frames[-1], "waves.png")
    page += [
        "## Travelling waves",
        "",
        f"![frames 0, 8, 24, 48 and 96]({save(strip(frames), 'waves-frames.png', 1200)})",
        "",
        "Each frame: the image, then the oscillator phases with the background masked (c = 0 outside",
        "the object), then without the mask. Frames 0, 8, 24, 48 and 96 of",
        "`akorn viz waves --threshold 0.2 --steps 96`.",
        "",
        f"![energy]({save(work / 'waves' / 'energy.png', 'waves-energy.png')})"
        f" ![order parameter]({save(work / 'waves' / 'order.png', 'waves-order.png')})",
        "",
        "The energy and the order parameter R (1 when every oscillator of a region points the same",
        "way) of the same runs, step by step.",
        "",
    ]

    # A Sudoku board settling.
    akorn("viz", "sudoku", "--out", work / "sudoku", "--seed", "3")
    frames = gif_frames(work / "sudoku" / "sudoku.gif", [0, 2, 4, 8, 16, -1])
    page += [
        "## A Sudoku board settling",
        "",
        f"![frames]({save(strip(frames), 'sudoku-frames.png', 1400)})",
        "",
        "The shipped model on a generated board (`akorn viz sudoku --seed 3`), steps 0, 2, 4, 8, 16 and",
        "64: each cell coloured by its oscillators' state (one PCA over all steps), its decoded digit",
        "green when right and red when wrong, and the energy so far.",
        "",
        f"![energy]({save(work / 'sudoku' / 'sudoku-energy.png', 'sudoku-energy.png')})",
        "",
    ]

    # Test-time extension.
    data = f"generate:{a.boards}:31-42:12345:satnet"
    akorn(
        "sudoku",
        "extension",
        "pretrained",
        "pretrained:sudoku-akorn-c128",
        "--data",
        data,
        "--steps",
        "16,32,64,128",
        "--precision",
        "bf16",
        "--out",
        work / "extension",
    )
    table = (work / "extension" / "table.md").read_text()
    page += [
        "## Test-time extension",
        "",
        f"![board accuracy against T]({save(work / 'extension' / 'plot.png', 'extension.png')})",
        "",
        f"`akorn sudoku extension pretrained pretrained:sudoku-akorn-c128 --data {data} "
        "--steps 16,32,64,128 --precision bf16`: board accuracy against the number of Kuramoto",
        "steps on held-out SATNet-like boards, for the shipped C=512 model and the C=128 model",
        "trained on a CPU ([Sudoku](sudoku.md#test-time-extension-akorn-vs-itrsa-vs-transformer)",
        "has the baselines and the hard boards).",
        "",
        table,
        "",
    ]

    # Object masks, from the shipped model unless another run is given.
    run = a.objects_run or "pretrained:tetrominoes"
    akorn(
        "objects",
        "eval",
        run,
        "--uptile",
        "4",
        "--limit",
        "8",
        "--figure",
        work / "masks.png",
        "--json",
        work / "masks.json",
    )
    report = json.loads((work / "masks.json").read_text())
    akorn("viz", "objects", run, "--out", work / "objects-viz", "--index", "1")
    masks = gif_frames(work / "objects-viz" / "layer1-masks.gif", [0, 2, 4, -1])
    states = gif_frames(work / "objects-viz" / "layer1-states.gif", [0, 2, 4, -1])
    how = f"`{run}`"
    page += [
        "## Objects binding",
        "",
        f"![image, ground truth, masks]({save(work / 'masks.png', 'objects-masks.png', 600)})",
        "",
        f"Image | ground truth | masks with up-tiling ×4, of {how}",
        f"(`akorn objects eval {run} --uptile 4 --limit 8`: FG-ARI {100 * report['fg_ari_mean']:.1f} and",
        f"MBO {100 * report['mbo_mean']:.1f} on these 8 test images; [object discovery](objects.md)",
        "has the trained models).",
        "",
        f"![states and masks over the steps]({save(strip(states + masks), 'objects-steps.png', 1200)})",
        "",
        f"`akorn viz objects {run} --index 1`: the oscillator states (PCA colours) at steps 0, 2, 4 and 8,",
        "then the clusters of the readout at the same steps.",
        "",
    ]

    (ROOT / "docs" / "pictures.md").write_text("\n".join(page))
    total = sum(f.stat().st_size for f in IMAGES.glob("*.png"))
    print(f"wrote docs/pictures.md and {len(list(IMAGES.glob('*.png')))} pictures, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
