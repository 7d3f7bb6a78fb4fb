"""Adversarial attacks at L-inf radius eps: PGD with Expectation over Transformation (EoT), and
AutoAttack through ``pyautoattack`` (the reference attacks in pure torch).

A model's forward pass may be random (AKOrN draws its initial oscillator states): ``predict`` is a
callable ``images -> logits`` that draws fresh randomness on every call, and EoT averages the input
gradient over ``eot`` calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from fractions import Fraction

import torch
import torch.nn.functional as F

from akorn.errors import UserError

ATTACKS = ("pgd", "autoattack", "autoattack-rand")


def parse_eps(text: str | float) -> float:
    """``"8/255"`` or ``0.0314`` -> a float in [0, 1]."""
    try:
        eps = float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise UserError(f"eps must be a number or a fraction such as 8/255, got {text!r}") from None
    if not 0 <= eps <= 1:
        raise UserError(f"eps must be in [0, 1] (images are in [0, 1]), got {text}")
    return eps


def parse_attacks(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip() and s.strip() != "none")
    bad = [s for s in names if s not in ATTACKS]
    if bad:
        raise UserError(f"unknown attack {bad[0]!r}; choose from {', '.join(ATTACKS)} (or none)")
    return names


def input_gradient(predict: Callable, x: torch.Tensor, y: torch.Tensor, eot: int = 1) -> torch.Tensor:
    """Mean over ``eot`` forward passes of the gradient of the cross-entropy with respect to ``x``."""
    grad = torch.zeros_like(x)
    for _ in range(eot):
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(predict(xr), y, reduction="sum")
            (g,) = torch.autograd.grad(loss, xr)
        grad += g / eot
    return grad


def pgd_linf(
    predict: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 20,
    step_size: float | None = None,
    eot: int = 1,
    random_start: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient ascent on the cross-entropy in the L-inf ball of radius ``eps`` around ``x``.

    Defaults follow the authors' evaluation: step ``eps / 3``, 20 steps, no random start."""
    step_size = eps / 3 if step_size is None else step_size
    adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        adv = (x + eps * (2 * noise - 1)).clamp(0, 1)
    for _ in range(steps):
        g = input_gradient(predict, adv, y, eot)
        adv = torch.min(torch.max(adv + step_size * g.sign(), x - eps), x + eps).clamp(0, 1).detach()
    return adv


class _AsModule(torch.nn.Module):
    """A ``predict`` callable as the ``nn.Module`` that pyautoattack expects."""

    def __init__(self, predict: Callable):
        super().__init__()
        self.predict = predict

    def forward(self, x):
        return self.predict(x)


@contextlib.contextmanager
def keep_global_rng():
    """pyautoattack seeds torch's global generator on every run; restore it afterwards."""
    state = torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        torch.random.set_rng_state(state)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def autoattack(
    predict: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    version: str = "standard",
    seed: int = 0,
    batch_size: int = 250,
) -> torch.Tensor:
    """AutoAttack (``standard``: APGD-CE, APGD-T, FAB-T, Square; ``rand``: APGD-CE and APGD-DLR with
    EoT over 20 draws, for random forward passes) at L-inf ``eps``; the adversarial images."""
    import logging

    from pyautoattack import AutoAttack

    if version not in ("standard", "rand"):
        raise UserError(f"AutoAttack version must be standard or rand, got {version!r}")
    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    adversary = AutoAttack(_AsModule(predict), norm="Linf", eps=eps, version=version, seed=seed, device=x.device)
    with torch.no_grad():
        classes = predict(x[:1]).shape[1]
    # the standard version targets the 9 runner-up classes: all there are when there are fewer than 10
    adversary.apgd_targeted.n_target_classes = min(adversary.apgd_targeted.n_target_classes, classes - 1)
    adversary.fab.n_target_classes = min(adversary.fab.n_target_classes, classes - 1)
    with keep_global_rng():
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
    return x_adv.detach()
