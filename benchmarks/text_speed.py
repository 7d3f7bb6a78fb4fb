"""The byte-level language models of ``akorn text`` at the cpu preset's size (2 layers of 256 channels,
context 128, batch 32): one training step (forward, backward, Adam) of AKOrN, the
parameter-matched Transformer and ItrSA, and the bytes per second of sampling.

How the step is counted: one optimizer step on one batch, whatever the model does inside it.
AKOrN runs T Kuramoto steps per layer (T attention passes with shared weights, then one readout);
ItrSA runs T attention passes per block; the Transformer one attention pass and one MLP per block.

The table gives the median over ``--repeats`` steps after two warm-up steps, for every model in
one process, interleaved, so that they share the machine's state.

    python benchmarks/text_speed.py --threads 1
    python benchmarks/text_speed.py --threads 1 --precision bf16 --compile
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from akorn.engine.config import resolve  # noqa: E402
from akorn.experiments.text.evaluation import sample  # noqa: E402
from akorn.experiments.text.experiment import PRESETS, TextConfig  # noqa: E402
from akorn.experiments.text.models import build, parameter_count  # noqa: E402

MODELS = ("akorn", "transformer", "itrsa")


def step_fn(model, cfg, precision: str):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    autocast = torch.autocast("cpu", torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    def step():
        tokens = torch.randint(0, 256, (cfg.batch_size, cfg.context + 1), generator=g)
        with autocast:
            logits = model(tokens[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256).float(), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--compile", action="store_true", help="compile=true: the AKOrN steps, the baselines' forward")
    p.add_argument("--sample-bytes", type=int, default=128, help="bytes drawn to time sampling (0: skip)")
    p.add_argument("overrides", nargs="*", help="TextConfig fields, e.g. steps=3 channels=192")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    for name in MODELS:
        cfg = resolve(TextConfig, [f"model={name}", *args.overrides], None, PRESETS)
        cfg.compile = args.compile
        model = build(cfg)
        rows[name] = {"cfg": cfg, "model": model, "step": step_fn(model, cfg, args.precision), "times": []}
    for r in rows.values():
        for _ in range(2):
            r["step"]()
    for _ in range(args.repeats):
        for r in rows.values():
            t0 = time.perf_counter()
            r["step"]()
            r["times"].append(time.perf_counter() - t0)
    base = statistics.median(rows["transformer"]["times"])
    cfg = rows["akorn"]["cfg"]
    print(f"batch {cfg.batch_size} x context {cfg.context}, {args.precision}, threads {torch.get_num_threads()}, "
          f"compile {args.compile}, T={cfg.steps}")  # fmt: skip
    print(f"{'model':12s} {'params':>9s} {'s/step':>8s} {'bytes/s':>9s} {'vs Transformer':>15s} {'sample B/s':>11s}")
    for name, r in rows.items():
        t = statistics.median(r["times"])
        rate = ""
        if args.sample_bytes:
            r["model"].eval()
            cached = name == "akorn"
            _, bps = sample(r["model"], b"\n", args.sample_bytes, seed=0, cache=cached)
            rate = f"{bps:.0f}" + (" (cache)" if cached else "")
            if cached:
                _, full = sample(r["model"], b"\n", args.sample_bytes, seed=0, cache=False)
                rate += f", {full:.0f} (no cache)"
        tokens = r["cfg"].batch_size * r["cfg"].context
        print(f"{name:12s} {parameter_count(r['model']):9,d} {t:8.3f} {tokens / t:9.0f} {t / base:14.2f}x {rate:>11s}")


if __name__ == "__main__":
    main()
