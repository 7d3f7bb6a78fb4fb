"""The CIFAR-10 AKOrN classifier at the authors' size (64/128/256 channels, kernels 9/7/5, N=2, T=3):
one training step (forward, backward, Adam) at batch 128, and attack throughput.

* train: seconds per optimizer step and the process's peak resident memory;
* attack: images per minute of PGD-style gradient passes with EoT (one forward and backward on
  ``--attack-batch`` images, the unit AutoAttack-rand repeats 20 x 100 times per attack);
* audit: images per minute under PGD-20 with EoT over ``--eot`` samples, timed over ``--pgd-steps``
  steps and scaled to 20: ours is the audit's PGD (the E copies of a batch in one forward pass),
  theirs the ``pgd_linf_attack(..., eot=E)`` of their ``adv_attacks.py`` (E passes a step).

Each configuration runs in a fresh process; the table gives the median over the repeats after one
warm-up. ``--authors-repo PATH`` also times the authors' ``knet.AKOrN`` from a checkout of their code.
``--profile`` prints where the time of our eager step goes.

    python benchmarks/classify_speed.py --task train --authors-repo /tmp/authors
    python benchmarks/classify_speed.py --task attack --authors-repo /tmp/authors
    python benchmarks/classify_speed.py --task audit --impl akorn --authors-repo /tmp/authors
    python benchmarks/classify_speed.py --task train --impl akorn --profile
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _isolated import add_malloc_option, child_env, print_speedups, run_all  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def build(impl: str, authors_repo: str | None, channels: int):
    import torch

    if impl == "authors":
        sys.path.insert(0, authors_repo)
        from source.models.classification.knet import AKOrN as Theirs

        model = Theirs(n=2, ch=channels, L=3, T=3, J="conv", ksizes=[9, 7, 5], ro_N=2, norm="bn", c_norm="gn")
        return model, lambda x: model(x)
    sys.path.insert(0, str(ROOT))
    from akorn.experiments.classify.models import AKOrNClassifier

    model = AKOrNClassifier(channels=channels, compile="compile" in impl, checkpoint="checkpoint" in impl)
    if "channels-last" in impl:
        model = model.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    return model, lambda x: model(x, g)


def audit_pgd(impl: str, model, eot: int, steps: int):
    """One PGD attack of ``steps`` steps at 8/255 with EoT over ``eot`` samples: theirs or the audit's."""
    import torch

    if impl == "authors":
        import pyautoattack

        sys.modules.setdefault("autoattack", pyautoattack)  # their module imports fra31's package by this name
        from source.evals.classification.adv_attacks import pgd_linf_attack

        def attack(x, y):
            model.eval()
            pgd_linf_attack(model, x.clone(), y, 8 / 255, 8 / 255 / 3, steps, torch.nn.CrossEntropyLoss(), eot=eot)

        return attack
    from akorn.experiments.classify.audit import Sampler, cross_entropy_of, pgd

    sampler = Sampler(model, torch.device("cpu"), 0, max_rows=512)
    return lambda x, y: pgd(cross_entropy_of(sampler, y, eot), x, 8 / 255, steps)


def run_one(task: str, impl: str, repeats: int, authors_repo: str | None, channels: int, batch: int,
            profile: bool = False, eot: int = 16, pgd_steps: int = 2) -> dict:  # fmt: skip
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    model, forward = build(impl, authors_repo, channels)
    attack = audit_pgd(impl, model, eot, pgd_steps) if task == "audit" else None
    x = torch.rand(batch, 3, 32, 32)
    if "channels-last" in impl:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    precision = torch.bfloat16 if "bf16" in impl else None

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision is not None):
            if task == "audit":
                attack(x, y)
            elif task == "train":
                model.train()
                loss = F.cross_entropy(forward(x).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            else:  # one EoT gradient pass of an attack: the input gradient, no weight gradients
                model.eval()
                xr = x.detach().requires_grad_(True)
                loss = F.cross_entropy(forward(xr).float(), y, reduction="sum")
                torch.autograd.grad(loss, xr)

    step()  # warm-up (and compilation)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as prof

        with prof(activities=[ProfilerActivity.CPU]) as p:
            step()
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)
    sec = statistics.median(times)
    if task == "audit":
        sec *= 20 / pgd_steps  # the audit's PGD-20, from the seconds of pgd_steps steps
    return {
        "impl": impl,
        "task": task,
        "batch": batch,
        "seconds": sec,
        "images_per_minute": 60 * batch / sec,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "threads": torch.get_num_threads(),
        **({"eot": eot, "timed_pgd_steps": pgd_steps} if task == "audit" else {}),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=("train", "attack", "audit"), default="train")
    p.add_argument("--impl", default="akorn,akorn-checkpoint,akorn-channels-last,akorn-compile,akorn-bf16")
    p.add_argument("--authors-repo", help="a checkout of github.com/autonomousvision/akorn")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--batch", type=int, default=0, help="0: 128 for train, 100 for attack, 4 for audit")
    p.add_argument("--eot", type=int, default=16, help="audit: EoT samples per PGD step")
    p.add_argument("--pgd-steps", type=int, default=2, help="audit: PGD steps timed (scaled to 20)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    add_malloc_option(p)
    a = p.parse_args()
    if a.eot < 1 or a.pgd_steps < 1:
        p.error("--eot and --pgd-steps must be at least 1")
    batch = a.batch or {"train": 128, "attack": 100, "audit": 4}[a.task]
    if a.one:
        res = run_one(a.task, a.impl, a.repeats, a.authors_repo, a.channels, batch, a.profile, a.eot, a.pgd_steps)
        print(json.dumps(res))
        return
    impls = a.impl.split(",")
    if a.authors_repo:
        impls = ["authors"] + [i for i in impls if i != "authors"]
    configs = [
        (i, ["--one", "--task", a.task, "--impl", i, "--repeats", str(a.repeats), "--channels", str(a.channels),
             "--batch", str(batch), "--eot", str(a.eot), "--pgd-steps", str(a.pgd_steps)]
            + (["--profile"] if a.profile else []))
        for i in impls
    ]  # fmt: skip
    what = f", PGD-20 with EoT {a.eot} (timed over {a.pgd_steps} steps)" if a.task == "audit" else ""
    print(f"{a.task}, batch {batch}, channels {a.channels}{what}: median of {a.repeats} after a warm-up")

    def show(label, r):
        print(f"{label:24s} {r['seconds']:7.2f} s  {r['images_per_minute']:8.2f} images/min  peak RSS "
              f"{r['peak_rss_gb']:.2f} GB  ({r['threads']} threads)")  # fmt: skip

    rows = run_all(__file__, configs, a.authors_repo, show, child_env(a))
    print_speedups(rows, "seconds")


if __name__ == "__main__":
    main()
