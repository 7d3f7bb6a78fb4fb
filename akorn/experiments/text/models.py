"""Byte-level language models: stacked causal Kuramoto layers, and the Transformer / ItrSA baselines.

All take ``tokens`` ``(B, L)`` bytes and return next-byte logits ``(B, L, 256)``; the logits at
position t depend only on tokens ``0..t``.

The AKOrN model: byte embedding ``c_0`` -> L Kuramoto layers with causal attention coupling
(rotary or GTA positions along the sequence), a readout after each (``c_l = R_l(x_l)`` drives the
next layer, the state ``x`` carries over) -> LayerNorm -> linear. The first state is the
embedding itself (``initial_state="stimulus"``, deterministic, so bits per character do not depend on a
draw) or Gaussian noise (``initial_state="noise"``, as in the paper's Sudoku model).
"""

from __future__ import annotations

import torch
from torch import nn

from akorn.core.coupling import AttentionCoupling, CouplingCache
from akorn.core.layer import KuramotoLayer, Speed
from akorn.core.networks import IteratedNetwork, KuramotoStack
from akorn.core.readout import Readout
from akorn.experiments.text.data import VOCAB

INITS = ("stimulus", "noise")


class TextAKOrN(nn.Module):
    def __init__(
        self,
        channels: int = 256,
        n: int = 4,
        *,
        layers: int = 2,
        heads: int = 8,
        steps: int = 3,
        context: int = 128,
        window: int = 0,
        positions: str = "rope",
        omega_init: float = 0.1,
        gamma: float = 1.0,
        learn_gamma: bool = False,
        initial_state: str = "stimulus",
        compile: bool = False,
    ):
        super().__init__()
        if initial_state not in INITS:
            raise ValueError(f"initial_state must be one of {INITS}, got {initial_state!r}")
        self.initial_state, self.context, self.n = initial_state, context, n
        self.embedding = nn.Embedding(VOCAB, channels)

        def layer():
            coupling = AttentionCoupling(channels, heads, positions, (context,), causal=True, window=window)
            return KuramotoLayer(channels, n, coupling=coupling, omega="global", omega_init=omega_init, gamma=gamma,
                                 learn_gamma=learn_gamma, c_norm=None, steps=steps,
                                 speed=Speed(compile=compile, check_inputs=False))  # fmt: skip

        readouts = [Readout(channels, channels, n) for _ in range(layers)]
        self.stack = KuramotoStack([layer() for _ in range(layers)], readouts)
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, VOCAB)

    @property
    def steps(self) -> int:
        return self.stack.layers[0].steps

    def _start(self, tokens: torch.Tensor, generator=None):
        _check_tokens(tokens, self.context)
        c = self.embedding(tokens)
        if self.initial_state == "noise":
            return torch.randn(c.shape, generator=generator, device=c.device, dtype=c.dtype), c
        return c, c

    def forward(self, tokens, steps: int | None = None, generator=None, return_energy: bool = False,
                return_states: bool = False):  # fmt: skip
        """Logits ``(B, L, 256)``; with ``return_energy`` also every layer's energies ``(B, T+1)``, with
        ``return_states`` every layer's final state."""
        x, c = self._start(tokens, generator)
        if not (return_energy or return_states):
            return self.head(self.norm(self.stack(x, c, steps)))
        out = self.stack(x, c, steps, return_states=return_states, return_energy=return_energy)
        return (self.head(self.norm(out[0])), *out[1:])

    def new_cache(self, steps: int | None = None) -> list[list[CouplingCache]]:
        """Empty key/value caches: one per Kuramoto step of every layer."""
        return [[CouplingCache() for _ in range(steps or layer.steps)] for layer in self.stack.layers]

    def extend(self, tokens: torch.Tensor, cache: list[list[CouplingCache]], generator=None) -> torch.Tensor:
        """Logits of ``tokens`` ``(B, l)`` that follow the ones ``cache`` has seen (filling it): the same
        as the last l positions of :meth:`forward` over the whole sequence."""
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2:
            raise ValueError(f"tokens must be (B, l) bytes, got {getattr(tokens, 'shape', tokens)!r}")
        seen = cache[0][0].length
        if seen + tokens.shape[1] > self.context:
            more = tokens.shape[1]
            raise ValueError(f"the cache holds {seen} tokens; {more} more pass the context of {self.context}")
        x, c = self._start(tokens, generator)
        for layer, readout, caches in zip(self.stack.layers, self.stack.readouts, cache):
            x = layer.extend(x, c, caches)
            c = readout(x)
        return self.head(self.norm(c))


class TextIterated(nn.Module):
    """The Transformer (``blocks=L, steps=1``) and ItrSA (``steps=T``, weights shared over the T
    iterations) on bytes: causal self-attention blocks with learnable positions."""

    def __init__(self, channels: int = 256, heads: int = 8, blocks: int = 2, steps: int = 1, context: int = 128,
                 mlp_ratio: int = 2, compile: bool = False):  # fmt: skip
        super().__init__()
        self.context, self._steps = context, steps
        self.embedding = nn.Embedding(VOCAB, channels)
        self.net = IteratedNetwork(channels, (1, context), blocks, steps, heads, mlp_ratio=mlp_ratio, causal=True)
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, VOCAB)
        # unbound, so that a deep copy (the EMA) runs its own weights
        self._compiled = torch.compile(TextIterated._logits, dynamic=False) if compile else None

    @property
    def steps(self) -> int:
        return self._steps

    def _logits(self, tokens, steps):
        return self.head(self.norm(self.net(self.embedding(tokens), steps)))

    def forward(self, tokens, steps: int | None = None, generator=None, return_energy: bool = False,
                return_states: bool = False):  # fmt: skip
        if return_energy or return_states:
            raise ValueError("energies and oscillator states exist only for AKOrN models")
        _check_tokens(tokens, self.context)
        if self._compiled is not None and self.training:
            return self._compiled(self, tokens, steps)
        return self._logits(tokens, steps)


def _check_tokens(tokens: torch.Tensor, context: int):
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"tokens must be (B, L) integer bytes, got {getattr(tokens, 'shape', type(tokens))}")
    if tokens.shape[1] > context:
        raise ValueError(f"{tokens.shape[1]} tokens pass the model's context of {context}")


def build(cfg) -> nn.Module:
    """The model of a :class:`~akorn.experiments.text.experiment.TextConfig`."""
    if cfg.model == "akorn":
        return TextAKOrN(cfg.channels, cfg.n, layers=cfg.layers, heads=cfg.heads, steps=cfg.steps,
                         context=cfg.context, window=cfg.window, positions=cfg.positions,
                         omega_init=cfg.omega_init, gamma=cfg.gamma, learn_gamma=cfg.learn_gamma,
                         initial_state=cfg.initial_state, compile=cfg.compile)  # fmt: skip
    steps = cfg.steps if cfg.model == "itrsa" else 1
    return TextIterated(cfg.channels, cfg.heads, cfg.layers, steps, cfg.context, cfg.mlp_ratio, cfg.compile)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
