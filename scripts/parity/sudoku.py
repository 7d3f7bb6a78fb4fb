"""Sudoku training parity: the authors' ``train_sudoku.py`` and ``akorn sudoku train``, same recipe, same budget.

    python scripts/parity/sudoku.py --authors PATH --train satnet-train.csv.xz --ood rrn-valid.csv.xz \
        [--channels 128 --epochs 11 --seeds 3 --threads 1 --time-limit 120 --out runs/parity/sudoku]

For every seed, both trainings run on the same 9,000 boards with the authors' README recipe (Adam
1e-3, batch 100, gradient clip 1, T=16, N=4, learned global ω from 0.5, EMA 0.995 every 10 steps
after step 100), fp32, at ``--channels``. Both run through ``record.py``, which records the loss of
every step, the time of every optimizer step and the peak memory alike. Their script is kept on the
CPU from outside (``record.py --cpu``); nothing in their checkout is changed.

Both sets of EMA weights are then evaluated by our ``akorn sudoku eval`` and by their
``eval_sudoku.py`` (our weights converted to their layout), at T=16 and T=128, on 1,000 held-out
SATNet-like boards (``--id``, generated when not given) and on ``--per-givens`` boards of every
number of givens of the RRN file (``--ood``). ``summary.json`` in ``--out`` holds everything;
``scripts/parity/report.py`` turns it into the figures of docs/parity.md.

Run it with a Python that has torch, torchvision and their dependencies (ema_pytorch, einops,
pandas, tensorboard, tqdm, matplotlib) and akorn.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ParityError,
    check_budget,
    check_checkout,
    check_seeds,
    main_guard,
    mean_std,
    run_logged,
    run_recorded,
    thread_env,
    time_steps,
    training_step,
    training_summary,
    write_json,
)

NEEDED = ("train_sudoku.py", "eval_sudoku.py", "source/models/sudoku/knet.py", "source/data/datasets/sudoku/sudoku.py")
STEPS_PER_EPOCH = 90  # 9,000 boards at batch 100
EVAL_SECONDS = 15.0  # a rough allowance per evaluation process, for the budget check


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--authors", required=True, help="a checkout of github.com/autonomousvision/akorn")
    p.add_argument("--train", required=True, help="the 9,000 SATNet training boards (CSV or SATNet folder)")
    p.add_argument("--ood", required=True, help="RRN boards (CSV), for the OOD evaluations")
    p.add_argument("--id", default="", help="held-out SATNet-like boards (default: 1,000 generated, seed 12345)")
    p.add_argument("--per-givens", type=int, default=20, help="RRN boards per number of givens")
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--epochs", type=int, default=11, help="epochs of 90 steps each (default 11: 990 steps)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--time-limit", type=float, default=0, help="minutes; refuse a plan estimated past it")
    p.add_argument("--assume-step-seconds", type=float, nargs=2, metavar=("OURS", "THEIRS"),
                   help="skip the timing probe and plan with these seconds per step")  # fmt: skip
    p.add_argument("--out", default="runs/parity/sudoku")
    a = p.parse_args(argv)
    for name in ("channels", "heads", "epochs", "threads", "per_givens"):
        if getattr(a, name) < 1:
            raise ParityError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("train", "ood", "id"):
        if getattr(a, name) and not Path(getattr(a, name)).exists():
            raise ParityError(f"--{name} {getattr(a, name)}: no such file or folder")
    if a.channels % a.heads:
        raise ParityError(f"--channels {a.channels} must be divisible by --heads {a.heads}")
    return a


def authors_model(a):
    from source.models.sudoku.knet import SudokuAKOrN

    return SudokuAKOrN(n=4, ch=a.channels, L=1, T=16, gamma=1.0, J="attn", use_omega=True, global_omg=True,
                       init_omg=0.5, learn_omg=True, nl=True, heads=a.heads)  # fmt: skip


def probe(a, authors: Path) -> tuple[float, float]:
    """Seconds per training step of ours and theirs at batch 100, in this process."""
    import torch
    import torch.nn.functional as F

    from akorn.experiments.sudoku.models import SudokuAKOrN

    torch.set_num_threads(a.threads)
    quiz = torch.randint(0, 10, (100, 81))
    target = torch.randint(0, 9, (100 * 81,))
    ours = SudokuAKOrN(a.channels, 4, heads=a.heads, steps=16, omega_init=0.5, learn_omega=True)
    t_ours = time_steps(training_step(ours, lambda m: F.cross_entropy(m(quiz).reshape(-1, 9), target)), 2)
    sys.path.insert(0, str(authors))
    theirs = authors_model(a)
    X = F.one_hot(quiz, 10)[..., 1:].reshape(100, 9, 9, 9).to(torch.int32)
    is_input = X.sum(-1, keepdim=True)
    t_theirs = time_steps(training_step(theirs, lambda m: F.cross_entropy(m(X, is_input).reshape(-1, 9), target)), 2)
    return t_ours, t_theirs


def prepare_data(a, work: Path) -> dict:
    """Their layout (``features.pt``/``labels.pt``/``perm.pt``: 9,000 training boards then the
    1,000 ID boards; RRN ``test.csv``) and ours (CSV files) of the same boards."""
    import torch

    from akorn.experiments.sudoku import data as sdata

    train = sdata.load(a.train, "train")[:9000]
    if len(train) < 9000:
        raise ParityError(f"--train {a.train}: {len(train)} boards, their script needs 9,000")
    held = sdata.load(a.id, "test")[:1000] if a.id else sdata.generate_set(1000, (31, 42), 12345, "satnet")
    if len(held) < 1000:
        raise ParityError(f"--id {a.id}: {len(held)} boards, their evaluator needs 1,000")
    ood = sdata.stratified(sdata.load(a.ood, "test"), a.per_givens)
    d = work / "data"
    (d / "sudoku").mkdir(parents=True, exist_ok=True)
    (d / "sudoku-rrn").mkdir(parents=True, exist_ok=True)
    quiz = torch.cat([train.quiz, held.quiz]).long()
    sol = torch.cat([train.solution, held.solution]).long()

    def onehot(t):
        return torch.nn.functional.one_hot(t, 10)[..., 1:].float().reshape(-1, 9, 9, 9)

    torch.save(onehot(quiz), d / "sudoku" / "features.pt")
    torch.save(onehot(sol), d / "sudoku" / "labels.pt")
    torch.save(torch.arange(81), d / "sudoku" / "perm.pt")
    paths = {"train": d / "train.csv", "id": d / "id.csv", "ood": d / "ood.csv"}
    sdata.write_csv(train, paths["train"])
    sdata.write_csv(held, paths["id"])
    sdata.write_csv(ood, paths["ood"])
    (d / "sudoku-rrn" / "test.csv").write_text(paths["ood"].read_text())
    return {"paths": paths, "satnet_dir": d / "sudoku", "rrn_dir": d / "sudoku-rrn", "boards": {
        "train": len(train), "id": len(held), "ood": len(ood)}}  # fmt: skip


def model_args(a) -> list[str]:
    return ["--model", "akorn", "--T", "16", "--N", "4", "--ch", str(a.channels), "--heads", str(a.heads),
            "--use_omega", "True", "--global_omg", "True", "--init_omg", "0.5", "--learn_omg", "True"]  # fmt: skip


def train_theirs(a, authors: Path, run: Path, seed: int, env: dict) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    done = run / "runs" / "run" / f"ema_{a.epochs - 1}.pth"
    if done.exists() and (run / "record.json").exists():  # a rerun keeps finished trainings
        return done
    data = (run.parent.parent / "data" / "sudoku").resolve()
    target = [authors / "train_sudoku.py", "--exp_name", "run", "--seed", seed, "--epochs", a.epochs,
              "--lr", "0.001", "--beta", "0.995", "--clip_grad_norm", "1.0", "--batchsize", "100",
              "--num_workers", "0", "--eval_freq", a.epochs + 1, "--checkpoint_every", a.epochs,
              "--data_root", data, *model_args(a)]  # fmt: skip
    run_recorded(run / "record.json", target, env, cpu=True, cwd=run, path=authors)
    return run / "runs" / "run" / f"ema_{a.epochs - 1}.pth"


def train_ours(a, work: Path, name: str, seed: int, env: dict, data: Path) -> Path:
    run = work / name
    steps = a.epochs * STEPS_PER_EPOCH
    if (run / "checkpoints" / f"step-{steps:08d}").exists() and (work / f"{name}.record.json").exists():
        return run
    if run.exists():  # an unfinished run of ours starts again, so that its record covers every step
        import shutil

        shutil.rmtree(run)
    target = ["-m", "akorn", "sudoku", "train", f"data={data}", f"out_dir={work}", f"name={name}", f"seed={seed}",
              f"epochs={a.epochs}", f"max_steps={steps}", f"channels={a.channels}", f"heads={a.heads}",
              "precision=fp32", "compile=false", f"threads={a.threads}", f"checkpoint_every={steps}",
              "log_every=10", "eval_every=0", "lr=0.001", "batch_size=100", "ema_decay=0.995"]  # fmt: skip
    run_recorded(work / f"{name}.record.json", target, env)
    return run


def to_their_file(our_run: Path, out: Path, a):
    """Our run's EMA weights as their ``ema_*.pth``, for their evaluator."""
    import torch

    from akorn.experiments.model_files import load_model
    from akorn.experiments.sudoku.authors import authors_ema_file, to_authors

    model = load_model(str(our_run), "sudoku").model
    sd = to_authors(model.state_dict(), a.channels, a.heads)
    torch.save(authors_ema_file(sd), out)


def eval_ours(source: Path, data: Path, steps: int, out: Path, env: dict) -> dict:
    cmd = [sys.executable, "-m", "akorn", "sudoku", "eval", source, "--data", data, "--steps", steps,
           "--json", out, "--seed", "0"]  # fmt: skip
    if not out.exists() and run_logged(cmd, out.with_suffix(".log"), env) != 0:
        raise RuntimeError(f"evaluation failed; see {out.with_suffix('.log')}")
    rep = json.loads(out.read_text())
    return {"board_acc": rep["board_acc"], "cell_acc": rep["cell_acc"]}


def eval_theirs(a, authors: Path, model: Path, which: str, data_root: Path, steps: int, log: Path, env) -> dict:
    cmd = [sys.executable, Path(__file__).parent / "record.py", "--cpu", "--csv-as-text",
           "--out", log.with_suffix(".record.json"), "--path", authors, "--", authors / "eval_sudoku.py",
           "--model_path", model, "--data", which, "--data_root", data_root, "--T", steps,
           "--num_workers", "0", *model_args(a)[2:]]  # fmt: skip

    def found():
        return re.findall(r"Vote accuracy: ([0-9.]+)", log.read_text()) if log.exists() else []

    if not found() and run_logged(cmd, log, env) != 0:
        raise RuntimeError(f"their evaluation failed; see {log}")
    if not found():
        raise RuntimeError(f"no accuracy in {log}")
    return {"board_acc": float(found()[-1])}


def evaluate(a, authors, work, data, runs: dict, env) -> dict:
    """Every run's EMA weights by both evaluators, on ID and OOD boards, at T=16 and 128."""
    results = {}
    for label, (side, ours_src, theirs_file) in runs.items():
        r = results[label] = {"side": side}
        for which in ("id", "ood"):
            root = data["satnet_dir"] if which == "id" else data["rrn_dir"]
            for steps in (16, 128):
                key = f"{which}-T{steps}"
                out = work / "eval" / f"{label}-{key}.json"
                r[f"ours:{key}"] = eval_ours(ours_src, data["paths"][which], steps, out, env)
                r[f"theirs:{key}"] = eval_theirs(a, authors, theirs_file, which, root, steps,
                                                 work / "eval" / f"{label}-{key}-authors.log", env)  # fmt: skip
                print(f"{label} {key}: ours {r[f'ours:{key}']['board_acc']:.3f}, "
                      f"theirs {r[f'theirs:{key}']['board_acc']:.3f}", flush=True)  # fmt: skip
    return results


def main(argv=None):
    a = parse_args(argv)
    authors = check_checkout(a.authors, NEEDED)
    check_seeds(a.seeds)
    t_ours, t_theirs = a.assume_step_seconds or probe(a, authors)
    steps = a.epochs * STEPS_PER_EPOCH
    estimate = a.seeds * (steps * (t_ours + t_theirs) * 1.15 + 16 * EVAL_SECONDS)
    print(f"plan: {a.seeds} seeds x {steps} steps; probe {t_ours:.3f} s/step ours, {t_theirs:.3f} theirs; "
          f"about {estimate / 60:.0f} min", flush=True)  # fmt: skip
    check_budget(estimate, a.time_limit, "this plan")
    work = Path(a.out).resolve()
    env = thread_env(a.threads)
    data = prepare_data(a, work)
    runs, train = {}, {}
    for seed in range(1, a.seeds + 1):
        their_file = train_theirs(a, authors, work / "authors" / f"seed{seed}", seed, env)
        record = work / "authors" / f"seed{seed}" / "record.json"
        train[f"authors-{seed}"] = training_summary(json.loads(record.read_text()))
        runs[f"authors-{seed}"] = ("authors", their_file, their_file)
        our_run = train_ours(a, work, f"ours-seed{seed}", seed, env, data["paths"]["train"])
        train[f"ours-{seed}"] = training_summary(json.loads((work / f"ours-seed{seed}.record.json").read_text()))
        to_their_file(our_run, work / f"ours-seed{seed}-as-authors.pth", a)
        runs[f"ours-{seed}"] = ("ours", our_run, work / f"ours-seed{seed}-as-authors.pth")
        print(f"seed {seed}: trained both ({train[f'authors-{seed}']['sec_per_step']:.3f} s/step theirs, "
              f"{train[f'ours-{seed}']['sec_per_step']:.3f} ours)", flush=True)  # fmt: skip
    results = evaluate(a, authors, work, data, runs, env)
    write_json(work / "summary.json", summarise(a, data, train, results, t_ours, t_theirs))
    print(f"wrote {work / 'summary.json'}")


def summarise(a, data, train, results, t_ours, t_theirs) -> dict:
    sides = {}
    for side in ("authors", "ours"):
        tr = [v for k, v in train.items() if k.startswith(side)]
        ev = [v for k, v in results.items() if v["side"] == side]
        sides[side] = {
            "sec_per_step": mean_std([t["sec_per_step"] for t in tr]),
            "max_rss_mb": mean_std([t["max_rss_mb"] for t in tr]),
            "final_loss": mean_std([sum(t["loss"][-45:]) / len(t["loss"][-45:]) for t in tr]),
            "metrics": {k: mean_std([e[k]["board_acc"] for e in ev]) for k in ev[0] if ":" in k},
            "cell_acc": {k: mean_std([e[k]["cell_acc"] for e in ev]) for k in ev[0] if k.startswith("ours:")},
        }
    config = {k: v for k, v in vars(a).items() if k not in ("authors", "out")}
    return {"experiment": "sudoku", "config": config, "boards": data["boards"], "probe_sec_per_step":
            {"ours": t_ours, "authors": t_theirs}, "sides": sides, "runs": train, "evaluations": results}  # fmt: skip


if __name__ == "__main__":
    main_guard(main)
