"""Travelling waves: one Kuramoto layer with a fixed conv coupling, driven by an image, no learning.

A phase lag in the coupling makes waves travel; masking the background confines them to the
object, and without the mask the whole image moves chaotically. :mod:`akorn.viz.dynamics` measures
it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from akorn.core.oscillators import normalize, order_parameter, project_tangent, rotate_pairs
from akorn.errors import UserError


def default_image(size: int = 64) -> np.ndarray:
    """A picture drawn in code (so it is always there offline): a disc, a square and a bar on a dark ground."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.full((size, size, 3), 0.06, np.float32)
    disc = (xx - 0.32) ** 2 + (yy - 0.38) ** 2 < 0.17**2
    square = (np.abs(xx - 0.7) < 0.14) & (np.abs(yy - 0.62) < 0.14)
    bar = (np.abs(yy - 0.85) < 0.05) & (xx > 0.15) & (xx < 0.55)
    img[disc] = (0.95, 0.55, 0.15)
    img[square] = (0.2, 0.6, 0.95)
    img[bar] = (0.4, 0.9, 0.4)
    return img


def image_to_rgb(im) -> np.ndarray:
    """A PIL image of any mode -> ``(H, W, 3)`` floats in [0, 1], keeping the full range of 16-bit
    and 32-bit greyscale (PIL's own RGB conversion clips those at 255)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
        a = np.clip(a / top, 0.0, 1.0) if im.mode != "F" else (a - a.min()) / max(float(np.ptp(a)), 1e-12)
        return np.repeat(a.astype(np.float32)[..., None], 3, -1)
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def load_image(path: str | Path, size: int) -> np.ndarray:
    """An image file as ``(H, W, 3)`` floats in [0, 1], resized to ``size`` x ``size`` unless ``size`` is 0."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgb = image_to_rgb(im)
    except FileNotFoundError:
        raise UserError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"image {path} is a folder, not a file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if size > 0:
        resized = Image.fromarray((rgb * 255).round().astype(np.uint8)).resize((size, size), Image.BILINEAR)
        rgb = np.asarray(resized, dtype=np.float32) / 255.0
    return rgb


def check_run_size(height: int, width: int, channels: int, steps: int, limit_bytes: int | None = None):
    """Refuse a run whose trajectories (``(T+1) x H x W x C`` float64 states of the masked and the
    unmasked run, kept for the measures and the video) would not fit: at most half the memory
    available now, or ``limit_bytes``."""
    need = (steps + 1) * height * width * channels * (8 * 2 + 4 * 3)  # two runs' states, colours, frames
    if limit_bytes is None:
        try:
            limit_bytes = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
        except (ValueError, OSError, AttributeError):
            limit_bytes = 4 << 30
    if need > limit_bytes:
        raise UserError(
            f"a {height}x{width} image over {steps} steps needs about {need / 2**30:.1f} GiB, more than "
            f"the {limit_bytes / 2**30:.1f} GiB at hand; resize it (--size 64) or run fewer --steps"
        )


def load_mask(path: str | Path, shape: tuple[int, int], original: tuple[int, int] | None = None) -> np.ndarray:
    """A mask image (non-zero = object) of the image's size (before or after resizing)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L")
            size = (im.height, im.width)
            if size != tuple(shape) and (original is None or size != tuple(original)):
                raise UserError(
                    f"mask {path} is {size[0]}x{size[1]}, the image is "
                    f"{(original or shape)[0]}x{(original or shape)[1]}"
                )
            if size != tuple(shape):
                im = im.resize((shape[1], shape[0]), Image.NEAREST)
            return np.asarray(im) > 0
    except FileNotFoundError:
        raise UserError(f"mask not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"mask {path} is a folder, not a file") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"cannot read mask {path}: {e}") from None


@dataclass(frozen=True)
class WaveSettings:
    """One Kuramoto layer on an image grid: ``x <- normalize(x + γ (Ω x + Proj_x(J x + c)))``.

    J is a conv coupling: a local Gaussian kernel of strength ``coupling`` whose 2x2 blocks rotate
    by the phase lag ``lag`` (radians; the Kuramoto--Sakaguchi lag, which makes J asymmetric),
    plus ``random_coupling`` times a random kernel. Ω rotates channel pairs at ``omega`` plus
    ``omega_spread`` times a random number per pixel. c is the image, projected to C channels by a
    fixed random matrix and scaled by ``stimulus_scale``. ``mask_mode``: ``"remove"`` takes the
    masked pixels out of the system (no stimulus, no coupling, states held); ``"stimulus"`` only sets
    c = 0 there and lets them move.
    """

    n: int = 2
    oscillators: int = 1
    kernel_size: int = 5
    coupling: float = 2.0
    lag: float = 1.2
    random_coupling: float = 0.0
    omega: float = 0.0
    omega_spread: float = 0.0
    gamma: float = 0.2
    stimulus_scale: float = 1.0
    mask_mode: str = "remove"
    steps: int = 256
    seed: int = 0

    def check(self):
        if self.n < 1 or self.oscillators < 1:
            raise ValueError(f"n and oscillators must be positive, got {self.n} and {self.oscillators}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"the kernel size must be a positive odd number, got {self.kernel_size}")
        if self.n % 2 and (self.lag or self.omega or self.omega_spread):
            raise ValueError(f"a phase lag and Ω rotate channel pairs and need an even N, got N={self.n}")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"mask mode must be one of {', '.join(MASK_MODES)}, got {self.mask_mode!r}")
        if self.steps < 2:
            raise ValueError(f"steps must be at least 2, got {self.steps}")


MASK_MODES = ("remove", "stimulus")


class WaveRun(NamedTuple):
    states: torch.Tensor  # (T+1, H*W, C)
    energy: torch.Tensor  # (T+1,): E = -Σ <x, J x + c> over the pixels in the system


def coupling_kernel(s: WaveSettings, generator: torch.Generator) -> torch.Tensor:
    """The conv weight ``(C, C, k, k)`` of J."""
    C, k = s.n * s.oscillators, s.kernel_size
    r = torch.arange(k, dtype=torch.float64) - k // 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * max(k / 4, 0.5) ** 2))
    g[k // 2, k // 2] = 0.0  # no self-coupling: Proj_x removes it anyway
    g = g / g.sum().clamp_min(1e-12) if k > 1 else g
    block = torch.eye(s.n, dtype=torch.float64)
    cos, sin = math.cos(s.lag), math.sin(s.lag)
    for p in range(0, s.n - 1, 2):
        block[p : p + 2, p : p + 2] = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64)
    mix = torch.block_diag(*[block] * s.oscillators)  # oscillator j couples to oscillator j
    weight = s.coupling * mix[:, :, None, None] * g
    if s.random_coupling:
        noise = torch.randn(C, C, k, k, generator=generator, dtype=torch.float64)
        weight = weight + noise * s.random_coupling / (k * C**0.5)
    return weight


def stimulus(image: np.ndarray, channels: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    """The image as c: ``(1, C, H, W)``, its centred colours through a fixed random projection."""
    img = torch.from_numpy(np.asarray(image, dtype=np.float64)).permute(2, 0, 1)[None]
    proj = torch.randn(channels, 3, generator=generator, dtype=torch.float64)
    return torch.einsum("oc,bchw->bohw", proj, img - 0.5) * scale


class WaveSystem:
    """The layer on one image and mask: its coupling, stimulus, Ω and the pixels in the system."""

    def __init__(self, image: np.ndarray, mask: np.ndarray | None, settings: WaveSettings):
        s = settings
        s.check()
        H, W, _ = image.shape
        self.settings, self.shape = s, (H, W)
        C = s.n * s.oscillators
        g = torch.Generator().manual_seed(s.seed)
        self.weight = coupling_kernel(s, g)
        self.c = stimulus(image, C, s.stimulus_scale, g)
        self.omega = s.omega + s.omega_spread * torch.randn(1, 1, H, W, generator=g, dtype=torch.float64)
        self.x0 = normalize(torch.randn(1, C, H, W, generator=g, dtype=torch.float64), s.n)
        self.inside = torch.ones(1, 1, H, W, dtype=torch.float64)
        if mask is not None:
            self.inside = torch.from_numpy(np.asarray(mask, dtype=np.float64)).reshape(1, 1, H, W)
            self.c = self.c * self.inside
        self.removed = mask is not None and s.mask_mode == "remove"
        self.rotate = bool(s.omega or s.omega_spread) and s.n % 2 == 0

    def pull(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y = J x + c`` and the energy ``-Σ <x, y>`` over the pixels in the system."""
        seen = x * self.inside if self.removed else x
        y = F.conv2d(seen, self.weight, padding=self.settings.kernel_size // 2) + self.c
        return y, -(seen * y).sum()

    def step(self, x: torch.Tensor) -> torch.Tensor:
        s = self.settings
        y, _ = self.pull(x)
        drift = project_tangent(y, x, s.n)
        if self.rotate:
            drift = drift + self.omega * rotate_pairs(x, torch.tensor(1.0, dtype=x.dtype))
        nxt = normalize(x + s.gamma * drift, s.n)
        return torch.where(self.inside > 0, nxt, x) if self.removed else nxt


@torch.no_grad()
def run_waves(image: np.ndarray, mask: np.ndarray | None, settings: WaveSettings) -> WaveRun:
    """Run the layer from a random state (the same for every mask)."""
    system = WaveSystem(image, mask, settings)
    x, states, energies = system.x0, [system.x0], []
    for _ in range(settings.steps):
        energies.append(system.pull(x)[1])
        x = system.step(x)
        states.append(x)
    energies.append(system.pull(x)[1])
    traj = torch.cat(states).flatten(2).transpose(1, 2)
    return WaveRun(traj, torch.stack(energies))


@torch.no_grad()
def divergence_rates(
    image: np.ndarray, mask: np.ndarray | None, settings: WaveSettings, run: WaveRun, start: int, eps: float = 1e-6
) -> np.ndarray:
    """The largest Lyapunov exponent of the motion from step ``start`` on, by renormalised twins
    (Benettin et al. 1980): a twin ``eps`` away from the run takes each step beside it, the log of
    how much their distance grew is recorded, and the twin is put back ``eps`` away along the
    same direction. Returns the running mean of that log growth per step (its last value is the
    estimate); the twin moves only the pixels in the system."""
    system = WaveSystem(image, mask, settings)
    H, W = system.shape
    states = run.states.transpose(1, 2).reshape(-1, 1, run.states.shape[-1], H, W).double()
    g = torch.Generator().manual_seed(settings.seed + 1)
    d = torch.randn(states[start].shape, generator=g, dtype=torch.float64) * system.inside
    twin = normalize(states[start] + eps * d / d.norm(), settings.n)
    logs = []
    for t in range(start, len(states) - 1):
        nxt, moved = states[t + 1], system.step(twin)
        gap = (moved - nxt).norm().clamp_min(1e-300)
        logs.append(float(torch.log(gap / (twin - states[t]).norm().clamp_min(1e-300))))
        twin = normalize(nxt + eps * (moved - nxt) / gap, settings.n)
    return np.cumsum(logs) / np.arange(1, len(logs) + 1)


def order_curves(states: torch.Tensor, n: int, region: np.ndarray | None) -> dict[str, np.ndarray]:
    """Order parameter per step over the whole image and, if given, inside the region."""
    out = {"whole image": order_parameter(states, n, channel_dim=-1, dims=(1,)).numpy()}
    if region is not None and region.any():
        sel = torch.from_numpy(region.reshape(-1))
        out["object (mask)"] = order_parameter(states[:, sel], n, channel_dim=-1, dims=(1,)).numpy()
    return out


def wave_measures(
    runs: dict[str, WaveRun], rates: dict[str, np.ndarray], shape: tuple[int, int], mask: np.ndarray | None, n: int
) -> tuple[dict, dict]:
    """What each run does over its second half (after the start-up transient), and curves over steps.

    The object is the mask (the whole image without one); the background is the rest. ``rates``
    are the runs' :func:`divergence_rates` from the start of the second half.
    """
    from akorn.viz import dynamics

    H, W = shape
    obj = np.ones((H, W), bool) if mask is None else np.asarray(mask, bool)
    report, curves = {}, {"speed": {}, "divergence rate": {}, "autocorrelation": {}}
    for name, run in runs.items():
        T = run.states.shape[0] - 1
        late = slice(T // 2, None)
        m = {}
        speed = dynamics.speed_curve(run.states, n, obj)
        m["object_speed_deg_per_step"] = float(speed[late].mean())
        curves["speed"][f"{name}: object"] = speed
        if mask is not None and (~obj).any():
            bg = dynamics.speed_curve(run.states, n, ~obj)
            m["background_speed_deg_per_step"] = float(bg[late].mean())
            curves["speed"][f"{name}: background"] = bg
        if n == 2:
            m.update(dynamics.wavefront_speed(run.states[late], (H, W), obj))
        inside = run.states[late][:, torch.from_numpy(obj.reshape(-1))]
        m["period_steps"] = dynamics.period(inside)
        curves["autocorrelation"][name] = dynamics.autocorrelation(inside)
        m["divergence_rate_per_step"] = float(rates[name][-1])
        curves["divergence rate"][name] = rates[name]
        r = order_parameter(inside, n, channel_dim=-1, dims=(1,))
        m["order_parameter_object"] = float(r.mean())
        report[name] = m
    return report, curves
