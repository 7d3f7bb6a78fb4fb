"""Measures of oscillator dynamics over steps: how fast states turn, how fast wavefronts travel,
whether the motion repeats (period) and when a layer settles. How quickly nearby runs part
(the divergence rate) needs the dynamics themselves: :func:`akorn.viz.waves.divergence_rates`.

Every function takes trajectories ``(T+1, U, C)`` -- T steps of U units with C = N x oscillators
channels -- and returns plain floats or NumPy arrays, ready for a JSON report.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from akorn.core.oscillators import split_oscillators


def _unit_oscillators(traj: torch.Tensor, n: int) -> torch.Tensor:
    """``(T+1, U, C)`` -> ``(T+1, U, C/N, N)``, every N-vector of unit length."""
    xs, _ = split_oscillators(traj.double(), n, -1)
    return xs / xs.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def angular_speed(traj: torch.Tensor, n: int) -> torch.Tensor:
    """Degrees each oscillator turns from one step to the next: ``(T, U)``, the mean over a unit's oscillators."""
    xs = _unit_oscillators(traj, n)
    a, b = xs[1:], xs[:-1]
    # 2 atan2(|a - b|, |a + b|): exact at 0 (a held state reads 0), where arccos of a dot product is not
    angle = 2 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))
    return torch.rad2deg(angle).mean(-1)


def speed_curve(traj: torch.Tensor, n: int, region: np.ndarray | None = None) -> np.ndarray:
    """Mean angular speed (degrees per step) over the units of ``region`` (all if None), step by step."""
    s = angular_speed(traj, n)
    if region is not None:
        s = s[:, torch.from_numpy(np.asarray(region).reshape(-1))]
    return s.mean(1).numpy()


def phase(traj: torch.Tensor, oscillator: int = 0) -> torch.Tensor:
    """The angle of one 2-D oscillator (channels ``2k, 2k+1``) of every unit: ``(T+1, U)`` radians."""
    return torch.atan2(traj[..., 2 * oscillator + 1].double(), traj[..., 2 * oscillator].double())


def _wrap(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def wavefront_speed(
    traj: torch.Tensor, shape: tuple[int, int], region: np.ndarray, min_gradient: float = 0.05
) -> dict[str, float]:
    """Phase velocity and wavefront speed of the first 2-D oscillator of an ``(H, W)`` grid.

    The phase velocity is ``|dθ/dt|`` in degrees per step. A wavefront of constant phase moves at
    ``|dθ/dt| / |∇θ|`` pixels per step; it is taken where the phase gradient exceeds
    ``min_gradient`` radians per pixel (elsewhere no front is defined). Both are medians over the
    region's pixels and the steps given.
    """
    H, W = shape
    th = phase(traj).reshape(-1, H, W)
    dt = _wrap(th[1:] - th[:-1])  # (T, H, W)
    gy = _wrap(th[:, 1:, :] - th[:, :-1, :])[:, :, :-1]
    gx = _wrap(th[:, :, 1:] - th[:, :, :-1])[:, :-1, :]
    grad = torch.sqrt(gx**2 + gy**2)[1:]  # (T, H-1, W-1), at the later state
    sel = torch.from_numpy(np.asarray(region)[: H - 1, : W - 1])
    rate = dt[:, : H - 1, : W - 1][:, sel].abs()
    g = grad[:, sel]
    fronts = g > min_gradient
    front = (rate[fronts] / g[fronts]) if fronts.any() else torch.zeros(0, dtype=torch.float64)
    return {
        "phase_velocity_deg_per_step": float(torch.rad2deg(rate).median()) if rate.numel() else 0.0,
        "wavefront_speed_px_per_step": float(front.median()) if front.numel() else 0.0,
        "front_fraction": float(fronts.double().mean()) if fronts.numel() else 0.0,
    }


def autocorrelation(signal: torch.Tensor, max_lag: int | None = None) -> np.ndarray:
    """``A(τ)``: the mean cosine between the state at step t and at t + τ, over t, for τ = 0..max_lag.

    ``signal`` is ``(T, D)``: one flattened state per step. A(0) = 1; a motion that repeats
    after P steps has A(P) = 1.
    """
    x = signal.double().flatten(1)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    T = x.shape[0]
    max_lag = T // 2 if max_lag is None else min(max_lag, T - 1)
    return np.array([float((x[: T - lag] * x[lag:]).sum(1).mean()) for lag in range(max_lag + 1)])


def period(signal: torch.Tensor, tolerance: float = 1e-3, min_peak: float = 0.9) -> int | None:
    """The steps after which the motion repeats, from :func:`autocorrelation`.

    Past the autocorrelation's first dip, the highest peak is found; the period is the first lag
    that comes within ``tolerance`` of it. None when that peak stays below ``min_peak`` (nothing
    repeats) or when nothing moves (a still state has no period).
    """
    x = signal.double().flatten(1)
    if len(x) < 3 or (x[1:] - x[:-1]).abs().max() < 1e-9:
        return None
    a = autocorrelation(x)
    rises = np.flatnonzero(np.diff(a) > 0)
    if not len(rises):
        return None
    start = int(rises[0])  # the first dip: before it, A(τ) is high only because steps are small
    best = a[start:].max()
    if best < min_peak:
        return None
    return int(start + np.flatnonzero(a[start:] >= best - tolerance)[0])


def settling_step(speed: np.ndarray, fraction: float = 0.1) -> int | None:
    """The first step from which the angular speed stays below ``fraction`` of its largest value;
    None when it never does."""
    speed = np.asarray(speed, dtype=np.float64)
    if len(speed) == 0 or speed.max() <= 0:
        return 0 if len(speed) else None
    above = np.flatnonzero(speed >= fraction * speed.max())
    last = int(above[-1]) + 1
    return last if last < len(speed) else None
