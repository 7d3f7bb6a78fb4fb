"""Run one training script under the same measuring hooks, whoever wrote it, and write what was seen.

    python scripts/parity/record.py --out REC.json [--cpu] [--cwd DIR] [--path DIR] -- SCRIPT.py ARGS...
    python scripts/parity/record.py --out REC.json -- -m akorn sudoku train ...

The hooks are the same for both sides of a parity run, so both are measured alike:

* every ``Tensor.backward()`` of a one-element tensor records its value: the training loss;
* a global optimizer step hook records when each step ended (seconds per step are the gaps);
* at exit, the peak resident memory of the process (``ru_maxrss``).

``--cpu`` is the only change made to the authors' code, from outside: ``Tensor.cuda()`` returns the
tensor itself, ``Module.cuda()`` and ``Module.to("cuda")`` copy every parameter and buffer on its
own as the move to a GPU does (so parameters sharing a storage no longer do), ``torch.cuda.Event`` is a wall
clock and ``torch.cuda.synchronize`` does nothing. Their scripts call ``.cuda()`` unconditionally.
``--csv-as-text`` makes ``pandas.read_csv`` read every field as text unless told otherwise: their
RRN reader expects the 81-digit boards as strings, and recent pandas reads them as integers.
``--cifar-files-unchecked`` makes torchvision's CIFAR-10 reader accept batch files that exist without
comparing their MD5 with the official archive's (a parity run writes its own images in that format).
``--loader-workers N`` builds every ``DataLoader`` with ``num_workers=N``. ``--seed S`` seeds torch's,
NumPy's and Python's global generators before the script starts (a script that seeds nothing).
``--alias NAME=MODULE`` makes ``import NAME`` give ``MODULE`` (their classifier imports fra31's
``autoattack``, which PyPI has as ``pyautoattack``).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import runpy
import signal
import sys
import time
from pathlib import Path


class WallClockEvent:
    """``torch.cuda.Event(enable_timing=True)`` on a CPU: ``elapsed_time`` in milliseconds."""

    def __init__(self, *args, **kwargs):
        self.t = None

    def record(self, *args, **kwargs):
        self.t = time.perf_counter()

    def synchronize(self):
        pass

    def elapsed_time(self, end: WallClockEvent) -> float:
        return 1000.0 * (end.t - self.t)


def patch_cuda_to_cpu(torch):
    torch.Tensor.cuda = lambda self, *a, **k: self
    # Module.cuda() copies every parameter on its own, which unties parameters that share one
    # storage (their GTA matrices q, k, v and o are four Parameters of one tensor); a copy on the
    # CPU keeps that, or their CPU training would update one tied tensor four times a step.
    torch.nn.Module.cuda = untie
    move = torch.nn.Module.to

    def to(module, *args, **kwargs):  # train_obj.py builds its model with .to("cuda")
        device = args[0] if args else kwargs.get("device")
        if isinstance(device, (str, torch.device)) and str(device).startswith("cuda"):
            return untie(module)
        return move(module, *args, **kwargs)

    torch.nn.Module.to = to
    torch.cuda.Event = WallClockEvent
    torch.cuda.synchronize = lambda *a, **k: None


def untie(module, *args, **kwargs):
    """What ``Module.cuda()`` does to storages, on the CPU: every parameter and buffer its own copy.
    One Parameter object held by two modules stays one object, as it does on a GPU."""
    for m in module.modules():
        for t in (*m.parameters(recurse=False), *m.buffers(recurse=False)):
            t.data = t.data.clone()
    return module


def read_csv_as_text():
    import pandas

    read_csv = pandas.read_csv

    def as_text(*args, **kwargs):
        kwargs.setdefault("dtype", str)
        return read_csv(*args, **kwargs)

    pandas.read_csv = as_text


def accept_cifar_files_unchecked():
    import torchvision.datasets.cifar as cifar

    cifar.check_integrity = lambda fpath, md5=None: os.path.isfile(fpath)


def force_loader_workers(torch, workers: int):
    loader_init = torch.utils.data.DataLoader.__init__

    def init(self, *args, **kwargs):
        kwargs["num_workers"] = workers
        if workers == 0:
            kwargs.pop("prefetch_factor", None)
            kwargs["persistent_workers"] = False
        loader_init(self, *args, **kwargs)

    torch.utils.data.DataLoader.__init__ = init


def alias_module(spec: str):
    import importlib

    name, sep, module = spec.partition("=")
    if not sep or not name or not module:
        raise SystemExit(f"record.py: --alias takes NAME=MODULE, got {spec!r}")
    sys.modules[name] = importlib.import_module(module)


def seed_globals(torch, seed: int):
    import random

    import numpy

    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)


def install_hooks(torch, record: dict):
    backward = torch.Tensor.backward

    def recording_backward(self, *args, **kwargs):
        if self.numel() == 1:
            record["loss"].append(float(self.detach().float()))
        return backward(self, *args, **kwargs)

    torch.Tensor.backward = recording_backward
    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(
        lambda opt, args, kwargs: record["step_end"].append(time.perf_counter() - record["t0"])
    )


def write_record(path: Path, record: dict):
    record["wall_s"] = time.perf_counter() - record["t0"]
    record["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {k: v for k, v in record.items() if k != "t0"}
    path.write_text(json.dumps(out))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="the record to write (JSON)")
    p.add_argument("--cpu", action="store_true", help="keep a CUDA-only script on the CPU")
    p.add_argument("--csv-as-text", action="store_true", help="pandas.read_csv reads fields as text")
    p.add_argument("--cifar-files-unchecked", action="store_true", help="torchvision's CIFAR10 skips its MD5 check")
    p.add_argument("--loader-workers", type=int, default=None, help="num_workers of every DataLoader")
    p.add_argument("--alias", action="append", default=[], metavar="NAME=MODULE", help="import NAME gives MODULE")
    p.add_argument("--seed", type=int, default=None, help="seed the global generators first")
    p.add_argument("--cwd", help="run in this folder")
    p.add_argument("--path", action="append", default=[], help="put this folder first on sys.path")
    p.add_argument("target", nargs=argparse.REMAINDER, help="-- SCRIPT.py ARGS or -- -m MODULE ARGS")
    a = p.parse_args(argv)
    target = a.target[1:] if a.target[:1] == ["--"] else a.target
    if not target:
        p.error("give the script to run after --")
    out = Path(a.out).resolve()
    import torch

    record = {"argv": target, "loss": [], "step_end": [], "t0": time.perf_counter()}
    if a.cpu:
        patch_cuda_to_cpu(torch)
    if a.csv_as_text:
        read_csv_as_text()
    if a.cifar_files_unchecked:
        accept_cifar_files_unchecked()
    if a.loader_workers is not None:
        force_loader_workers(torch, a.loader_workers)
    for spec in a.alias:
        alias_module(spec)
    if a.seed is not None:
        seed_globals(torch, a.seed)
    install_hooks(torch, record)
    atexit.register(write_record, out, record)
    # a deadline's SIGTERM ends the run through atexit, so what was measured is kept
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    if a.cwd:
        os.chdir(a.cwd)
    sys.path[:0] = [str(Path(d).resolve()) for d in a.path]
    if target[0] == "-m":
        sys.argv = [target[1], *target[2:]]
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
    else:
        script = str(Path(target[0]).resolve())
        sys.argv = [script, *target[1:]]
        sys.path.insert(0, str(Path(script).parent))
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
