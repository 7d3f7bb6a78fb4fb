"""The Kuramoto layer: where the dynamics of AKOrN live.

For the oscillator ``x_i`` (a unit N-vector) at every unit ``i``::

    y   = J(x) + c                                  # coupling plus stimulus
    x  <- normalize_N( x + γ · (Ω x + Proj_x(y)) )  # one Kuramoto step, T times
    E(x) = - Σ_i <x_i, (J x)_i + c_i>               # energy of a state

``c`` is fixed during the T steps (optionally GroupNorm-ed once per layer with
one group per oscillator). Ω acts inside every oscillator as 2x2 rotation
generators on channel pairs.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from akorn.coupling import AttentionCoupling, ConvCoupling
from akorn.kuramoto_update import kuramoto_update
from akorn.oscillators import from_planar, normalize, rotation_coefficients, to_planar
from akorn.step_checkpoint import checkpointed_steps

OMEGA_KINDS = ("global", "per_pair", "none", "identity")
ENERGY_MODES = ("states", "reference")
STATE_LAYOUTS = ("auto", "interleaved", "planar")


class KuramotoResult(NamedTuple):
    """What :meth:`KuramotoLayer.forward` returns when a trajectory or energies are asked for.

    x: final state, in the input's layout. trajectory: ``(B, T+1, ...)`` states
    ``x_0 .. x_T`` or None. energy: ``(B, T+1)`` or None (see ``energy_mode``).
    """

    x: torch.Tensor
    trajectory: torch.Tensor | None
    energy: torch.Tensor | None


class KuramotoLayer(nn.Module):
    """A layer of artificial Kuramoto oscillatory neurons.

    Args:
        channels: C, the number of channels; ``C / n`` oscillators per unit.
        n: oscillator dimension N (every oscillator lives on S^(N-1)).
        coupling: ``"conv"``, ``"attn"`` or a module with a ``layout`` attribute
            (``"channels_first"`` or ``"tokens"``) mapping a state to ``J(x)``.
        kernel_size: conv coupling kernel (odd).
        spatial_dims: conv coupling over a 2-D grid (2) or a 1-D sequence (1).
        heads: attention heads.
        positions: attention positions: ``"gta"``, ``"rope"`` or ``"none"``.
        grid: ``(H, W)`` or ``(L,)`` of the units; needed for attention positions and
            to run a 2-D conv coupling on token input.
        omega: ``"global"`` (one ω = ‖p‖ of a 2-vector p), ``"per_pair"`` (one ω per channel
            pair), ``"none"`` (Ω = 0) or ``"identity"`` -- the reference code's behaviour
            when built without Ω: an identity in Ω's place, so the step is
            ``normalize(x + γ(x + Proj y)) = normalize(x + γ/(1+γ) Proj y)``.
        omega_init: initial ω. learn_omega: whether ω is trained.
        gamma: step size γ. learn_gamma: whether γ is trained.
        c_norm: ``"gn"`` (GroupNorm with one group per oscillator, applied once per layer) or ``None``.
        steps: T, Kuramoto steps per call (overridable per call).
        energy_mode: ``"states"``: E at every state ``x_0 .. x_T``; ``"reference"``: the
            reference code's bookkeeping, ``[0, E(x_0), .., E(x_{T-1})]`` (E recorded before
            each update, 0 for the initial state). Both have T+1 entries.
        state_layout: how the channels of the state are ordered in memory during the T steps,
            with identical results. ``"interleaved"``: as given, each oscillator's N channels
            together. ``"planar"``: component-major (:func:`akorn.oscillators.to_planar`), so the
            per-oscillator sums and swaps vectorise over runs of C/N channels; the state and
            stimulus are reordered once per call and the coupling's projections are permuted
            to match. Needs a tokens-layout coupling that supports it (the attention coupling).
            ``"auto"``: planar where supported.
        checkpoint: keep only the state entering each step (one buffer) and recompute the steps, one
            at a time, in the backward pass (:mod:`akorn.step_checkpoint`); one backward pass only.
        compile: ``torch.compile`` the step function (first call compiles).
        check_inputs: reject non-finite x or c at the call (one reduction per call).
    """

    def __init__(
        self,
        channels: int,
        n: int = 4,
        coupling: str | nn.Module = "conv",
        kernel_size: int = 3,
        spatial_dims: int = 2,
        heads: int = 8,
        positions: str = "gta",
        grid: tuple[int, ...] | None = None,
        omega: str = "global",
        omega_init: float = 0.1,
        learn_omega: bool = True,
        gamma: float = 1.0,
        learn_gamma: bool = False,
        c_norm: str | None = "gn",
        steps: int = 8,
        energy_mode: str = "states",
        state_layout: str = "auto",
        checkpoint: bool = False,
        compile: bool = False,
        check_inputs: bool = True,
    ):
        super().__init__()
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n (oscillator dimension) must be a positive integer, got {n!r}")
        if not isinstance(channels, int) or channels < 1 or channels % n:
            raise ValueError(f"channels must be a positive multiple of n={n}, got {channels!r}")
        if omega not in OMEGA_KINDS:
            raise ValueError(f"omega must be one of {OMEGA_KINDS}, got {omega!r}")
        if omega in ("global", "per_pair") and n % 2:
            raise ValueError(f"omega={omega!r} rotates channel pairs and needs an even n, got n={n}")
        if c_norm not in ("gn", None, "none"):
            raise ValueError(f"c_norm must be 'gn' or None, got {c_norm!r}")
        if energy_mode not in ENERGY_MODES:
            raise ValueError(f"energy_mode must be one of {ENERGY_MODES}, got {energy_mode!r}")
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        if state_layout not in STATE_LAYOUTS:
            raise ValueError(f"state_layout must be one of {STATE_LAYOUTS}, got {state_layout!r}")
        if grid is not None:
            grid = tuple(int(g) for g in grid)
            if len(grid) not in (1, 2) or min(grid) < 1:
                raise ValueError(f"grid must be (H, W) or (L,) of positive sizes, got {grid}")
        self.channels, self.n, self.grid, self.steps = channels, n, grid, steps
        self.omega_kind, self.energy_mode = omega, energy_mode
        self.use_checkpoint, self.check_inputs = checkpoint, check_inputs
        self.fused_update = True  # hand-derived backward in eager mode; False: plain autograd (same maths)

        if coupling == "conv":
            coupling = ConvCoupling(channels, kernel_size, spatial_dims)
        elif coupling == "attn":
            if positions != "none" and grid is None:
                raise ValueError("grid (H, W) or (L,) is required for attention with positions")
            coupling = AttentionCoupling(channels, heads, positions, grid)
        elif not isinstance(coupling, nn.Module):
            raise ValueError(f"coupling must be 'conv', 'attn' or an nn.Module, got {coupling!r}")
        if getattr(coupling, "layout", None) not in ("channels_first", "tokens"):
            raise ValueError("a custom coupling module needs layout = 'channels_first' or 'tokens'")
        self.coupling = coupling
        supports_planar = coupling.layout == "tokens" and getattr(coupling, "supports_planar", False)
        if state_layout == "planar" and not supports_planar:
            raise ValueError("state_layout='planar' needs a tokens-layout coupling with supports_planar "
                             f"(the attention coupling), got {type(coupling).__name__}")
        self.planar = supports_planar and state_layout != "interleaved"

        if omega == "global":
            self.omega_param = nn.Parameter(torch.full((2,), omega_init / math.sqrt(2)), requires_grad=learn_omega)
        elif omega == "per_pair":
            self.omega_param = nn.Parameter(
                torch.full((channels // 2, 2), omega_init / math.sqrt(2)), requires_grad=learn_omega
            )
        self.gamma = nn.Parameter(torch.tensor(float(gamma)), requires_grad=learn_gamma)
        self.c_norm = nn.GroupNorm(channels // n, channels) if c_norm == "gn" else None
        # The unbound method is compiled and called with ``self``, so a deep copy (the EMA's
        # AveragedModel) runs its own weights; a compiled bound method would keep the original's.
        self._compiled_step = torch.compile(KuramotoLayer.step) if compile else None

    # -- the maths -------------------------------------------------------------------------------
    def omega(self) -> torch.Tensor | None:
        """ω: a scalar (global) or ``C/2`` frequencies (per pair); None without rotation."""
        if self.omega_kind == "global":
            return self.omega_param.norm()
        if self.omega_kind == "per_pair":
            return self.omega_param.norm(dim=1)
        return None

    @property
    def channel_dim(self) -> int:
        return -1 if self.coupling.layout == "tokens" else 1

    def _pull(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        Jx = self.coupling(x, planar_n=self.n) if self.planar else self.coupling(x)
        return Jx.to(x.dtype) + c

    def step(self, x: torch.Tensor, c: torch.Tensor, omega: torch.Tensor | None, gamma: torch.Tensor):
        """One Kuramoto step on a state and a (normalised) stimulus in the state layout (see :meth:`to_state`).

        Returns the next state and the energy ``E(x) = -Σ <x, J x + c>`` of the *current* state, per sample.
        """
        y = self._pull(x, c)
        w = None if omega is None else rotation_coefficients(omega, x, self.channel_dim,
                                                             self.n if self.planar else None)
        return kuramoto_update(x, y, w, gamma, self.n, self.channel_dim, self.omega_kind == "identity",
                               fused=self.fused_update, planar=self.planar)

    def _step_fn(self, x: torch.Tensor, c: torch.Tensor, omega: torch.Tensor | None, gamma: torch.Tensor):
        """:meth:`step`, compiled when the layer was built with ``compile=True``."""
        if self._compiled_step is None:
            return self.step(x, c, omega, gamma)
        return self._compiled_step(self, x, c, omega, gamma)

    def energy(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``E(x) = -Σ <x, J x + c>`` per sample, for a state and a (normalised) stimulus in the state layout."""
        return -(self._pull(x, c) * x).flatten(1).sum(1)

    def to_state(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor in the coupling's native layout -> the layout :meth:`step` works in (``state_layout``)."""
        return to_planar(t, self.n, self.channel_dim) if self.planar else t

    def from_state(self, t: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_state`."""
        return from_planar(t, self.n, self.channel_dim) if self.planar else t

    # -- layout handling ---------------------------------------------------------------------------
    def _to_native(self, t: torch.Tensor, name: str):
        """Convert an input tensor to the coupling's layout; returns the tensor and how to undo it."""
        C = self.channels
        if t.ndim == 4:  # (B, C, H, W)
            B, Ct, H, W = t.shape
            if Ct != C:
                raise ValueError(f"{name} must have {C} channels in dim 1 of (B, C, H, W), got shape {tuple(t.shape)}")
            if self.coupling.layout == "channels_first":
                if getattr(self.coupling, "spatial_dims", 2) != 2:
                    raise ValueError(f"{name}: a 1-D conv coupling takes tokens (B, L, C), got an image {tuple(t.shape)}")
                return t, lambda u: u
            self._check_grid(name, (H, W))
            return t.flatten(2).transpose(1, 2), lambda u: u.transpose(1, 2).unflatten(2, (H, W))
        if t.ndim == 3:  # (B, L, C)
            B, L, Ct = t.shape
            if Ct != C:
                raise ValueError(f"{name} must have {C} channels in dim 2 of (B, L, C), got shape {tuple(t.shape)}")
            if self.coupling.layout == "tokens":
                self._check_grid(name, (L,))
                return t, lambda u: u
            if getattr(self.coupling, "spatial_dims", 2) == 1:
                return t.transpose(1, 2), lambda u: u.transpose(1, 2)
            if self.grid is None or len(self.grid) != 2 or math.prod(self.grid) != L:
                raise ValueError(
                    f"{name}: a 2-D conv coupling on tokens needs grid=(H, W) with H*W = L = {L}, got grid={self.grid}"
                )
            H, W = self.grid
            return t.transpose(1, 2).unflatten(2, (H, W)), lambda u: u.flatten(2).transpose(1, 2)
        raise ValueError(f"{name} must be an image (B, C, H, W) or tokens (B, L, C), got shape {tuple(t.shape)}")

    def _check_grid(self, name: str, got: tuple[int, ...]):
        units = getattr(self.coupling, "units", None)
        grid = getattr(self.coupling, "grid", None)
        if units is None:
            return
        if len(got) == 2 and len(grid) == 2 and tuple(got) != tuple(grid):
            raise ValueError(f"{name}: spatial size {tuple(got)} does not match the layer's grid {grid}")
        if math.prod(got) != units:
            raise ValueError(f"{name}: {math.prod(got)} units do not match the layer's grid {grid} ({units} units)")

    def normalize_stimulus(self, c: torch.Tensor) -> torch.Tensor:
        """Apply the optional per-oscillator GroupNorm to ``c`` (native layout)."""
        if self.c_norm is None:
            return c
        if self.coupling.layout == "tokens":
            return self.c_norm(c.transpose(1, 2)).transpose(1, 2)
        return self.c_norm(c)

    # -- the call --------------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None = None,
        steps: int | None = None,
        return_trajectory: bool = False,
        return_energy: bool = False,
    ):
        """Run T Kuramoto steps from ``x`` with stimulus ``c`` (same shape; zeros if None).

        Returns the final state, or a :class:`KuramotoResult` when a trajectory or energies are asked for.
        Without gradients and without a trajectory, memory does not grow with T.
        """
        T = self.steps if steps is None else steps
        if not isinstance(T, int) or T < 0:
            raise ValueError(f"steps must be a non-negative integer, got {T!r}")
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a tensor, got {type(x).__name__}")
        if c is None:
            c = torch.zeros_like(x)
        if c.shape != x.shape:
            raise ValueError(f"x and c must have the same shape, got x {tuple(x.shape)} and c {tuple(c.shape)}")
        if self.check_inputs:
            if not torch.isfinite(x).all():
                raise ValueError("x contains NaN or Inf")
            if not torch.isfinite(c).all():
                raise ValueError("c contains NaN or Inf")
        xn, back = self._to_native(x, "x")
        cn, _ = self._to_native(c, "c")
        cn = self.to_state(self.normalize_stimulus(cn))
        xn = self.to_state(normalize(xn, self.n, self.channel_dim))
        native_back = back
        back = lambda u: native_back(self.from_state(u))  # noqa: E731
        omega, gamma = self.omega(), self.gamma

        states = [xn] if return_trajectory else None
        energies = []
        if self.use_checkpoint and torch.is_grad_enabled():
            xn, stepped, saved = checkpointed_steps(self._step_fn, T, xn, cn, omega, gamma,
                                                    list(self.coupling.parameters()))
            energies = list(stepped.unbind(1))
            if return_trajectory:
                states = list(saved.unbind(0)) + [xn]
        else:
            for _ in range(T):
                xn, e = self._step_fn(xn, cn, omega, gamma)
                if return_energy:
                    energies.append(e)
                if return_trajectory:
                    states.append(xn)
        if not (return_trajectory or return_energy):
            return back(xn)
        energy = None
        if return_energy:
            if self.energy_mode == "states":
                energy = torch.stack(energies + [self.energy(xn, cn)], dim=1)
            else:
                zero = torch.zeros(x.shape[0], dtype=xn.dtype, device=xn.device)
                energy = torch.stack([zero] + energies, dim=1)
        trajectory = torch.stack([back(s) for s in states], dim=1) if return_trajectory else None
        return KuramotoResult(back(xn), trajectory, energy)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, n={self.n}, steps={self.steps}, omega={self.omega_kind}, "
            f"energy_mode={self.energy_mode}, state_layout={'planar' if self.planar else 'interleaved'}, "
            f"checkpoint={self.use_checkpoint}"
        )
