"""The tables and pictures of docs/text.md from trained ``akorn text`` runs.

Every run folder ``RUNS/MODEL-sSEED`` holds ``eval-test.json`` (``akorn text eval --json``) and
``sample.json`` (``akorn text sample --json``); AKOrN runs may hold ``sample-nocache.json``.

    python scripts/text_report.py runs/text --images docs/images --json docs/results/text-shakespeare.json

Prints the Markdown table; draws ``text-extension.png`` (bits per byte against T, every seed),
``text-dynamics.png`` (order parameter and energy over the steps) and ``text-loss.png`` (training
loss against wall-clock minutes).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

MODELS = ("akorn", "transformer", "itrsa")
LABEL = {"akorn": "AKOrN", "transformer": "Transformer", "itrsa": "ItrSA"}


def read_runs(root: Path) -> dict[str, list[dict]]:
    runs = {m: [] for m in MODELS}
    for folder in sorted(root.iterdir()):
        match = re.fullmatch(r"(akorn|transformer|itrsa)-s(\d+)", folder.name)
        if not match or not (folder / "eval-test.json").exists():
            continue
        metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        train = [m for m in metrics if m.get("split") == "train" and "sec_per_step" in m]
        done = max(m["step"] for m in metrics)
        run = {"seed": int(match[2]), "eval": json.loads((folder / "eval-test.json").read_text()), "train": train,
               "steps_done": done,
               "config": json.loads((folder / "config.json").read_text())["config"]}  # fmt: skip
        for name in ("sample", "sample-nocache"):
            if (folder / f"{name}.json").exists():
                run[name] = json.loads((folder / f"{name}.json").read_text())
        runs[match[1]].append(run)
    return runs


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summary(runs: dict[str, list[dict]]) -> dict:
    out = {}
    for model, rs in runs.items():
        if not rs:
            continue
        steps = sorted({r["steps"] for r in rs[0]["eval"]["results"]})
        bpb = {str(T): mean_std([next(x["bits_per_byte"] for x in r["eval"]["results"] if x["steps"] == T)
                                 for r in rs]) for T in steps}  # fmt: skip
        trained = [r["steps_done"] for r in rs]
        log_every = rs[0]["config"]["log_every"]
        sec = [statistics.median(m["sec_per_step"] for m in r["train"][2:]) for r in rs]
        out[model] = {
            "seeds": [r["seed"] for r in rs],
            "parameters": rs[0]["eval"]["parameters"],
            "training_steps": trained,
            "sec_per_step_median": mean_std(sec),
            "train_minutes": [sum(m["sec_per_step"] for m in r["train"]) * log_every / 60 for r in rs],
            "test_bits_per_byte": bpb,
            "test_windows": rs[0]["eval"]["windows"],
            "sample_bytes_per_second": [r["sample"]["bytes_per_second"] for r in rs if "sample" in r],
            "sample_no_cache_bytes_per_second": [
                r["sample-nocache"]["bytes_per_second"] for r in rs if "sample-nocache" in r
            ],  # fmt: skip
            "sample": rs[0].get("sample", {}).get("sample", ""),
        }
        if "dynamics" in rs[0]["eval"]:
            out[model][f"dynamics_seed{rs[0]['seed']}"] = rs[0]["eval"]["dynamics"]
    return out


def table(s: dict) -> str:
    lines = ["| model | parameters | steps in 12 min | s/step | test bits/byte at T (1×) | at 2× | at 4× | at 8× |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for model, r in s.items():
        cells = [f"{m:.3f} ± {sd:.3f}" for m, sd in r["test_bits_per_byte"].values()]
        cells += ["–"] * (4 - len(cells))
        steps = " / ".join(str(n) for n in r["training_steps"])
        sec = f"{r['sec_per_step_median'][0]:.2f}"
        lines.append(f"| {LABEL[model]} | {r['parameters']:,} | {steps} | {sec} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw(runs: dict, s: dict, images: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"akorn": "tab:blue", "transformer": "tab:gray", "itrsa": "tab:orange"}
    fig, ax = plt.subplots(figsize=(6, 4))
    for model in ("akorn", "itrsa"):
        for r in runs[model]:
            res = sorted(r["eval"]["results"], key=lambda x: x["steps"])
            base = res[0]["steps"]
            label = f"{LABEL[model]} (T={base} in training)" if r is runs[model][0] else None
            ax.plot([x["steps"] / base for x in res], [x["bits_per_byte"] for x in res], "o-", color=colors[model],
                    alpha=0.8, label=label)  # fmt: skip
    if runs["transformer"]:
        m, sd = next(iter(s["transformer"]["test_bits_per_byte"].values()))
        ax.axhspan(m - sd, m + sd, color=colors["transformer"], alpha=0.3, label="Transformer (mean ± SD)")
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 2, 4, 8], ["1×", "2×", "4×", "8×"])
    ax.set_xlabel("steps at test time / steps in training")
    ax.set_ylabel("test bits per byte")
    ax.set_title("Shakespeare, 1.2 M parameters, 12 min each (one line per seed)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(images / "text-extension.png", dpi=120)
    plt.close(fig)
    _draw_dynamics(runs, images, plt)
    _draw_loss(runs, images, plt, colors)


def _draw_dynamics(runs, images, plt):
    if not runs["akorn"] or "dynamics" not in runs["akorn"][0]["eval"]:
        return
    dyn = runs["akorn"][0]["eval"]["dynamics"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for T, layers in dyn.items():
        for i, d in enumerate(layers):
            style = "-" if i == 0 else "--"
            axes[0].plot(d["order_parameter"], style, label=f"T={T}, layer {i + 1}")
            axes[1].plot(d["energy_per_token"], style, label=f"T={T}, layer {i + 1}")
    axes[0].set_ylabel("order parameter over the context")
    axes[1].set_ylabel("voting energy per byte")
    for ax in axes:
        ax.set_xlabel("Kuramoto step")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"AKOrN seed {runs['akorn'][0]['seed']}, 8 test windows")
    fig.tight_layout()
    fig.savefig(images / "text-dynamics.png", dpi=120)
    plt.close(fig)


def _draw_loss(runs, images, plt, colors):
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, rs in runs.items():
        for r in rs:
            every = r["config"]["log_every"]
            minutes, t = [], 0.0
            for m in r["train"]:
                t += m["sec_per_step"] * every
                minutes.append(t / 60)
            ax.plot(minutes, [m["train_bits_per_byte"] for m in r["train"]], color=colors[model], alpha=0.7,
                    label=LABEL[model] if r is rs[0] else None)  # fmt: skip
    ax.set_ylim(1.5, 4)
    ax.set_xlabel("training minutes (one core, bf16, compiled)")
    ax.set_ylabel("training bits per byte")
    ax.legend()
    fig.tight_layout()
    fig.savefig(images / "text-loss.png", dpi=120)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path)
    p.add_argument("--images", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    runs = read_runs(a.runs)
    if not any(runs.values()):
        raise SystemExit(f"{a.runs}: no run folder with eval-test.json")
    s = summary(runs)
    print(table(s))
    for model, r in s.items():
        if r["sample_bytes_per_second"]:
            rate = statistics.mean(r["sample_bytes_per_second"])
            extra = ""
            if r["sample_no_cache_bytes_per_second"]:
                extra = f", {statistics.mean(r['sample_no_cache_bytes_per_second']):.0f} without the cache"
            print(f"{LABEL[model]}: sample {rate:.0f} bytes/s{extra}")
    if a.images:
        a.images.mkdir(parents=True, exist_ok=True)
        draw(runs, s, a.images)
    if a.json:
        a.json.write_text(json.dumps(s, indent=1) + "\n")


if __name__ == "__main__":
    main()
