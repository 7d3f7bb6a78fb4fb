"""Object-discovery training step (forward, backward, Adam) at batch 8, ours and optionally the authors'.

Sizes: ``tetrominoes`` (32x32, patch 4, C=128, attention, T=8) and ``clevrtex``
(128x128, patch 8, C=256, attention, T=8, L=1). Fresh process per configuration; median
seconds after one warm-up and the process's peak resident memory.

An implementation is ``akorn`` plus options joined by ``-``: ``compile``, ``bf16``,
``checkpoint``, and ``halves`` or ``interleaved`` to force the GTA pair order (otherwise
``"auto"``). ``--batch`` changes the batch (the recipe trains Tetrominoes at 256 = 512 views).

    python benchmarks/objects_speed.py --size tetrominoes --authors-repo /path/to/akorn-authors
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
SIZES = {"tetrominoes": dict(image=32, patch=4, channels=128), "clevrtex": dict(image=128, patch=8, channels=256)}


def run_one(size: str, impl: str, repeats: int, authors_repo: str | None, batch: int = 8) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    torch.manual_seed(0)
    s = SIZES[size]
    img = torch.rand(batch, 3, s["image"], s["image"])
    if impl == "authors":
        sys.path.insert(0, authors_repo)
        from source.models.objs.knet import AKOrN as Theirs

        model = Theirs(
            n=4,
            ch=s["channels"],
            L=1,
            T=8,
            psize=s["patch"],
            gta=True,
            J="attn",
            c_norm="none",
            imsize=s["image"],
            use_omega=False,
            heads=8,
        )
    else:
        from akorn.experiments.objects.models import ImageAKOrN

        model = ImageAKOrN(
            s["image"],
            s["patch"],
            s["channels"],
            4,
            1,
            8,
            "attn",
            heads=8,
            compile="compile" in impl,
            checkpoint="checkpoint" in impl,
        )
        from akorn.core.coupling import AttentionCoupling

        for order in ("halves", "interleaved"):
            if order in impl.split("-"):
                for m in model.modules():
                    if isinstance(m, AttentionCoupling):
                        m.pair_order = order  # read at every forward; the parameters do not depend on it
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in impl)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        with autocast:
            z = model(img)
        z.float().square().mean().backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    return {
        "size": size,
        "impl": impl,
        "sec": statistics.median(times[1:]),
        "first": times[0],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="tetrominoes")
    p.add_argument("--impl", default="akorn,akorn-bf16,akorn-compile,akorn-compile-bf16")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--authors-repo")
    p.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    add_malloc_option(p)
    a = p.parse_args()
    if a._one:
        print(json.dumps(run_one(a.size, a._one[0], int(a._one[1]), a.authors_repo, a.batch)))
        return
    impls = a.impl.split(",") + (["authors"] if a.authors_repo else [])
    print(f"objects training step, {a.size} {SIZES[a.size]}, batch {a.batch}, T=8")
    configs = [(impl, ["--size", a.size, "--batch", str(a.batch), "--_one", impl, str(a.repeats)]) for impl in impls]
    rows = run_all(
        __file__,
        configs,
        a.authors_repo,
        lambda impl, r: print(
            f"{impl:26s} {r['sec']:7.3f} s/step  (1st {r['first']:.2f} s)  peak {r['peak_mb']:.0f} MB", flush=True
        ),
        env=child_env(a),
    )
    print_speedups(rows, "sec")


if __name__ == "__main__":
    main()
