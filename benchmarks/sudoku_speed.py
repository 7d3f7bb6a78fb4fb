"""Sudoku at the authors' size (C=512, N=4, 8 heads, T=16): training step and voting evaluation.

* train: one optimizer step (forward, backward through all T steps, Adam) at batch 100;
* eval: 100 random starts of one board at T=128 without gradients (what energy voting runs).
  With ``--model`` (a run folder or ``pretrained``) and ``--data``, our rows run a trained model on
  real boards instead, one board (100 starts) at a time, with the early exits and selection asked
  for (``--select``, ``--stable``): the figure is then the mean seconds per board, and the row
  also gives the board accuracy over those boards. The authors' row always times its model's
  forward on 100 rows (their code has no early exit, so its time does not depend on the weights).

Each configuration runs in a fresh process; the table gives the median seconds over the
repeats after one warm-up and the process's peak resident memory. ``--authors-repo PATH``
also times the authors' model classes from a checkout of their code (needs their
dependencies: einops, pandas).

    python benchmarks/sudoku_speed.py --task train
    python benchmarks/sudoku_speed.py --task eval --authors-repo /path/to/akorn-authors
    python benchmarks/sudoku_speed.py --task eval --impl akorn-compile-bf16 --profile
    python benchmarks/sudoku_speed.py --task eval --impl akorn-compile-bf16 --model pretrained \
        --data rrn-valid.csv.xz --per-givens 1 --select valid
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


def run_one(
    task: str, impl: str, repeats: int, authors_repo: str | None, channels: int, profile: bool = False, boards=None
) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    torch.manual_seed(0)
    B = 100
    quiz = torch.randint(0, 10, (B, 81))
    solution = torch.randint(1, 10, (B, 81))
    T = 16 if task == "train" else 128
    if impl == "authors":
        sys.path.insert(0, authors_repo)
        from source.models.sudoku.knet import SudokuAKOrN as Theirs

        model = Theirs(
            n=4,
            ch=channels,
            L=1,
            T=T,
            gamma=1.0,
            J="attn",
            use_omega=True,
            global_omg=True,
            init_omg=0.5,
            learn_omg=True,
            nl=True,
            heads=8,
        )
        onehot = torch.zeros(B, 81, 9)
        m = quiz > 0
        onehot[m, quiz[m] - 1] = 1
        X, is_input = onehot.view(B, 9, 9, 9), m.view(B, 9, 9, 1).int()

        def forward():
            return model(X, is_input).reshape(B, 81, 9)
    else:
        from akorn.experiments.sudoku.models import SudokuAKOrN

        if boards is not None:
            return run_trained(impl, boards)
        model = SudokuAKOrN(
            channels, 4, heads=8, steps=T, checkpoint=impl.endswith("checkpoint"), compile="compile" in impl
        )
        if task == "eval":
            from akorn.experiments.sudoku.inference import predict

            board = quiz[:1]
        else:

            def forward():
                return model(quiz)

    precision = "bf16" if "bf16" in impl else "fp32"
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def once():
        if task == "train":
            with autocast:
                logits = forward()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 9).float(), (solution - 1).reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            model.eval()
            with torch.no_grad():
                if impl == "authors":
                    with autocast:
                        forward()  # the authors' eval keeps every state (return lists)
                else:
                    predict(model, board, steps=T, candidates=100, chunk=100, precision=precision)

    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    row = {
        "task": task,
        "impl": impl,
        "channels": channels,
        "sec": statistics.median(times[1:]),
        "first": times[0],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if profile:
        row["profile"] = profile_once(once)
    return row


def run_trained(impl: str, opts: dict) -> dict:
    """A trained model, 100 starts of each board in turn at T=128: mean seconds per board after a
    warm-up board, and the board accuracy over the timed boards."""
    import torch

    from akorn.experiments.model_files import load_model
    from akorn.experiments.sudoku import data as sdata
    from akorn.experiments.sudoku.inference import accuracy, predict

    model = load_model(opts["model"], "sudoku", compile="compile" in impl).model
    ds = sdata.load(opts["data"], "test")
    ds = sdata.stratified(ds, opts["per_givens"]) if opts["per_givens"] else ds[: opts["limit"]]
    kw = dict(
        steps=128,
        candidates=100,
        chunk=100,
        precision="bf16" if "bf16" in impl else "fp32",
        select=opts["select"],
        stable=opts["stable"],
        check_every=opts["check_every"],
    )
    predict(model, ds.quiz[-1:], **kw)  # warm-up (compilation), on a board that is also timed below
    times, digits, steps, peaks = [], [], [], []
    for i in range(len(ds)):
        t0 = time.perf_counter()
        p = predict(model, ds.quiz[i : i + 1], **kw)
        times.append(time.perf_counter() - t0)
        digits.append(p.digits)
        steps.append(p.steps_run)
        peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # does it level off?
    acc = accuracy(torch.cat(digits), ds.solution, ds.quiz)
    return {
        "task": "eval",
        "impl": impl,
        "channels": model.channels,
        "sec": statistics.mean(times),
        "first": times[0],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "boards": len(ds),
        "board_acc": acc["board_acc"],
        "mean_steps": statistics.mean(steps),
        "sec_min": min(times),
        "sec_max": max(times),
        "peak_mb_by_board": peaks,
        **{k: opts[k] for k in ("select", "stable")},
    }


def profile_once(fn, top: int = 8) -> list[tuple[str, float, float]]:
    """One more call of ``fn`` under torch.profiler: the ``top`` operators by self CPU time, as
    ``(name, self seconds, share of the total self time)``."""
    from torch.profiler import profile

    with profile() as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [(e.key, e.self_cpu_time_total / 1e6, e.self_cpu_time_total / total) for e in ranked]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=["train", "eval"], default="train")
    p.add_argument("--impl", default="akorn,akorn-bf16,akorn-checkpoint,akorn-compile,akorn-compile-bf16")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--channels", type=int, default=512)
    p.add_argument("--authors-repo")
    p.add_argument("--json")
    p.add_argument(
        "--profile",
        action="store_true",
        help="after timing, profile one more iteration and print the top operators by self CPU time",
    )
    t = p.add_argument_group("eval of a trained model on real boards (our rows only)")
    t.add_argument("--model", help="run folder or 'pretrained'")
    t.add_argument("--data", help="boards: CSV, SATNet/RRN folder or generate:...")
    t.add_argument("--per-givens", type=int, default=1, metavar="N", help="first N boards of every number of givens")
    t.add_argument("--limit", type=int, default=10, help="first N boards (with --per-givens 0)")
    t.add_argument("--select", choices=["energy", "confidence", "valid"], default="energy")
    t.add_argument("--stable", type=int, default=0)
    t.add_argument("--check-every", type=int, default=8)
    p.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    add_malloc_option(p)
    a = p.parse_args()
    if bool(a.model) != bool(a.data) or (a.model and a.task != "eval"):
        p.error("--model and --data go together, with --task eval")
    trained = None
    if a.model:
        trained = {
            k: getattr(a, k) for k in ("model", "data", "per_givens", "limit", "select", "stable", "check_every")
        }
    if a._one:
        print(json.dumps(run_one(a.task, a._one[0], int(a._one[1]), a.authors_repo, a.channels, a.profile, trained)))
        return
    impls = a.impl.split(",") + (["authors"] if a.authors_repo else [])
    print(
        f"Sudoku {a.task}: C={a.channels}, batch 100, T={16 if a.task == 'train' else 128}"
        + (", 100 candidates of one board" if a.task == "eval" else "")
    )
    print(f"{'implementation':22s} {'s/iter':>8s} {'1st iter':>9s} {'peak MB':>8s}")
    if trained:
        print(
            f"our rows: {a.model} on {a.data}, select={a.select}, stable={a.stable}, check every {a.check_every}; "
            "s/iter = mean seconds per board"
        )
    passed = sum((["--" + k.replace("_", "-"), str(v)] for k, v in (trained or {}).items()), [])
    configs = [
        (
            impl,
            ["--task", a.task, "--channels", str(a.channels), "--_one", impl, str(a.repeats)]
            + (["--profile"] if a.profile else [])
            + passed,
        )
        for impl in impls
    ]

    def show(impl, r):
        extra = (
            (
                f"  boards {r['boards']}, board acc {100 * r['board_acc']:.1f}%, {r['mean_steps']:.1f} steps "
                f"per start, {r['sec_min']:.2f}-{r['sec_max']:.2f} s per board"
            )
            if "boards" in r
            else ""
        )
        print(f"{impl:22s} {r['sec']:8.2f} {r['first']:9.2f} {r['peak_mb']:8.0f}{extra}", flush=True)
        if "peak_mb_by_board" in r:
            print("    peak MB after each board: " + " ".join(f"{m:.0f}" for m in r["peak_mb_by_board"]))
        for name, sec, share in r.get("profile", []):
            print(f"    {share:6.1%} {sec:7.3f} s  {name}")

    rows = run_all(__file__, configs, a.authors_repo, show, env=child_env(a))
    print_speedups(rows, "sec")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
