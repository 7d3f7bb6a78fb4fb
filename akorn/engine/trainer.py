"""The training loop shared by every experiment.

Determinism by construction: the batch at global step ``s`` is a pure function of
``(seed, s)`` (epoch permutation seeded by ``seed + epoch``), and so is the noise the
model draws for it. A resumed run therefore needs only the weights, the optimizer state,
the EMA and the step -- and ends bitwise equal to an uninterrupted run on CPU.
Under torchrun every rank computes the same global batch and takes its contiguous shard.
"""

from __future__ import annotations

import abc
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import akorn
from akorn.engine import checkpoint as ck
from akorn.engine.config import check_choice, check_ranges, require, to_dict
from akorn.engine.distributed import DistInfo, all_reduce_mean, barrier, init_distributed, pick_device
from akorn.engine.files import ensure_writable_dir, read_json
from akorn.errors import UserError


@dataclass
class TrainConfig:
    """Fields every experiment shares. Experiments subclass this with their own."""

    name: str = ""  # run folder name under out_dir; empty: experiment-timestamp
    out_dir: str = "runs"
    seed: int = 0
    epochs: int = 100
    max_steps: int = 0  # stop after this many optimizer steps in total (0: epochs decide)
    # A budget in minutes of training (this process's, not counting evaluation): when a step ends past
    # it the run saves, evaluates and ends as if done (0: none). A resumed run gets the budget afresh.
    time_limit: float = 0.0
    batch_size: int = 100  # global batch, split over ranks
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | cosine
    warmup_steps: int = 0
    clip_grad: float = 1.0  # 0 disables
    ema_decay: float = 0.995  # 0 disables the EMA
    ema_every: int = 10
    ema_start: int = 100
    # The decay ramps up as 1 - (1 + t)^(-2/3), t = steps since ema_start, capped at ema_decay:
    # the warm-up of ema_pytorch, which the reference code uses. false: ema_decay from the start.
    ema_warmup: bool = True
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    compile: bool = False
    device: str = "auto"
    threads: int = 0  # torch intra-op threads on CPU (0: torch's default)
    deterministic: bool = False
    eval_every: int = 0  # steps between evaluations (0: at the end only)
    checkpoint_every: int = 200  # steps between checkpoints
    keep_checkpoints: int = 3
    log_every: int = 10
    # Fine-tuning: start from these weights (a run folder's latest checkpoint, a checkpoint
    # folder or a .safetensors file) with a fresh optimizer at step 0. From a checkpoint the
    # EMA weights are taken when it has them: they are the ones evaluated.
    init: str = ""

    # What to do at a step whose loss or gradient norm is not finite: stop (keep the last good
    # checkpoint, exit non-zero) or skip the step (no update, no EMA update; counted in the metrics).
    nonfinite: str = "stop"

    def validate(self):
        """Every field's type is checked on parsing; here their ranges and relations, before anything is written."""
        check_ranges(
            self,
            epochs=(1, None),
            max_steps=(0, None),
            time_limit=(0, None),
            batch_size=(1, None),
            lr=(0, None),
            weight_decay=(0, None),
            warmup_steps=(0, None),
            clip_grad=(0, None),
            ema_decay=(0, None),
            ema_every=(1, None),
            ema_start=(0, None),
            threads=(0, 4096),
            eval_every=(0, None),
            checkpoint_every=(1, None),
            keep_checkpoints=(1, None),
            log_every=(1, None),
            seed=(0, 2**31 - 1),
        )
        require(self.lr > 0, f"lr must be positive, got {self.lr}")
        require(self.ema_decay < 1, f"ema_decay must be below 1 (0 disables the EMA), got {self.ema_decay}")
        check_choice(self, "optimizer", ("adam", "adamw"))
        check_choice(self, "lr_schedule", ("constant", "cosine"))
        check_choice(self, "precision", ("fp32", "bf16"))
        check_choice(self, "nonfinite", ("stop", "skip"))
        device = self.device.split(":")
        require(
            device[0] in ("auto", "cpu", "cuda", "mps")
            and (len(device) == 1 or device[0] == "cuda" and len(device) == 2 and device[1].isdigit()),
            f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}",
        )


class Experiment(abc.ABC):
    """What the engine needs to know about an experiment."""

    name: str = ""
    config_cls: type = TrainConfig
    presets: dict[str, dict[str, Any]] = {}
    # The experiment's fields that run folders saved before them lack, as those runs used them.
    fields_of_older_runs: dict[str, Any] = {}

    @abc.abstractmethod
    def build_model(self, cfg) -> nn.Module:
        """The experiment's model for ``cfg``."""

    @abc.abstractmethod
    def train_data(self, cfg):
        """An object with ``__len__`` and ``batch(indices) -> dict of tensors``."""

    @abc.abstractmethod
    def loss(self, model: nn.Module, batch: dict, generator: torch.Generator, cfg, shard=(0, None)):
        """``(loss, metrics)`` for one batch; ``shard`` = (offset, global batch) of this rank's part."""

    def evaluate(self, model: nn.Module, cfg, device: torch.device) -> dict:
        return {}


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The random stream the model uses at a given step (same on every rank)."""
    g = torch.Generator(device=device if device.type == "cuda" else "cpu")
    g.manual_seed((seed * 1_000_003 + step) % (2**63 - 1))
    return g


def batch_indices(n: int, global_batch: int, step: int, seed: int) -> torch.Tensor:
    steps_per_epoch = n // global_batch
    epoch, offset = divmod(step, steps_per_epoch)
    g = torch.Generator().manual_seed(seed * 7919 + epoch)
    perm = torch.randperm(n, generator=g)
    return perm[offset * global_batch : (offset + 1) * global_batch]


def rng_state() -> dict:
    """Global torch and Python RNG states (JSON-able). Batches and model noise do not use them --
    they are functions of (seed, step) -- but user code inside an experiment may."""
    import base64
    import random

    return {
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
        "python": repr(random.getstate()),
    }


def set_rng_state(state: dict):
    import ast
    import base64
    import random

    import numpy as np

    raw = np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()
    torch.set_rng_state(torch.from_numpy(raw))
    random.setstate(ast.literal_eval(state["python"]))


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    scale = 1.0
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        scale = (step + 1) / cfg.warmup_steps
    elif cfg.lr_schedule == "cosine":
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        scale = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * scale


# Run folders saved before a field existed ran as these values say, not as today's defaults.
FIELDS_OF_OLDER_RUNS = {"ema_warmup": False}


class RunFolder:
    """config.json, command.txt, metrics.jsonl, tb/, checkpoints/ -- all under one folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.metrics = self.path / "metrics.jsonl"

    def write_config(self, experiment: str, cfg):
        data = {"experiment": experiment, "version": akorn.__version__, "config": to_dict(cfg)}
        tmp = self.path / "config.json.tmp"
        prog = os.path.basename(sys.argv[0])
        prog = "akorn" if prog == "__main__.py" else prog  # python -m akorn, torchrun -m akorn
        try:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
            os.replace(tmp, self.path / "config.json")
            with open(self.path / "command.txt", "a") as f:
                f.write(" ".join([prog] + sys.argv[1:]) + "\n")
        except OSError as e:
            raise UserError(f"cannot write the run folder {self.path}: {e.strerror}") from None

    def read_config(self, experiment) -> dict:
        data = read_json(self.path / "config.json", f"not a run folder ({self.path})")
        if data.get("experiment") != experiment.name:
            raise UserError(
                f"run folder {self.path} is from experiment {data.get('experiment')!r}, not {experiment.name!r}"
            )
        return {**FIELDS_OF_OLDER_RUNS, **experiment.fields_of_older_runs, **data["config"]}

    def latest_checkpoint(self) -> Path | None:
        found = ck.list_checkpoints(self.checkpoints)
        return found[-1] if found else None

    def log(self, record: dict):
        """Append one record as one line; the newline goes last, so a torn write leaves a last line without one."""
        try:
            with open(self.metrics, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise UserError(f"cannot write {self.metrics}: {e.strerror}") from None

    def read_metrics(self) -> list[dict]:
        """The records of ``metrics.jsonl``. A torn last line (what a power cut or a full disk leaves)
        is dropped with a notice; a bad line anywhere else is a :class:`UserError`."""
        if not self.metrics.exists():
            return []
        try:
            text = self.metrics.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read {self.metrics}: {e}") from None
        lines = text.split("\n")
        filled = [i for i, line in enumerate(lines, 1) if line.strip()]
        records = []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            last = i == filled[-1]
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a record")
            except ValueError:
                if last:
                    print(f"akorn: dropping the torn last line of {self.metrics}", file=sys.stderr)
                    continue
                raise UserError(f"corrupt {self.metrics}: line {i} is not a JSON record") from None
            records.append(record)
        return records

    def truncate_metrics(self, step: int):
        """On resume: drop records from steps after the checkpoint (they will be redone) and a torn last line."""
        if not self.metrics.exists():
            return
        keep = [r for r in self.read_metrics() if _record_step(r) <= step]
        tmp = self.metrics.with_suffix(".tmp")
        try:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
            os.replace(tmp, self.metrics)
        except OSError as e:
            raise UserError(f"cannot rewrite {self.metrics}: {e.strerror}") from None

    def lock(self):
        """Hold the run folder for this process: a second training of the same folder is refused
        instead of reading checkpoints that rotation is deleting. The lock ends with the process."""
        import fcntl

        try:
            handle = open(self.path / ".lock", "a+")
        except OSError as e:
            raise UserError(f"run folder {self.path} cannot be written: {e.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise UserError(
                f"run folder {self.path} is in use by a training still running (pid {owner}); "
                "wait for it to end or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle


def _record_step(record: dict) -> int:
    step = record.get("step", 0)
    return step if isinstance(step, int | float) and not isinstance(step, bool) else 0


def total_grad_norm(params) -> torch.Tensor:
    """The 2-norm of all gradients together (what clipping would measure), on their device."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_ema(model: nn.Module, cfg: TrainConfig):
    if cfg.ema_decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)


def ema_decay_at(cfg: TrainConfig, done: int) -> float:
    """Decay of the EMA update after optimizer step ``done`` (the first update, at ema_start, copies)."""
    if not cfg.ema_warmup:
        return cfg.ema_decay
    return min(cfg.ema_decay, 1.0 - (1.0 + max(done - cfg.ema_start, 0)) ** (-2.0 / 3.0))


def ema_state(ema) -> dict:
    return {**ema.module.state_dict(), ck.EMA_COUNT_KEY: ema.n_averaged.detach().clone().reshape(1)}


def load_ema_state(ema, sd: dict):
    ema.module.load_state_dict(ck.ema_model_weights(sd))
    ema.n_averaged.copy_(sd[ck.EMA_COUNT_KEY].reshape(()))


def load_init_weights(model: nn.Module, source: str):
    """Load ``init=`` weights into ``model``; a wrong path or architecture is a UserError."""
    path = Path(source)
    if path.is_dir() and not (path / ck.STATE_FILE).exists():
        found = RunFolder(path).latest_checkpoint()
        if found is None:
            raise UserError(f"init={source}: no checkpoint in that run folder")
        path = found
    if path.is_dir():
        loaded = ck.load_checkpoint(path)
        sd = ck.ema_model_weights(loaded["ema"]) if loaded["ema"] is not None else loaded["model"]
    elif path.suffix == ".safetensors":
        sd = ck.load_weights(path)
    else:
        raise UserError(f"init={source}: expected a run folder, a checkpoint folder or a .safetensors file")
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"init={source}: weights do not fit this model ({first})") from None


def train(experiment: Experiment, cfg, resume: str | None = None, on_step: Callable | None = None) -> Path:
    """Train ``experiment`` with ``cfg`` (or continue the run in ``resume``); returns the run folder."""
    device = pick_device(cfg.device)
    info, device = init_distributed(device)
    if cfg.threads > 0 and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    if cfg.batch_size % info.world:
        raise UserError(f"batch_size {cfg.batch_size} must be divisible by the number of processes {info.world}")

    lock = None
    if resume is not None:
        run = RunFolder(Path(resume))
        if info.is_main:
            lock = run.lock()  # before reading checkpoints that another training could be rotating
        ckpt_path = run.latest_checkpoint()
        run.read_metrics()  # a corrupt metrics file stops the resume here, before anything is rewritten
    else:
        name = cfg.name or f"{experiment.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = RunFolder(Path(cfg.out_dir) / name)
        if run.path.exists() and ck.list_checkpoints(run.checkpoints):
            raise UserError(f"run folder {run.path} already has checkpoints; use --resume {run.path} or another name=")
        ckpt_path = None

    data = experiment.train_data(cfg)  # fails early on bad data, before anything is written
    if len(data) < cfg.batch_size:
        raise UserError(f"training set has {len(data)} examples, fewer than batch_size={cfg.batch_size}")
    steps_per_epoch = len(data) // cfg.batch_size
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps > 0:
        total = min(total, cfg.max_steps)

    torch.manual_seed(cfg.seed)
    try:
        model = experiment.build_model(cfg).to(device)
    except (ValueError, RuntimeError, MemoryError, OverflowError) as e:  # bad sizes, or too large
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot build the model of this config: {reason}") from None
    if cfg.init and ckpt_path is None:
        load_init_weights(model, cfg.init)
    ema = make_ema(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    start = 0
    if ckpt_path is not None:
        loaded = ck.load_checkpoint(ckpt_path, need_ema=ema is not None)
        try:
            model.load_state_dict(loaded["model"])
        except RuntimeError:
            raise UserError(_misfit(ckpt_path, loaded["state"].get("config", {}), cfg)) from None
        if ema is not None and loaded["ema"] is not None:
            load_ema_state(ema, loaded["ema"])
        if loaded["optimizer"] is not None:
            optimizer.load_state_dict(loaded["optimizer"])
        start = int(loaded["state"]["step"])
        if "rng" in loaded["state"]:
            set_rng_state(loaded["state"]["rng"])

    if info.is_main:
        ensure_writable_dir(run.path)
        lock = lock or run.lock()
        run.truncate_metrics(start)
        run.write_config(experiment.name, cfg)
    barrier(info)

    train_model = model
    if info.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile and not getattr(experiment, "handles_compile", False):
        train_model = torch.compile(train_model)

    writer = None
    if info.is_main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run.path / "tb"))
        except ImportError:
            writer = None
    bar = None
    if info.is_main:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, desc=experiment.name, unit="step", dynamic_ncols=True, file=sys.stderr)

    def save(step):
        if info.is_main:
            meta = {
                "experiment": experiment.name,
                "version": akorn.__version__,
                "config": to_dict(cfg),
                "rng": rng_state(),
            }
            ck.save_checkpoint(
                run.checkpoints,
                step,
                model.state_dict(),
                ema_state(ema) if ema is not None else None,
                optimizer.state_dict(),
                meta,
                keep=cfg.keep_checkpoints,
            )
        barrier(info)

    def run_eval(step):
        if info.is_main:
            eval_model = ema.module if ema is not None else model
            eval_model.eval()
            with torch.no_grad():
                metrics = experiment.evaluate(eval_model, cfg, device)
            model.train()
            if metrics:
                run.log({"step": step, "split": "eval", **metrics})
                if writer is not None:
                    for k, v in metrics.items():
                        if isinstance(v, (int, float)):
                            writer.add_scalar(f"eval/{k}", v, step)
                bar.write(
                    f"[eval step {step}] "
                    + " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
                )
        barrier(info)

    model.train()
    shard = cfg.batch_size // info.world
    t_last, running = time.time(), {}
    skipped = 0
    t_start = time.time()
    with _signals_as_requests() as requests:

        def fetch(step):
            idx = batch_indices(len(data), cfg.batch_size, step, cfg.seed)
            return data.batch(idx[info.rank * shard : (info.rank + 1) * shard])

        # Data that is read from disk as it goes (``streams``) gets the next step's batch read
        # while this step computes; the batches are the same either way.
        prefetch = ThreadPoolExecutor(1) if getattr(data, "streams", False) else None
        upcoming = prefetch.submit(fetch, start) if prefetch is not None and start < total else None
        for step in range(start, total):
            for g in optimizer.param_groups:
                g["lr"] = lr_at(cfg, step, total)
            if upcoming is not None:
                batch = upcoming.result()
                upcoming = prefetch.submit(fetch, step + 1) if step + 1 < total else None
            else:
                batch = fetch(step)
            batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            gen = step_generator(cfg.seed, step, device)
            with _autocast(device, cfg.precision):
                loss, metrics = experiment.loss(train_model, batch, gen, cfg, shard=(info.rank * shard, cfg.batch_size))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad > 0:
                gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            else:
                gnorm = total_grad_norm(params)
            # One look at the host per step: is the step finite, and did a signal ask to stop?
            # Both are agreed on by every rank, so all stop or skip at the same step.
            if cfg.time_limit > 0 and time.time() - t_start > 60 * cfg.time_limit:
                requests["time_limit"] = True
            finite, stop = _agree(torch.isfinite(loss.detach()) & torch.isfinite(gnorm), requests, info, device)
            done = step + 1
            if not finite:
                if cfg.nonfinite == "stop":
                    if bar is not None:
                        bar.close()
                    raise UserError(
                        f"training stopped at step {done}: the loss ({float(loss.detach()):.4g}) or the gradient norm "
                        f"({float(gnorm):.4g}) is not finite; the last good checkpoint is "
                        f"{run.latest_checkpoint() or 'none (no checkpoint was saved yet)'}; lower lr, or set "
                        "nonfinite=skip to skip such steps"
                    )
                skipped += 1
                optimizer.zero_grad(set_to_none=True)
            else:
                # Metrics stay on the device until they are logged: a float() here would make the host
                # wait for the GPU at every step.
                metrics["grad_norm"] = gnorm.detach()
                optimizer.step()
                if ema is not None and done >= cfg.ema_start and done % cfg.ema_every == 0:
                    ema.multi_avg_fn = get_ema_multi_avg_fn(ema_decay_at(cfg, done))
                    ema.update_parameters(model)
                metrics["loss"] = loss.detach()
                for k, v in metrics.items():
                    running.setdefault(k, []).append(v)
            if (done % cfg.log_every == 0 or done == total) and (running or skipped):
                avg = all_reduce_mean({k: sum(float(x) for x in v) / len(v) for k, v in running.items()}, info, device)
                running = {}
                if info.is_main:
                    now = time.time()
                    rec = {
                        "step": done,
                        "split": "train",
                        "epoch": done / steps_per_epoch,
                        "lr": lr_at(cfg, step, total),
                        "sec_per_step": (now - t_last) / cfg.log_every,
                        **avg,
                    }
                    if skipped:
                        rec["skipped_steps"] = skipped
                    t_last = now
                    run.log(rec)
                    if writer is not None:
                        for k, v in avg.items():
                            writer.add_scalar(f"train/{k}", v, done)
                    if "loss" in avg:
                        bar.set_postfix(loss=f"{avg['loss']:.4f}")
            if bar is not None:
                bar.update(1)
            if on_step is not None:
                on_step(done)
            if done % cfg.checkpoint_every == 0 or done == total or stop:
                save(done)
            if stop and "signal" not in requests:  # the time budget is spent: end as a finished run does
                if info.is_main:
                    run.log({"step": done, "split": "train", "time_limit_reached": cfg.time_limit})
                    bar.write(f"time limit of {cfg.time_limit} min reached after step {done}")
                total = done
                break
            if stop:
                if bar is not None:
                    bar.close()
                raise TrainingInterrupted(requests["signal"], done, run.path, experiment.name, info.is_main)
            if cfg.eval_every > 0 and done % cfg.eval_every == 0 and done != total:
                run_eval(done)
    if start < total or total == 0:
        run_eval(total)
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    return run.path


class TrainingInterrupted(UserError):
    """SIGINT or SIGTERM during training: the step in progress was finished and saved."""

    def __init__(self, signum: int, step: int, run: Path, experiment: str, main: bool):
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} at step {step}: saved {run / 'checkpoints' / ck.checkpoint_name(step)}; resume with: "
            f"akorn {experiment} train --resume {run}"
            if main
            else ""  # rank 0 speaks for every process
        )


@contextlib.contextmanager
def _signals_as_requests():
    """SIGINT and SIGTERM become a request to stop after the current step (a second one stops at once)."""
    requests: dict = {}

    def on_signal(signum, frame):
        if "signal" in requests:
            raise KeyboardInterrupt
        requests["signal"] = signum

    if threading.current_thread() is not threading.main_thread():
        yield requests
        return
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requests
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _agree(finite: torch.Tensor, requests: dict, info: DistInfo, device) -> tuple[bool, bool]:
    """``(the step is finite on every rank, some rank was asked to stop)``, in one host sync."""
    asked = "signal" in requests or "time_limit" in requests
    flags = torch.stack([(~finite).float(), torch.tensor(float(asked), device=finite.device)])
    if info.enabled:
        flags = flags.to(device)
        dist.all_reduce(flags)
    bad, stop = flags.tolist()
    return bad == 0, stop > 0


def _misfit(ckpt: Path, saved: dict, cfg) -> str:
    """Why a checkpoint's weights do not fit the model of ``cfg``: the config fields that differ."""
    now = to_dict(cfg)
    differ = [f"{k}={saved[k]!r} there, {now[k]!r} now" for k in sorted(saved) if k in now and saved[k] != now[k]]
    detail = "; ".join(differ[:4]) if differ else "its saved config matches, so its files do not"
    return f"checkpoint {ckpt} does not fit the model of this config ({detail})"


def load_run(
    experiment: Experiment, run_dir: str, words: list[str] | None = None, use_ema: bool = True, step: int | None = None
):
    """Model (EMA weights when present), config and checkpoint path from a run folder alone.

    ``step``: the checkpoint saved after that optimizer step instead of the latest one."""
    from akorn.engine.config import apply_overrides, from_dict, parse_words

    run = RunFolder(Path(run_dir))
    if not run.path.is_dir():
        raise UserError(f"run folder not found: {run.path}")
    cfg = from_dict(experiment.config_cls, run.read_config(experiment), str(run.path / "config.json"))
    if words:
        cfg = apply_overrides(cfg, parse_words(words))
    ckpt_path = run.latest_checkpoint()
    if ckpt_path is None:
        raise UserError(f"run folder {run.path} has no checkpoint")
    if step is not None:
        saved = {ck.checkpoint_step(p): p for p in ck.list_checkpoints(run.checkpoints)}
        if step not in saved:
            raise UserError(
                f"run folder {run.path} has no checkpoint at step {step}; "
                f"it has steps {', '.join(map(str, sorted(saved)))}"
            )
        ckpt_path = saved[step]
    loaded = ck.load_checkpoint(ckpt_path, need_ema=use_ema and cfg.ema_decay > 0)
    try:
        model = experiment.build_model(cfg)
    except ValueError as e:
        raise UserError(f"cannot build the model of this config: {e}") from None
    if use_ema and loaded["ema"] is not None:
        sd = ck.ema_model_weights(loaded["ema"])
    else:
        sd = loaded["model"]
    try:
        model.load_state_dict(sd)
    except RuntimeError:
        raise UserError(_misfit(ckpt_path, loaded["state"].get("config", {}), cfg)) from None
    model.eval()
    return model, cfg, ckpt_path
