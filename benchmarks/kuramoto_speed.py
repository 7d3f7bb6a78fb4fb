"""Forward+backward speed and peak memory of one attention Kuramoto layer at the papers' sizes.

Prints a table: median seconds per iteration (after warm-up), peak resident memory of a
fresh process per configuration, and achieved matmul GFLOP/s, for

* akorn (eager), akorn with activation checkpointing, akorn with torch.compile (opt-in), and
  both (``akorn-compile-checkpoint``), each in float32 and bf16 autocast; a ``-matmul`` suffix
  (``akorn-compile-matmul``) forces the batched-matmul attention kernel instead of the automatic choice;
* the plain implementation written straight from the equations (akorn.core.maths);
* optionally the authors' layer, imported from a checkout you point at with --authors-repo.

Usage::

    python benchmarks/kuramoto_speed.py --size sudoku            # C=512, 9x9 GTA, batch 100, T=16
    python benchmarks/kuramoto_speed.py --size objects           # C=256, 16x16 GTA, batch 8, T=8
    python benchmarks/kuramoto_speed.py --size sudoku --authors-repo /path/to/akorn-authors
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
SIZES = {
    "sudoku": dict(channels=512, n=4, heads=8, grid=(9, 9), batch=100, steps=16),
    "objects": dict(channels=256, n=4, heads=8, grid=(16, 16), batch=8, steps=8),
}


def matmul_flops(size: dict) -> float:
    """Forward+backward matmul FLOPs: projections (q, k, v, o) and attention, backward = 2x forward."""
    B, C, T = size["batch"], size["channels"], size["steps"]
    L = size["grid"][0] * size["grid"][1]
    per_step = B * L * C * 4 * C * 2 + 2 * 2 * B * L * L * C
    return 3 * T * per_step


def matmul_rate(repeats: int = 10, dtype: str = "float32") -> float:
    """GFLOP/s of a large matmul (the projection shape at the Sudoku size) on this machine."""
    import torch

    a, w = torch.randn(8100, 512, dtype=getattr(torch, dtype)), torch.randn(1536, 512, dtype=getattr(torch, dtype))
    for _ in range(2):
        a @ w.T
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ w.T
    return 8100 * 512 * 1536 * 2 * repeats / (time.perf_counter() - t0) / 1e9


def run_one(impl: str, size_name: str, precision: str, repeats: int, authors_repo: str | None) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    size = SIZES[size_name]
    torch.manual_seed(0)
    B, C, n, T = size["batch"], size["channels"], size["n"], size["steps"]
    L = size["grid"][0] * size["grid"][1]
    from akorn import KuramotoLayer, Speed

    layer = KuramotoLayer(
        C,
        n=n,
        coupling="attn",
        heads=size["heads"],
        grid=size["grid"],
        omega="global",
        omega_init=0.5,
        c_norm=None,
        learn_gamma=True,
        steps=T,
        speed=Speed(
            check_inputs=False, checkpoint="checkpoint" in impl.split("-"), compile="compile" in impl.split("-")
        ),
    )
    if impl.endswith("-matmul"):  # e.g. akorn-compile-matmul: two batched matmuls instead of SDPA
        layer.coupling.attention = "matmul"
    x = torch.randn(B, L, C)
    c = torch.randn(B, L, C)
    if impl.startswith("akorn"):

        def fwd():
            return layer(x, c)
    elif impl == "reference":
        from akorn.core import maths

        def fwd():
            return maths.run(layer, x, c, T)[0][-1]
    elif impl == "authors":
        sys.path.insert(0, authors_repo)
        from source.layers.klayer import KLayer  # the authors' layer, from the checkout given

        H, W = size["grid"]
        ref = KLayer(
            n,
            C,
            J="attn",
            c_norm=None,
            use_omega=True,
            init_omg=0.5,
            gta=True,
            hw=[H, W],
            global_omg=True,
            heads=size["heads"],
            learn_omg=True,
        )
        gamma = torch.nn.Parameter(torch.ones(1))
        xi, ci = x.transpose(1, 2).reshape(B, C, H, W), c.transpose(1, 2).reshape(B, C, H, W)

        def fwd():
            return ref(xi, ci, T, gamma)[0][-1]
    else:
        raise SystemExit(f"unknown implementation {impl}")
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = fwd()
        out.float().square().sum().backward()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times[1:])
    return {
        "impl": impl,
        "size": size_name,
        "precision": precision,
        "sec_per_iter": med,
        "first_iter": times[0],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gflops": matmul_flops(size) / med / 1e9,
        "threads": torch.get_num_threads(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="sudoku")
    p.add_argument(
        "--impl",
        default="akorn,akorn-checkpoint,akorn-compile,reference",
        help="comma-separated: akorn, akorn-checkpoint, akorn-compile, akorn-compile-checkpoint, "
        "akorn-compile-matmul, reference, authors",
    )
    p.add_argument("--precision", default="fp32,bf16")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--authors-repo", help="path to a checkout of the authors' code to time their layer too")
    p.add_argument("--json", help="write results to this file")
    p.add_argument("--floor-only", action="store_true", help="only measure the matmul rate and print the floor")
    p.add_argument("--_one", nargs=3, help=argparse.SUPPRESS)
    add_malloc_option(p)
    a = p.parse_args()
    if a._one:
        print(json.dumps(run_one(a._one[0], a.size, a._one[1], int(a._one[2]), a.authors_repo)))
        return
    size = SIZES[a.size]
    for dtype in ("float32", "bfloat16"):
        rate = matmul_rate(dtype=dtype)
        print(
            f"large {dtype} matmul: {rate:.0f} GFLOP/s -> matmul floor "
            f"{matmul_flops(size) / rate / 1e9:.2f} s per iteration"
        )
    if a.floor_only:
        return
    impls = a.impl.split(",")
    if a.authors_repo and "authors" not in impls:
        impls.append("authors")
    rows = []
    size = SIZES[a.size]
    print(f"size {a.size}: {size}; fwd+bwd matmul work {matmul_flops(size) / 1e9:.0f} GFLOP per iteration")
    print(f"{'implementation':18s} {'precision':9s} {'s/iter':>8s} {'1st iter':>8s} {'peak MB':>8s} {'GFLOP/s':>8s}")
    configs = [
        (f"{impl} {prec}", ["--size", a.size, "--_one", impl, prec, str(a.repeats)])
        for impl in impls
        for prec in a.precision.split(",")
        if not (impl in ("reference", "authors") and prec == "bf16")
    ]
    rows = run_all(
        __file__,
        configs,
        a.authors_repo,
        lambda label, r: print(
            f"{r['impl']:18s} {r['precision']:9s} {r['sec_per_iter']:8.2f} {r['first_iter']:8.2f} {r['peak_mb']:8.0f} "
            f"{r['gflops']:8.1f}",
            flush=True,
        ),
        env=child_env(a),
    )
    print_speedups(rows, "sec_per_iter", lambda r: f"{r['impl']} {r['precision']}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
