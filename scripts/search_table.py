"""The recipe-search table of docs/classify.md: one row per run folder of
``scripts/cifar10_conv_search.sh``, from its command, config and metrics.

    python scripts/search_table.py runs/conv-search/*
"""

import json
import statistics
import sys
from pathlib import Path

# the fields a search variant may change, shown beside its name
SHOWN = ("channels", "kernel_sizes", "steps", "batch_size", "lr", "augment")


def row(run: Path) -> str:
    cfg = json.loads((run / "config.json").read_text())["config"]
    if not (run / "metrics.jsonl").exists():
        return f"| {run.name} | (started: no metrics yet) | | | | |"
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in recs if r.get("split") == "train" and "loss" in r]
    evals = [r for r in recs if r.get("split") == "eval" and "accuracy" in r]
    if not train or not evals:
        return f"| {run.name} | (unfinished: no final evaluation) | | | | |"
    acc, n = evals[-1]["accuracy"], evals[-1].get("eval_images", 0)
    se = (acc * (1 - acc) / n) ** 0.5 if n else float("nan")
    sec = statistics.median(r["sec_per_step"] for r in train)
    setting = ", ".join(f"{k}={cfg[k]}" for k in SHOWN)
    steps = train[-1]["step"]
    return (f"| {run.name} | {setting} | {steps:,} | {sec:.2f} | {train[-1]['loss']:.3f} | "
            f"{100 * acc:.1f} ± {100 * se:.1f} (n={n}) |")  # fmt: skip


def main(paths: list[str]) -> int:
    runs = [Path(p) for p in paths if (Path(p) / "config.json").exists()]
    if not runs:
        print("usage: python scripts/search_table.py RUN_FOLDER ...  (no run folder with config.json given)")
        return 2
    print("| variant | setting | steps | s/step (median) | train loss (last 10 steps) | test accuracy |")
    print("|---|---|---|---|---|---|")
    for run in sorted(runs):
        print(row(run))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
