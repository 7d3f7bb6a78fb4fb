"""What the three parity scripts share: checks of what they are given, recorded runs, step timing, summaries."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RECORD = HERE / "record.py"


class ParityError(Exception):
    """A problem with what the user gave: printed as one line, nothing run."""


def check_checkout(path: str, needed: tuple[str, ...]) -> Path:
    """The authors' checkout, or a ParityError naming the first file it lacks."""
    root = Path(path)
    if not root.is_dir():
        raise ParityError(f"{path}: no such folder (give a checkout of github.com/autonomousvision/akorn)")
    for rel in needed:
        if not (root / rel).is_file():
            raise ParityError(f"{path} is not a checkout of github.com/autonomousvision/akorn: it has no {rel}")
    return root.resolve()


def check_seeds(seeds: int):
    if seeds < 2:
        raise ParityError(f"--seeds {seeds}: a seed spread needs at least 2 seeds (3 or more to judge parity)")


def check_budget(estimate_s: float, time_limit_min: float, what: str):
    """Refuse, before anything starts, a plan whose estimate runs past ``--time-limit``."""
    if time_limit_min > 0 and estimate_s > 60 * time_limit_min:
        raise ParityError(
            f"{what} would take about {estimate_s / 60:.0f} min, past --time-limit {time_limit_min:g} min; "
            "give fewer steps or seeds, or a larger --time-limit"
        )


def time_steps(step, repeats: int = 3) -> float:
    """Median seconds of ``step()`` after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def training_step(model, forward, opt_cls=None):
    """A closure doing one forward, backward and Adam step of ``forward(model)`` (a scalar loss)."""
    import torch

    opt = (opt_cls or torch.optim.Adam)(model.parameters(), lr=1e-4)

    def step():
        loss = forward(model)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def thread_env(threads: int) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_logged(cmd: list[str], log: Path, env: dict, cwd: Path | None = None) -> int:
    """Run ``cmd`` with its output in ``log``; return its exit status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write(" ".join(map(str, cmd)) + "\n")
        f.flush()
        return subprocess.run(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd).returncode


def run_recorded(record: Path, target: list, env: dict, cpu: bool = False, cwd: Path | None = None,
                 path: Path | None = None, python: str = sys.executable, flags: tuple = ()) -> int:  # fmt: skip
    """A training under the measuring hooks of ``record.py`` (``flags``: more of its options); its
    output goes to ``record``'s ``.log``."""
    cmd = [python, RECORD, "--out", record, *flags]
    if cpu:
        cmd.append("--cpu")
    if cwd:
        cmd += ["--cwd", cwd]
    if path:
        cmd += ["--path", path]
    rc = run_logged([*cmd, "--", *target], record.with_suffix(".log"), env)
    if rc != 0:
        tail = record.with_suffix(".log").read_text().strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(map(str, target[:3]))} exited {rc}:\n" + "\n".join(tail))
    return rc


def step_seconds(rec: dict, skip: int = 5) -> float:
    """Median gap between optimizer steps, after the first ``skip`` (warm-up, data loader start)."""
    ends = rec["step_end"]
    skip = min(skip, max(0, len(ends) - 3))  # a short run keeps two gaps
    gaps = [b - a for a, b in zip(ends[skip:], ends[skip + 1 :])]
    return statistics.median(gaps) if gaps else float("nan")


def training_summary(rec: dict) -> dict:
    """What a parity summary keeps of one training's record.py record."""
    return {"loss": rec["loss"], "sec_per_step": step_seconds(rec), "max_rss_mb": rec["max_rss_mb"],
            "steps": len(rec["step_end"]), "wall_s": rec["wall_s"]}  # fmt: skip


def mean_std(values: list[float]) -> dict:
    vals = [float(v) for v in values]
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "n": len(vals),
        "values": vals,
    }


def within_spread(ours: dict, theirs: dict, k: float = 2.0) -> bool:
    """Whether the two means differ by less than ``k`` pooled seed standard deviations (or 1e-9)."""
    pooled = ((ours["std"] ** 2 + theirs["std"] ** 2) / 2) ** 0.5
    return abs(ours["mean"] - theirs["mean"]) <= max(k * pooled, 1e-9)


def write_json(path: Path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n")


def main_guard(fn):
    """Run ``fn``; a ParityError (or akorn's UserError, e.g. a malformed board file) is one line on
    stderr and exit status 2."""
    from akorn.errors import UserError

    try:
        fn()
    except (ParityError, UserError) as e:
        print(f"{Path(sys.argv[0]).name}: {e}", file=sys.stderr)
        sys.exit(2)
