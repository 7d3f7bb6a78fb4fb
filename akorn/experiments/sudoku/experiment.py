"""The Sudoku experiment for the engine: config, presets, data, loss, evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from akorn.engine.config import apply_overrides, check_choice, check_ranges, from_dict, parse_words, require
from akorn.engine.trainer import Experiment, TrainConfig
from akorn.experiments.sudoku import data as sdata
from akorn.experiments.sudoku.inference import accuracy, predict
from akorn.experiments.sudoku.models import build
from akorn.experiments.sudoku.symmetry import apply_symmetries, random_symmetries


@dataclass
class SudokuConfig(TrainConfig):
    """Defaults are the authors' recipe: C=512, N=4, 8 heads, T=16, Adam 1e-3, batch 100, 100 epochs."""

    model: str = "akorn"  # akorn | itrsa | transformer
    channels: int = 512
    n: int = 4
    heads: int = 8
    steps: int = 16  # T in training
    blocks: int = 1  # ItrSA/Transformer blocks
    omega_init: float = 0.5
    learn_omega: bool = True
    gamma: float = 1.0
    learn_gamma: bool = True
    activation_checkpoint: bool = False
    data: str = ""  # training data: CSV, SATNet/RRN folder or generate:N:LO-HI[:SEED[:STYLE]]; "" downloads SATNet
    data_dir: str = "data"
    eval_data: str = ""  # evaluated during training; "" -> SATNet test split when training on the SATNet folder
    eval_limit: int = 1000
    eval_steps: int = 0  # T during periodic evaluation (0: steps)
    # "symmetry": every training board drawn through a random element of Sudoku's symmetry group
    # (not in the paper's recipe; akorn.experiments.sudoku.symmetry). "none": the boards as they are.
    augment: str = "none"

    def validate(self):
        super().validate()
        check_choice(self, "model", ("akorn", "itrsa", "transformer"))
        check_choice(self, "augment", ("none", "symmetry"))
        check_ranges(
            self,
            channels=(1, None),
            n=(1, None),
            heads=(1, None),
            steps=(1, None),
            blocks=(1, None),
            omega_init=(None, None),
            gamma=(None, None),
            eval_limit=(0, None),
            eval_steps=(0, None),
        )
        require(
            self.channels % self.heads == 0, f"channels ({self.channels}) must be divisible by heads ({self.heads})"
        )
        if self.model == "akorn":
            require(self.channels % self.n == 0, f"channels ({self.channels}) must be divisible by n ({self.n})")
            require(self.n % 2 == 0, f"n must be even (the natural frequencies rotate channel pairs), got {self.n}")
            require(
                (self.channels // self.heads) % 2 == 0,
                f"channels/heads must be even for GTA's 2x2 blocks, got {self.channels}/{self.heads}",
            )
        else:
            require(self.channels % 4 == 0, f"channels must be divisible by 4 (2-D sinusoids), got {self.channels}")


PRESETS = {
    # A small model that trains in minutes on 2 CPU cores.
    "cpu": dict(channels=64, heads=4, epochs=4, checkpoint_every=90, eval_limit=300, compile=True),
    # The model shipped with the package: what 2 CPU cores can train in about an hour.
    # EMA every step: the recipe's every-10-steps EMA lags too far behind on a run this short.
    "cpu-full": dict(
        channels=128,
        heads=8,
        epochs=40,
        checkpoint_every=90,
        eval_every=450,
        eval_limit=500,
        compile=True,
        ema_every=1,
        ema_warmup=False,
    ),
    # Baselines with the authors' learning rate.
    "itrsa": dict(model="itrsa", lr=5e-4, blocks=1, steps=16),
    "transformer": dict(model="transformer", lr=5e-4, blocks=8, steps=1),
    # For tests: seconds per run.
    "tiny": dict(
        channels=16,
        heads=2,
        steps=4,
        epochs=2,
        batch_size=10,
        checkpoint_every=2,
        log_every=1,
        ema_start=1,
        ema_every=1,
        eval_limit=20,
    ),
}


class SudokuExperiment(Experiment):
    name = "sudoku"
    config_cls = SudokuConfig
    presets = PRESETS
    handles_compile = True
    pretrained = {"": "sudoku-akorn", "sudoku": "sudoku-akorn", "c128": "sudoku-akorn-c128"}

    def from_authors_checkpoint(self, path: str, words: list[str]):
        from akorn.experiments.sudoku.authors import load_authors_checkpoint

        weights, arch = load_authors_checkpoint(path)
        cfg = from_dict(SudokuConfig, dict(arch, model="akorn"), path)
        return weights, apply_overrides(cfg, parse_words(words)) if words else cfg

    def build_model(self, cfg: SudokuConfig):
        return build(cfg)

    def _train_spec(self, cfg) -> str:
        if cfg.data:
            return cfg.data
        folder = Path(cfg.data_dir) / "sudoku"
        if not (folder / "features.pt").exists():
            sdata.download("satnet", cfg.data_dir)
        return str(folder)

    def train_data(self, cfg):
        return sdata.load(self._train_spec(cfg), "train")

    def eval_data(self, cfg):
        if cfg.eval_data:
            return sdata.load(cfg.eval_data, "test")
        spec = self._train_spec(cfg)
        if Path(spec).is_dir() and (Path(spec) / "features.pt").exists():
            return sdata.load(spec, "test")
        return None

    def loss(self, model, batch, generator, cfg, shard=(0, None)):
        quiz, solution = batch["quiz"], batch["solution"]
        noise = None
        if cfg.model == "akorn":
            offset, global_batch = shard
            global_batch = global_batch or quiz.shape[0]
            full = torch.randn((global_batch, 81, cfg.channels), generator=generator, device=generator.device)
            noise = full[offset : offset + quiz.shape[0]].to(quiz.device)
        if cfg.augment == "symmetry":
            # drawn for the whole global batch after the noise, so every rank moves its boards alike
            # and the noise is the same as without the option
            offset, global_batch = shard
            cells, digits = random_symmetries(global_batch or quiz.shape[0], generator)
            part = slice(offset, offset + quiz.shape[0])
            quiz = apply_symmetries(quiz, cells[part], digits[part])
            solution = apply_symmetries(solution, cells[part], digits[part])
        logits = model(quiz, noise=noise)
        loss = F.cross_entropy(logits.reshape(-1, 9).float(), (solution - 1).reshape(-1))
        with torch.no_grad():
            pred = logits.argmax(-1) + 1
            blank = quiz == 0
            board = ((pred == solution) | ~blank).all(1).float().mean()
        return loss, {"train_board_acc": board}

    def evaluate(self, model, cfg, device):
        ds = self.eval_data(cfg)
        if ds is None:
            return {}
        ds = ds[: cfg.eval_limit]
        pred = predict(model, ds.quiz, steps=cfg.eval_steps or cfg.steps, candidates=1, seed=cfg.seed)
        acc = accuracy(pred.digits, ds.solution, ds.quiz)
        return {"board_acc": acc["board_acc"], "cell_acc": acc["cell_acc"]}
