"""Sudoku models: the authors' AKOrN architecture and the ItrSA / Transformer baselines.

All take ``quiz`` ``(B, 81)`` digits (0 = blank) and return logits ``(B, 81, 9)`` for digits 1..9.
"""

from __future__ import annotations

import torch
from torch import nn

from akorn.core.layer import KuramotoLayer, OscillatorState, Speed
from akorn.core.networks import IteratedNetwork
from akorn.core.readout import Readout

GRID = (9, 9)


class ResidualFF(nn.Module):
    """``x + W2 relu(W1 relu(x))`` on tokens (two 1x1 convolutions)."""

    def __init__(self, channels: int):
        super().__init__()
        self.fn = nn.Sequential(nn.ReLU(), nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, channels))

    def forward(self, x):
        return x + self.fn(x)


class SudokuAKOrN(nn.Module):
    """Digit embedding -> attention Kuramoto layer with GTA over the 9x9 grid -> readout -> 9 logits.

    The initial state is the clue embedding at given cells and Gaussian noise at blanks, so
    every call with fresh noise is a new random trajectory (what energy voting works on).
    """

    def __init__(
        self,
        channels: int = 512,
        n: int = 4,
        *,
        heads: int = 8,
        steps: int = 16,
        omega_init: float = 0.5,
        learn_omega: bool = True,
        gamma: float = 1.0,
        learn_gamma: bool = True,
        energy_mode: str = "reference",
        checkpoint: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        self.channels, self.n = channels, n
        self.embedding = nn.Embedding(10, channels)
        self.kuramoto = KuramotoLayer(
            channels,
            n=n,
            coupling="attn",
            heads=heads,
            positions="gta",
            grid=GRID,
            omega="global",
            omega_init=omega_init,
            learn_omega=learn_omega,
            gamma=gamma,
            learn_gamma=learn_gamma,
            c_norm=None,
            steps=steps,
            energy_mode=energy_mode,
            speed=Speed(checkpoint=checkpoint, compile=compile, check_inputs=False),
        )
        self.readout = nn.Sequential(
            Readout(channels, channels, group=n), ResidualFF(channels), nn.ReLU(), nn.Linear(channels, channels)
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(channels, 9))
        # Inference reads boards out from the step's state layout many times per trajectory (early
        # exits), for pools of changing size: compiled once for any number of rows. Unbound, so a
        # deep copy reads out with its own weights (as the layer's compiled step does).
        self._compiled_read = torch.compile(SudokuAKOrN._read, dynamic=True) if compile else None

    @property
    def steps(self) -> int:
        return self.kuramoto.steps

    def start(self, quiz: torch.Tensor, generator=None, noise=None) -> OscillatorState:
        """The Kuramoto layer's starting state for ``quiz`` ``(B, 81)``: clue embeddings at the givens,
        noise elsewhere, driven by the clue embeddings."""
        c = self.stimulus(quiz)
        return self.kuramoto.start(self.initial_state(quiz, c, generator, noise), c)

    def read(self, state: OscillatorState) -> torch.Tensor:
        """Logits ``(B, 81, 9)`` of a state of the Kuramoto layer (compiled with ``compile=True``)."""
        if self._compiled_read is None:
            return self._read(state.data)
        return self._compiled_read(self, state.data)

    def _read(self, data: torch.Tensor) -> torch.Tensor:
        return self.decode(self.kuramoto.from_step_layout(data))

    def stimulus(self, quiz: torch.Tensor) -> torch.Tensor:
        _check_quiz(quiz)
        return self.embedding(quiz.long())  # (B, 81, C)

    def initial_state(self, quiz: torch.Tensor, c: torch.Tensor, generator=None, noise=None) -> torch.Tensor:
        if noise is None:
            noise = torch.randn(c.shape, generator=generator, device=c.device, dtype=c.dtype)
        return torch.where((quiz > 0).unsqueeze(-1), c, noise)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Final oscillator states (B, 81, C) -> logits (B, 81, 9)."""
        return self.head(self.readout(x))

    def forward(self, quiz, steps: int | None = None, generator=None, noise=None, return_energy: bool = False):
        c = self.stimulus(quiz)
        x0 = self.initial_state(quiz, c, generator, noise)
        if return_energy:
            x, _, energy = self.kuramoto(x0, c, steps=steps, return_energy=True)
            return self.decode(x), energy
        return self.decode(self.kuramoto(x0, c, steps=steps))


class SudokuIterated(nn.Module):
    """ItrSA (``blocks=1, steps=16``) and the Transformer (``blocks=8, steps=1``) on the Sudoku grid."""

    def __init__(self, channels: int = 512, heads: int = 8, blocks: int = 1, steps: int = 16):
        super().__init__()
        self.embedding = nn.Embedding(10, channels)
        self.net = IteratedNetwork(channels, GRID, blocks=blocks, steps=steps, heads=heads)
        self.head = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, 9))
        self._steps = steps

    @property
    def steps(self) -> int:
        return self._steps

    def forward(self, quiz, steps: int | None = None, generator=None, noise=None, return_energy: bool = False):
        _check_quiz(quiz)
        if return_energy:
            raise ValueError("energies exist only for AKOrN models")
        return self.head(self.net(self.embedding(quiz.long()), steps))


def _check_quiz(quiz: torch.Tensor):
    if quiz.ndim != 2 or quiz.shape[1] != 81:
        raise ValueError(f"quiz must be (B, 81) digits, got shape {tuple(quiz.shape)}")


def build(cfg):
    """The Sudoku model of a :class:`~akorn.experiments.sudoku.experiment.SudokuConfig`."""
    if cfg.model == "akorn":
        return SudokuAKOrN(
            cfg.channels,
            cfg.n,
            heads=cfg.heads,
            steps=cfg.steps,
            omega_init=cfg.omega_init,
            learn_omega=cfg.learn_omega,
            gamma=cfg.gamma,
            learn_gamma=cfg.learn_gamma,
            checkpoint=cfg.activation_checkpoint,
            compile=cfg.compile,
        )
    if cfg.model in ("itrsa", "transformer"):
        return SudokuIterated(cfg.channels, cfg.heads, cfg.blocks, cfg.steps)
    raise ValueError(f"unknown Sudoku model {cfg.model!r}; choose akorn, itrsa or transformer")
