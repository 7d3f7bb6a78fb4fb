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


def save_gif(frames: list[np.ndarray], name: str, width: int, fps: int = 12) -> str:
    """A small looping GIF in docs/images."""
    ims = [Image.fromarray(f) for f in frames]
    if ims[0].width > width:
        size = (width, round(ims[0].height * width / ims[0].width))
        ims = [im.resize(size, Image.LANCZOS) for im in ims]
    ims[0].save(IMAGES / name, save_all=True, append_images=ims[1:], duration=round(1000 / fps), loop=0, optimize=True)
    return f"images/{name}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/pictures", help="scratch folder for the commands' outputs")
    p.add_argument("--objects-run", help="an object-discovery run folder (default: pretrained:tetrominoes)")
    p.add_argument("--layers-run", help="an object-discovery run with several layers, for the per-layer speeds")
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

    # Travelling waves: one Kuramoto layer with a fixed conv coupling, driven by an image.
    waves = {
        "phase lag 1.2 (the defaults)": ("waves", []),
        "no lag (symmetric J)": ("waves-lag0", ["--lag", "0"]),
        "phase lag 1.2, mask sets only c = 0": ("waves-stimulus", ["--mask-mode", "stimulus"]),
    }
    measured = {}
    for label, (folder, words) in waves.items():
        akorn("viz", "waves", *words, "--out", work / folder)
        measured[label] = json.loads((work / folder / "measures.json").read_text())
    picks = [0, 128, 132, 136, 140, 144]
    frames = gif_frames(work / "waves" / "waves.gif", picks)
    save_gif(gif_frames(work / "waves" / "waves.gif", list(range(128, 177, 2))), "waves.gif", width=320)
    page += [
        "## Travelling waves",
        "",
        f"![frames {', '.join(map(str, picks))}]({save(strip(frames), 'waves-frames.png', 1200)})",
        "",
        "Each frame: the image, then the oscillator phases (hue) with the background masked, then without",
        f"the mask. Frames {', '.join(map(str, picks))} of `akorn viz waves` (the built-in picture, 64x64,",
        "N=2, a 5x5 Gaussian coupling with phase lag 1.2 rad, γ=0.2, 256 steps; masked pixels leave the",
        "system and are drawn dark). The animation is `waves.gif` in the same folder.",
        "",
        "What the runs do over steps 128..256, from their `measures.json` (speeds in degrees per",
        "step, wavefronts in pixels per step; the divergence rate is the largest Lyapunov exponent per",
        "step, from twins 1e-6 apart renormalised every step; period: none when the autocorrelation",
        "never comes back above 0.9):",
        "",
        "| run | object speed | background speed | phase velocity | wavefront speed | period | divergence rate"
        " | R in object |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, rec in measured.items():
        for name, m in rec["runs"].items():
            bg = m.get("background_speed_deg_per_step")
            page.append(
                f"| {label}: {name} | {m['object_speed_deg_per_step']:.2f} | "
                + ("–" if bg is None else f"{bg:.2f}")
                + f" | {m['phase_velocity_deg_per_step']:.2f} | {m['wavefront_speed_px_per_step']:.3f} | "
                f"{m['period_steps'] or 'none'} | {m['divergence_rate_per_step']:.4f} | "
                f"{m['order_parameter_object']:.2f} |"
            )
    lagged, still, literal = (measured[k]["runs"] for k in waves)
    m, u = lagged["masked"], lagged["unmasked"]
    periods = [r["period_steps"] for rec in measured.values() for r in rec["runs"].values()]
    page += [
        "",
        "Commands: `akorn viz waves`, `akorn viz waves --lag 0`, `akorn viz waves --mask-mode stimulus`.",
        "",
        f"What the numbers say. With the phase lag, the object's phases turn {m['object_speed_deg_per_step']:.1f}°"
        f" per step and fronts move {m['wavefront_speed_px_per_step']:.3f} px per step, while the masked background"
        f" does not move ({m['background_speed_deg_per_step']:.2f}°). Without the mask the image diverges faster"
        f" ({u['divergence_rate_per_step']:.4f} against {m['divergence_rate_per_step']:.4f} per step); "
        + (
            "both rates are above 0, so the masked object is chaotic too, only less so. "
            if m["divergence_rate_per_step"] > 0
            else "the masked object's rate is not above 0. "
        )
        + (
            "No run repeats within the 128 steps measured: the seed's periodic patterns are not found here. "
            if not any(periods)
            else f"Periods found: {', '.join(str(p) for p in periods if p)} steps. "
        )
        + f"Without the lag (a symmetric J: a gradient flow) the layer settles (rates"
        f" {still['masked']['divergence_rate_per_step']:.3f} and {still['unmasked']['divergence_rate_per_step']:.3f})"
        " and nothing travels. A mask that only sets c = 0 leaves the background moving at"
        f" {literal['masked']['background_speed_deg_per_step']:.1f}° per step: it keeps still only when its"
        " pixels leave the system (`--mask-mode remove`, the default).",
        "",
        "![the animation](images/waves.gif)",
        "",
        f"![speed]({save(work / 'waves' / 'speed.png', 'waves-speed.png')})"
        f" ![divergence rate]({save(work / 'waves' / 'divergence.png', 'waves-divergence.png')})"
        f" ![autocorrelation]({save(work / 'waves' / 'autocorrelation.png', 'waves-autocorrelation.png')})",
        "",
        "Angular speed over steps inside the object and in the background, the running estimate of",
        "the divergence rate, and the autocorrelation of the object's state against lag, of the",
        "default run.",
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

    # How fast each layer turns: the shipped model, and a stacked run if one is given.
    page += [
        "## Layers that settle at different speeds",
        "",
        "The shipped Tetrominoes model has one layer. The stacked run below is"
        " `akorn objects train preset=cpu layers=3 time_limit=15 threads=1 compile=false"
        " name=tetrominoes-attn-3layers out_dir=runs` (attention coupling, 3 epochs of 6,000 scenes),"
        " drawn with `python scripts/make_pictures.py --layers-run runs/tetrominoes-attn-3layers`.",
        "",
    ]
    for model in [run] + ([a.layers_run] if a.layers_run else []):
        folder = work / ("layers-" + Path(model).name.replace(":", "-"))
        akorn("viz", "objects", model, "--index", "1", "--projection", "tsne", "--out", folder)
        layers = json.loads((folder / "layers.json").read_text())["layers"]
        rows = [gif_frames(folder / f"layer{k + 1}-states.gif", [0, 1, 2, 4, -1]) for k in range(len(layers))]
        name = Path(model).name.replace(":", "-")
        page += [
            f"![t-SNE frames per layer]({save(np.concatenate([strip(r) for r in rows], 0), f'layers-{name}.png')})",
            "",
            f"`akorn viz objects {model} --index 1 --projection tsne`: each row a layer, its states at steps",
            "0, 1, 2, 4 and the last, coloured by one t-SNE fitted over all steps of that layer.",
            "",
            "| layer | mean angular speed (deg/step) | settling step (speed below a tenth of its peak) |",
            "|---|---|---|",
        ]
        for k, m in layers.items():
            page.append(f"| {k} | {m['mean_speed_deg_per_step']:.2f} | {m['settling_step']} |")
        page += ["", f"![speed per layer]({save(folder / 'speed.png', f'layers-{name}-speed.png')})", ""]

    (ROOT / "docs" / "pictures.md").write_text("\n".join(page))
    total = sum(f.stat().st_size for f in IMAGES.glob("*.png"))
    print(f"wrote docs/pictures.md and {len(list(IMAGES.glob('*.png')))} pictures, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
