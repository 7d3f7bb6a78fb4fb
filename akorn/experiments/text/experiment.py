"""The byte-level language model experiment for the engine: config, presets, data, loss, evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F

from akorn.engine.config import check_choice, check_ranges, require
from akorn.engine.trainer import Experiment, TrainConfig
from akorn.experiments.text import data as tdata
from akorn.experiments.text.evaluation import bits_per_byte
from akorn.experiments.text.models import INITS, build


@dataclass
class TextConfig(TrainConfig):
    """A 1.2 M-parameter model of bytes by default: 2 layers (or blocks) of 256 channels, context 128."""

    model: str = "akorn"  # akorn | transformer | itrsa
    data: str = "shakespeare"  # a text file, or a corpus: shakespeare, enwik8, text8
    data_dir: str = "data"
    context: int = 128  # bytes a window holds (the model's positions)
    channels: int = 256
    n: int = 4
    layers: int = 2  # Kuramoto layers (AKOrN) or blocks (Transformer, ItrSA)
    heads: int = 8
    steps: int = 3  # T: Kuramoto steps per layer (AKOrN) or iterations per block (ItrSA)
    window: int = 0  # attention to the `window` latest tokens only (0: the whole context)
    positions: str = "rope"  # rope | gta | none (AKOrN); the baselines learn theirs
    initial_state: str = "stimulus"  # the first oscillator state: the byte embedding, or noise
    omega_init: float = 0.1
    gamma: float = 1.0
    learn_gamma: bool = False
    mlp_ratio: int = 2  # baselines' MLP width, in channels
    eval_limit: int = 64  # validation windows evaluated during training (0: all)
    eval_steps: int = 0  # T during evaluation (0: steps)
    batch_size: int = 32
    warmup_steps: int = 100
    ema_every: int = 1
    ema_decay: float = 0.998

    def validate(self):
        super().validate()
        check_choice(self, "model", ("akorn", "transformer", "itrsa"))
        check_choice(self, "positions", ("rope", "gta", "none"))
        check_choice(self, "initial_state", INITS)
        check_ranges(self, context=(2, None), channels=(1, None), n=(1, None), layers=(1, None), heads=(1, None),
                     steps=(1, None), window=(0, None), mlp_ratio=(1, None), eval_limit=(0, None),
                     eval_steps=(0, None))  # fmt: skip
        require(not self.window or self.context % self.window == 0,
                f"context ({self.context}) must be a multiple of window ({self.window})")  # fmt: skip
        require(self.channels % self.heads == 0,
                f"channels ({self.channels}) must be divisible by heads ({self.heads})")  # fmt: skip
        if self.model == "akorn":
            require(self.channels % self.n == 0 and self.n % 2 == 0,
                    f"channels ({self.channels}) must be a multiple of an even n, got n={self.n}")  # fmt: skip
            require((self.channels // self.heads) % 2 == 0, "channels/heads must be even for rotary positions")
        else:
            require(self.channels % 4 == 0, f"channels must be divisible by 4 (sinusoid init), got {self.channels}")


PRESETS = {
    # Trains in an hour on 2 CPU cores (the measured runs of docs/text.md use time_limit=12).
    "cpu": dict(time_limit=60, epochs=1000, compile=True, checkpoint_every=250, eval_every=500, log_every=25),
    "transformer": dict(model="transformer"),
    "itrsa": dict(model="itrsa"),
    # For tests: seconds per run.
    "tiny": dict(channels=16, heads=2, layers=1, steps=2, context=16, batch_size=4, max_steps=3, warmup_steps=0,
                 checkpoint_every=2, log_every=1, ema_start=1, eval_limit=4),
}  # fmt: skip


class TextExperiment(Experiment):
    name = "text"
    config_cls = TextConfig
    presets = PRESETS
    handles_compile = True

    def build_model(self, cfg: TextConfig):
        return build(cfg)

    def train_data(self, cfg):
        return tdata.load(cfg.data, cfg.data_dir, "train", cfg.context)

    def eval_data(self, cfg, split: str = "valid"):
        return tdata.load(cfg.data, cfg.data_dir, split, cfg.context)

    def loss(self, model, batch, generator, cfg, shard=(0, None)):
        tokens = batch["tokens"]
        logits = model(tokens[:, :-1], generator=generator)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1))
        return loss, {"train_bits_per_byte": loss.detach() / math.log(2)}

    def evaluate(self, model, cfg, device):
        windows = self.eval_data(cfg)
        limit = cfg.eval_limit or len(windows)
        return {"bits_per_byte": bits_per_byte(model, windows, limit, steps=cfg.eval_steps or None, seed=cfg.seed)}
