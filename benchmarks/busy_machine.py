"""A Sudoku training step at the authors' size on a quiet machine and beside another busy process.

The other process is a plain PyTorch float32 matmul loop on 2 threads (what a second training or
evaluation on the same machine does). Each configuration runs in a fresh process, as in
``sudoku_speed.py``; ``ENV=VALUE`` settings apply to our process only, never to the load.

    python benchmarks/busy_machine.py --authors-repo PATH
    python benchmarks/busy_machine.py --settings "" "OMP_WAIT_POLICY=ACTIVE" "OMP_NUM_THREADS=1"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOAD = """
import torch, time
torch.set_num_threads(2)
a = torch.randn(1024, 1024)
while True:
    a = torch.tanh(a @ a) * 0.5
"""


def step_time(impl: str, settings: str, authors_repo: str | None, repeats: int) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    for word in settings.split():
        key, _, value = word.partition("=")
        env[key] = value
    args = [sys.executable, str(ROOT / "benchmarks" / "sudoku_speed.py"), "--task", "train", "--channels", "512",
            "--_one", impl, str(repeats)]  # fmt: skip
    if authors_repo:
        args += ["--authors-repo", authors_repo]
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env)
    if r.returncode:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", default="akorn-compile-bf16")
    p.add_argument("--settings", nargs="*", default=[""], help='environment settings per row, e.g. "A=1 B=2"')
    p.add_argument("--authors-repo")
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    rows = [(a.impl, s) for s in a.settings] + ([("authors", "")] if a.authors_repo else [])
    print("Sudoku training step (C=512, batch 100, T=16): median seconds after one warm-up")
    print(f"{'implementation':22s} {'settings':28s} {'quiet':>8s} {'busy':>8s} {'slowdown':>9s}")
    for impl, settings in rows:
        quiet = step_time(impl, settings, a.authors_repo, a.repeats)
        load = subprocess.Popen([sys.executable, "-c", LOAD])
        try:
            time.sleep(2)
            busy = step_time(impl, settings, a.authors_repo, a.repeats)
        finally:
            load.kill()
            load.wait()
        if "error" in quiet or "error" in busy:
            print(f"{impl:22s} {settings or '(none)':28s} failed: {quiet.get('error') or busy.get('error')}")
            continue
        print(f"{impl:22s} {settings or '(none)':28s} {quiet['sec']:8.2f} {busy['sec']:8.2f} "
              f"{busy['sec'] / quiet['sec']:8.1f}x", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
