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
    # The EMA updates after the steps with (done - ema_offset) % ema_every == 0, from ema_start on.
    # ema_pytorch, in the authors' scripts, updates at done = 1 (mod ema_every) and first averages
    # one step after its update_after_step: ema_offset=1 with ema_start=update_after_step+1 replays it.
    ema_offset: int = 0
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
            ema_offset=(0, None),
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
    # True when the model compiles its own parts under ``compile=true`` (the trainer then leaves it whole)
    handles_compile: bool = False
    # Short names of its shipped models for ``pretrained:NAME`` ("" is what ``pretrained`` alone means)
    pretrained: dict[str, str] = {}

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
        """Metrics of the model on held-out data, logged with ``split: eval`` (none by default)."""
        return {}

    def from_authors_checkpoint(self, path: str, words: list[str]) -> tuple[dict, Any]:
        """Our state dict and config for a checkpoint file of the authors' code; ``words`` set the
        config fields their file does not record."""
        raise UserError(f"akorn {self.name} has no converter for checkpoints of the authors' code")


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


def ema_updates_at(cfg: TrainConfig, done: int) -> bool:
    """Whether the EMA updates after optimizer step ``done``."""
    return done >= cfg.ema_start and (done - cfg.ema_offset) % cfg.ema_every == 0


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


class Trainer:
    """One training run, in parts that each fit on a screen: :meth:`setup` (device, run folder, data,
    model, optimizer), :meth:`restore` (a checkpoint), :meth:`step` (one optimizer step),
    :meth:`log`, :meth:`save` and :meth:`evaluate`, and :meth:`stop_after` (signal, time limit).
    A non-finite step stops the run or is skipped (``nonfinite``). :meth:`fit` is the loop.
    """

    def __init__(self, experiment: Experiment, cfg, resume: str | None = None, on_step: Callable | None = None):
        self.experiment, self.cfg, self.on_step = experiment, cfg, on_step
        self.setup(resume)

    # -- setup -------------------------------------------------------------------------------
    def setup(self, resume: str | None):
        cfg = self.cfg
        self.info, self.device = init_distributed(pick_device(cfg.device))
        if cfg.threads > 0 and self.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        if cfg.batch_size % self.info.world:
            raise UserError(
                f"batch_size {cfg.batch_size} must be divisible by the number of processes {self.info.world}"
            )
        ckpt_path = self.open_run_folder(resume)
        self.data = self.experiment.train_data(cfg)  # fails early on bad data, before anything is written
        if len(self.data) < cfg.batch_size:
            raise UserError(f"training set has {len(self.data)} examples, fewer than batch_size={cfg.batch_size}")
        self.steps_per_epoch = len(self.data) // cfg.batch_size
        self.total = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps > 0:
            self.total = min(self.total, cfg.max_steps)
        self.build(init=ckpt_path is None)
        self.start = self.restore(ckpt_path) if ckpt_path is not None else 0
        if self.info.is_main:
            ensure_writable_dir(self.run.path)
            self.lock = self.lock or self.run.lock()
            self.run.truncate_metrics(self.start)
            self.run.write_config(self.experiment.name, cfg)
        barrier(self.info)
        self.train_model = self.wrap(self.model)
        self.writer, self.bar = self.open_outputs()
        self.shard = cfg.batch_size // self.info.world

    def open_run_folder(self, resume: str | None) -> Path | None:
        """The run folder (locked when resumed) and the checkpoint to restore, if any."""
        self.lock = None
        if resume is not None:
            self.run = RunFolder(Path(resume))
            if self.info.is_main:
                self.lock = self.run.lock()  # before reading checkpoints another training could be rotating
            ckpt_path = self.run.latest_checkpoint()
            self.run.read_metrics()  # a corrupt metrics file stops the resume here, before anything is rewritten
            return ckpt_path
        name = self.cfg.name or f"{self.experiment.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.run = RunFolder(Path(self.cfg.out_dir) / name)
        if self.run.path.exists() and ck.list_checkpoints(self.run.checkpoints):
            raise UserError(
                f"run folder {self.run.path} already has checkpoints; use --resume {self.run.path} or another name="
            )
        return None

    def build(self, init: bool):
        """Model (seeded), initial weights, EMA and optimizer."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        try:
            self.model = self.experiment.build_model(cfg).to(self.device)
        except (ValueError, RuntimeError, MemoryError, OverflowError) as e:  # bad sizes, or too large
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"cannot build the model of this config: {reason}") from None
        if cfg.init and init:
            load_init_weights(self.model, cfg.init)
        self.ema = make_ema(self.model, cfg)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def restore(self, ckpt_path: Path) -> int:
        """Weights, EMA, optimizer and random state from a checkpoint; returns its step."""
        loaded = ck.load_checkpoint(ckpt_path, need_ema=self.ema is not None)
        try:
            self.model.load_state_dict(loaded["model"])
        except RuntimeError:
            raise UserError(_misfit(ckpt_path, loaded["state"].get("config", {}), self.cfg)) from None
        if self.ema is not None and loaded["ema"] is not None:
            load_ema_state(self.ema, loaded["ema"])
        if loaded["optimizer"] is not None:
            self.optimizer.load_state_dict(loaded["optimizer"])
        if "rng" in loaded["state"]:
            set_rng_state(loaded["state"]["rng"])
        return int(loaded["state"]["step"])

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP under torchrun, and ``torch.compile`` unless the experiment compiles its own parts."""
        if self.info.enabled:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if self.cfg.compile and not self.experiment.handles_compile:
            model = torch.compile(model)
        return model

    def open_outputs(self):
        """TensorBoard writer (when installed) and progress bar, on the first process only."""
        if not self.info.is_main:
            return None, None
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.run.path / "tb"))
        except ImportError:
            writer = None
        from tqdm import tqdm

        bar = tqdm(
            total=self.total,
            initial=self.start,
            desc=self.experiment.name,
            unit="step",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        return writer, bar

    # -- the loop ------------------------------------------------------------------------------
    def fit(self) -> Path:
        """Steps ``start .. total``, logging, checkpoints, evaluations and stops; returns the run folder."""
        self.model.train()
        self.running, self.skipped = {}, 0
        self.t_last = self.t_start = time.time()
        with _signals_as_requests() as requests:
            self.requests = requests
            for step, batch in self.batches():
                done = step + 1
                stop = self.step(step, batch)
                self.log(step, done)
                if self.bar is not None:
                    self.bar.update(1)
                if self.on_step is not None:
                    self.on_step(done)
                if done % self.cfg.checkpoint_every == 0 or done == self.total or stop:
                    self.save(done)
                if stop:
                    self.stop_after(done)
                    break
                if self.cfg.eval_every > 0 and done % self.cfg.eval_every == 0 and done != self.total:
                    self.evaluate(done)
        if self.start < self.total or self.total == 0:
            self.evaluate(self.total)
        self.close()
        return self.run.path

    def batches(self):
        """``(step, batch on the device)`` for the remaining steps. Data read from disk as it goes
        (``streams``) gets the next step's batch read while this step computes; the batches are the
        same either way."""
        prefetch = ThreadPoolExecutor(1) if getattr(self.data, "streams", False) else None
        upcoming = prefetch.submit(self.fetch, self.start) if prefetch is not None and self.start < self.total else None
        step = self.start
        while step < self.total:
            if upcoming is not None:
                batch = upcoming.result()
                upcoming = prefetch.submit(self.fetch, step + 1) if step + 1 < self.total else None
            else:
                batch = self.fetch(step)
            yield step, {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            step += 1

    def fetch(self, step: int) -> dict:
        idx = batch_indices(len(self.data), self.cfg.batch_size, step, self.cfg.seed)
        return self.data.batch(idx[self.info.rank * self.shard : (self.info.rank + 1) * self.shard])

    def step(self, step: int, batch: dict) -> bool:
        """One optimizer step (or a skipped non-finite one); returns whether the run must stop after it."""
        cfg = self.cfg
        for g in self.optimizer.param_groups:
            g["lr"] = lr_at(cfg, step, self.total)
        gen = step_generator(cfg.seed, step, self.device)
        with _autocast(self.device, cfg.precision):
            loss, metrics = self.experiment.loss(
                self.train_model, batch, gen, cfg, shard=(self.info.rank * self.shard, cfg.batch_size)
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(self.params, cfg.clip_grad)
        else:
            gnorm = total_grad_norm(self.params)
        # One look at the host per step: is the step finite, and did a signal ask to stop?
        # Both are agreed on by every rank, so all stop or skip at the same step.
        if cfg.time_limit > 0 and time.time() - self.t_start > 60 * cfg.time_limit:
            self.requests["time_limit"] = True
        finite, stop = _agree(
            torch.isfinite(loss.detach()) & torch.isfinite(gnorm), self.requests, self.info, self.device
        )
        done = step + 1
        if not finite:
            self.not_finite(done, loss, gnorm)
            return stop
        # Metrics stay on the device until they are logged: a float() here would make the host
        # wait for the GPU at every step.
        metrics["grad_norm"] = gnorm.detach()
        self.optimizer.step()
        if self.ema is not None and ema_updates_at(cfg, done):
            self.ema.multi_avg_fn = get_ema_multi_avg_fn(ema_decay_at(cfg, done))
            self.ema.update_parameters(self.model)
        metrics["loss"] = loss.detach()
        for k, v in metrics.items():
            self.running.setdefault(k, []).append(v)
        return stop

    def not_finite(self, done: int, loss: torch.Tensor, gnorm: torch.Tensor):
        """``nonfinite=stop``: a one-line error naming the last good checkpoint; ``skip``: count and go on."""
        if self.cfg.nonfinite == "stop":
            if self.bar is not None:
                self.bar.close()
            raise UserError(
                f"training stopped at step {done}: the loss ({float(loss.detach()):.4g}) or the gradient norm "
                f"({float(gnorm):.4g}) is not finite; the last good checkpoint is "
                f"{self.run.latest_checkpoint() or 'none (no checkpoint was saved yet)'}; lower lr, or set "
                "nonfinite=skip to skip such steps"
            )
        self.skipped += 1
        self.optimizer.zero_grad(set_to_none=True)

    def stop_after(self, done: int):
        """After the saved step ``done``: the time budget ends the run as a finished one; a signal
        raises :class:`TrainingInterrupted` with the command that resumes."""
        if "signal" not in self.requests:
            if self.info.is_main:
                self.run.log({"step": done, "split": "train", "time_limit_reached": self.cfg.time_limit})
                self.bar.write(f"time limit of {self.cfg.time_limit} min reached after step {done}")
            self.total = done
            return
        if self.bar is not None:
            self.bar.close()
        raise TrainingInterrupted(self.requests["signal"], done, self.run.path, self.experiment.name, self.info.is_main)

    # -- records -------------------------------------------------------------------------------
    def log(self, step: int, done: int):
        """Every ``log_every`` steps (and at the end): the mean of the metrics since the last record."""
        cfg = self.cfg
        if not ((done % cfg.log_every == 0 or done == self.total) and (self.running or self.skipped)):
            return
        avg = all_reduce_mean(
            {k: sum(float(x) for x in v) / len(v) for k, v in self.running.items()}, self.info, self.device
        )
        self.running = {}
        if not self.info.is_main:
            return
        now = time.time()
        rec = {
            "step": done,
            "split": "train",
            "epoch": done / self.steps_per_epoch,
            "lr": lr_at(cfg, step, self.total),
            "sec_per_step": (now - self.t_last) / cfg.log_every,
            **avg,
        }
        if self.skipped:
            rec["skipped_steps"] = self.skipped
        self.t_last = now
        self.run.log(rec)
        if self.writer is not None:
            for k, v in avg.items():
                self.writer.add_scalar(f"train/{k}", v, done)
        if "loss" in avg:
            self.bar.set_postfix(loss=f"{avg['loss']:.4f}")

    def save(self, step: int):
        if self.info.is_main:
            meta = {
                "experiment": self.experiment.name,
                "version": akorn.__version__,
                "config": to_dict(self.cfg),
                "rng": rng_state(),
            }
            ck.save_checkpoint(
                self.run.checkpoints,
                step,
                self.model.state_dict(),
                ema_state(self.ema) if self.ema is not None else None,
                self.optimizer.state_dict(),
                meta,
                keep=self.cfg.keep_checkpoints,
            )
        barrier(self.info)

    def evaluate(self, step: int):
        """The experiment's evaluation of the EMA weights (the raw ones without an EMA), logged."""
        if self.info.is_main:
            eval_model = self.ema.module if self.ema is not None else self.model
            eval_model.eval()
            with torch.no_grad():
                metrics = self.experiment.evaluate(eval_model, self.cfg, self.device)
            self.model.train()
            if metrics:
                self.run.log({"step": step, "split": "eval", **metrics})
                if self.writer is not None:
                    for k, v in metrics.items():
                        if isinstance(v, (int, float)):
                            self.writer.add_scalar(f"eval/{k}", v, step)
                self.bar.write(
                    f"[eval step {step}] "
                    + " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
                )
        barrier(self.info)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def train(experiment: Experiment, cfg, resume: str | None = None, on_step: Callable | None = None) -> Path:
    """Train ``experiment`` with ``cfg`` (or continue the run in ``resume``); returns the run folder."""
    return Trainer(experiment, cfg, resume, on_step).fit()


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
