"""The figures of docs/parity.md from a parity run's ``summary.json``: loss curves with seed bands,
the metrics table with verdicts, and a copy of the summary without local paths.

    python scripts/parity/report.py runs/parity/sudoku/summary.json \
        --plot docs/images/parity-sudoku-loss.png --json docs/results/parity-sudoku.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import within_spread, write_json  # noqa: E402

SIDES = {"authors": "authors' script", "ours": "akorn"}


def smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def curves(summary: dict, side: str, window: int) -> list[list[float]]:
    runs = [r for k, r in sorted(summary["runs"].items()) if k.startswith(side)]
    n = min(len(r["loss"]) for r in runs)
    return [smooth(r["loss"][:n], window) for r in runs]


def plot(summary: dict, out: Path, window: int, overlays: list[tuple[str, dict]] = ()):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for side, colour in (("authors", "tab:orange"), ("ours", "tab:blue")):
        cs = curves(summary, side, window)
        steps = range(1, len(cs[0]) + 1)
        mean = [statistics.fmean(v) for v in zip(*cs)]
        lo = [min(v) for v in zip(*cs)]
        hi = [max(v) for v in zip(*cs)]
        ax.plot(steps, mean, color=colour, label=f"{SIDES[side]} (mean of {len(cs)} seeds)")
        ax.fill_between(steps, lo, hi, color=colour, alpha=0.25, linewidth=0)
    for (label, rec), colour in zip(overlays, ("tab:red", "tab:green", "tab:purple")):
        ax.plot(range(1, len(rec["loss"]) + 1), smooth(rec["loss"], window), "--", color=colour, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss ({window}-step moving mean)")
    if summary["experiment"] != "objects":  # SimCLR's loss stays within one decade
        ax.set_yscale("log")
    cfg = summary["config"]
    batch = f", batch {cfg['batch']}" if "batch" in cfg else ""
    ax.set_title(f"{summary['experiment']}: C={cfg.get('channels')}{batch}, band = min..max over seeds")
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def fmt(ms: dict, scale: float = 100.0, digits: int = 1) -> str:
    return f"{scale * ms['mean']:.{digits}f} ± {scale * ms['std']:.{digits}f}"


def table(summary: dict) -> str:
    ours, theirs = summary["sides"]["ours"], summary["sides"]["authors"]
    rows = ["| measure | authors' script | akorn | verdict |", "|---|---|---|---|"]

    def row(name, a, b, scale=100.0, digits=1):
        verdict = "inside the seed spread" if within_spread(b, a) else "outside the seed spread"
        rows.append(f"| {name} | {fmt(a, scale, digits)} | {fmt(b, scale, digits)} | {verdict} |")

    if summary["experiment"] == "classify":
        n = summary["images"]["test"]
        row("final training loss (last tenth of the steps)", theirs["final_loss"], ours["final_loss"], 1.0, 4)
        row(f"clean accuracy %, {n} test images, ours evaluator", theirs["metrics"]["accuracy"],
            ours["metrics"]["accuracy"])  # fmt: skip
        row(f"ECE %, 15 bins, {n} test images, ours evaluator", theirs["metrics"]["ece"], ours["metrics"]["ece"])
    elif summary["experiment"] == "objects":
        row("final training loss (last tenth of the steps)", theirs["final_loss"], ours["final_loss"], 1.0, 4)
        row("FG-ARI %, 320 held-out images, ours evaluator", theirs["metrics"]["fg_ari"], ours["metrics"]["fg_ari"])
        row("MBO %, 320 held-out images, ours evaluator", theirs["metrics"]["mbo"], ours["metrics"]["mbo"])
    else:
        row("final training loss (last 45 steps)", theirs["final_loss"], ours["final_loss"], 1.0, 4)
        for key in sorted(ours["metrics"]):
            evaluator, what = key.split(":")
            row(f"board acc. %, {what}, {evaluator} evaluator", theirs["metrics"][key], ours["metrics"][key])
        for key in sorted(ours["cell_acc"]):
            row(f"cell acc. %, {key.split(':')[1]}, ours evaluator", theirs["cell_acc"][key], ours["cell_acc"][key])
    a, b = theirs["sec_per_step"], ours["sec_per_step"]
    rows.append(f"| seconds per step | {fmt(a, 1, 3)} | {fmt(b, 1, 3)} | akorn {a['mean'] / b['mean']:.2f}× faster |")
    a, b = theirs["max_rss_mb"], ours["max_rss_mb"]
    rows.append(f"| peak memory, MB | {fmt(a, 1, 0)} | {fmt(b, 1, 0)} | |")
    return "\n".join(rows)


def without_local_paths(summary: dict) -> dict:
    out = json.loads(json.dumps(summary))
    for k in ("train", "ood", "id", "data", "test"):
        if out["config"].get(k):
            out["config"][k] = "data/" + Path(out["config"][k].partition(":")[2] or out["config"][k]).name
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("summary")
    p.add_argument("--plot", help="PNG of the loss curves")
    p.add_argument("--json", help="a copy of the summary without local paths")
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--overlay", action="append", default=[], metavar="LABEL=RECORD.json",
                   help="also draw one run's loss from a record.py record, dashed")  # fmt: skip
    a = p.parse_args(argv)
    summary = json.loads(Path(a.summary).read_text())
    overlays = []
    for item in a.overlay:
        label, _, path = item.rpartition("=")
        overlays.append((label or Path(path).parent.name, json.loads(Path(path).read_text())))
    if a.plot:
        plot(summary, Path(a.plot), a.window, overlays)
    if a.json:
        write_json(Path(a.json), without_local_paths(summary))
    print(table(summary))


if __name__ == "__main__":
    main()
