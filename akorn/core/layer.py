"""The Kuramoto layer: where the dynamics of AKOrN live.

For the oscillator ``x_i`` (a unit N-vector) at every unit ``i``::

    y   = J(x) + c                                  # coupling plus stimulus
    x  <- normalize_N( x + γ · (Ω x + Proj_x(y)) )  # one Kuramoto step, T times
    E(x) = - Σ_i <x_i, (J x)_i + c_i>               # voting energy of a state

``c`` is fixed during the T steps (optionally GroupNorm-ed once per layer with
one group per oscillator). Ω acts inside every oscillator as 2x2 rotation
generators on channel pairs.

The one loop over the steps is :meth:`KuramotoLayer.run` (and :meth:`KuramotoLayer.iterate`
for callers that drive the steps themselves); :mod:`akorn.core.maths` has the same equations
written plainly, and :mod:`akorn.core.fast` the faster implementations the layer runs.

Shape letters: B batch, C channels, N oscillator dimension, O = C/N oscillators, H, W image grid, L tokens, T steps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from akorn.core import fast
from akorn.core.coupling import COUPLINGS
from akorn.core.fast.layout import from_planar, to_planar
from akorn.core.fast.step_checkpoint import checkpointed_steps
from akorn.core.oscillators import normalize, rotation_coefficients

OMEGA_KINDS = ("global", "per_pair", "none", "identity")
ENERGY_MODES = ("states", "reference")
STATE_LAYOUTS = ("auto", "interleaved", "planar")


@dataclass(frozen=True)
class Speed:
    """How a :class:`KuramotoLayer` runs its steps; none of these changes what it computes.

    Args:
        state_layout: how the channels of the state are ordered in memory during the T steps.
            ``"interleaved"``: as given, each oscillator's N channels together. ``"planar"``:
            component-major (:func:`akorn.core.fast.layout.to_planar`), so the per-oscillator sums
            and swaps vectorise over runs of C/N channels; the state and stimulus are reordered
            once per call and the coupling's projections are permuted to match. Needs a
            tokens-layout coupling that supports it (the attention coupling). ``"auto"``: planar
            where supported.
        checkpoint: keep only the state entering each step (one buffer) and recompute the steps,
            one at a time, in the backward pass (:mod:`akorn.core.fast.step_checkpoint`); one
            backward pass only.
        compile: ``torch.compile`` the step function (first call compiles).
        fused_update: the hand-derived backward of the update in eager mode; False: plain autograd.
        check_inputs: reject non-finite x or c at the call (one reduction per call).
    """

    state_layout: str = "auto"
    checkpoint: bool = False
    compile: bool = False
    fused_update: bool = True
    check_inputs: bool = True

    def __post_init__(self):
        if self.state_layout not in STATE_LAYOUTS:
            raise ValueError(f"state_layout must be one of {STATE_LAYOUTS}, got {self.state_layout!r}")


class KuramotoResult(NamedTuple):
    """What :meth:`KuramotoLayer.forward` returns when a trajectory or energies are asked for.

    x: final state, in the input's layout. trajectory: ``(B, T+1, ...)`` states
    ``x_0 .. x_T`` or None. energy: ``(B, T+1)`` or None (see ``energy_mode``).
    """

    x: torch.Tensor
    trajectory: torch.Tensor | None
    energy: torch.Tensor | None


class OscillatorState:
    """Oscillators in the middle of a run: the state, the stimulus that drives it, and the layer's ω and
    γ for this run, in the layout the steps run in. Made by :meth:`KuramotoLayer.start`, stepped by
    :meth:`KuramotoLayer.advance`.

    ``x``: the state in the layout the layer was given. ``data`` and ``stimulus``: the tensors the
    steps work on (their channel order is the layer's business). Rows can be taken (``state[rows]``)
    and written (``state.put(rows, other)``), so a pool of trajectories can change while it runs.
    """

    __slots__ = ("layer", "data", "stimulus", "omega", "gamma", "_back")

    def __init__(self, layer, data, stimulus, omega, gamma, back):
        self.layer, self.data, self.stimulus, self.omega, self.gamma = layer, data, stimulus, omega, gamma
        self._back = back

    def replace(self, data: torch.Tensor) -> OscillatorState:
        """The same run with another state."""
        return OscillatorState(self.layer, data, self.stimulus, self.omega, self.gamma, self._back)

    def to_input_layout(self, data: torch.Tensor) -> torch.Tensor:
        """A tensor in the step layout (``data``-like) in the layout the layer was given."""
        return self._back(self.layer.from_step_layout(data))

    @property
    def x(self) -> torch.Tensor:
        """The state in the layout the layer was given: ``(B, C, H, W)`` or ``(B, L, C)``."""
        return self.to_input_layout(self.data)

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, rows) -> OscillatorState:
        return OscillatorState(self.layer, self.data[rows], self.stimulus[rows], self.omega, self.gamma, self._back)

    def put(self, rows, other: OscillatorState):
        """Write ``other``'s rows into ``rows`` of this state (in place)."""
        self.data[rows] = other.data
        self.stimulus[rows] = other.stimulus


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
        speed: a :class:`Speed`: the state layout, activation checkpointing, ``torch.compile``, the
            fused update and the input check (how the steps run, never what they compute).
    """

    def __init__(
        self,
        channels: int,
        n: int = 4,
        *,
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
        speed: Speed = Speed(),
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
        if not isinstance(speed, Speed):
            raise ValueError(f"speed must be an akorn.Speed, got {type(speed).__name__}")
        if grid is not None:
            grid = tuple(int(g) for g in grid)
            if len(grid) not in (1, 2) or min(grid) < 1:
                raise ValueError(f"grid must be (H, W) or (L,) of positive sizes, got {grid}")
        self.channels, self.n, self.grid, self.steps = channels, n, grid, steps
        self.omega_kind, self.energy_mode = omega, energy_mode
        self.speed = speed

        if isinstance(coupling, str) and coupling in COUPLINGS:
            coupling = COUPLINGS[coupling](
                channels,
                kernel_size=kernel_size,
                spatial_dims=spatial_dims,
                heads=heads,
                positions=positions,
                grid=grid,
            )
        elif not isinstance(coupling, nn.Module):
            raise ValueError(f"coupling must be one of {tuple(COUPLINGS)} or an nn.Module, got {coupling!r}")
        if getattr(coupling, "layout", None) not in ("channels_first", "tokens"):
            raise ValueError("a custom coupling module needs layout = 'channels_first' or 'tokens'")
        if getattr(coupling, "causal", False) and c_norm == "gn":
            raise ValueError(
                "c_norm='gn' pools its statistics over all tokens, so later tokens would reach earlier "
                "ones; give c_norm=None with a causal coupling"
            )
        self.coupling = coupling
        self.planar = fast.planar_state(coupling, speed.state_layout)

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
        self._compiled_step = torch.compile(KuramotoLayer._step) if speed.compile else None

    # -- the dynamics ------------------------------------------------------------------------------
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

    def _pull(self, x: torch.Tensor, c: torch.Tensor, cache=None) -> torch.Tensor:
        """``y = J(x) + c`` in the step layout."""
        options = {} if cache is None else {"cache": cache}
        Jx = self.coupling(x, planar_n=self.n, **options) if self.planar else self.coupling(x, **options)
        return Jx.to(x.dtype) + c

    def _step(self, x: torch.Tensor, c: torch.Tensor, omega: torch.Tensor | None, gamma: torch.Tensor, cache=None):
        """One step in the step layout: the next state and the voting energy of the current one."""
        y = self._pull(x, c, cache)
        w = None
        if omega is not None:
            w = rotation_coefficients(omega, x, self.channel_dim)
            w = to_planar(w, self.n, self.channel_dim) if self.planar else w
        return fast.kuramoto_update(
            x,
            y,
            w,
            gamma,
            self.n,
            self.channel_dim,
            self.omega_kind == "identity",
            fused=self.speed.fused_update,
            planar=self.planar,
        )

    def _step_fn(self, x, c, omega, gamma):
        """:meth:`_step`, compiled when the layer was built with ``compile=True``."""
        if self._compiled_step is None:
            return self._step(x, c, omega, gamma)
        return self._compiled_step(self, x, c, omega, gamma)

    def start(self, x: torch.Tensor, c: torch.Tensor | None = None) -> OscillatorState:
        """Oscillators ready to step: ``x`` normalised onto the spheres and the stimulus ``c`` (zeros if
        None) normalised once (``c_norm``), both moved into the layout the steps run in.

        ``x`` and ``c``: images ``(B, C, H, W)`` or tokens ``(B, L, C)`` of the same shape.
        """
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a tensor, got {type(x).__name__}")
        if c is None:
            c = torch.zeros_like(x)
        if c.shape != x.shape:
            raise ValueError(f"x and c must have the same shape, got x {tuple(x.shape)} and c {tuple(c.shape)}")
        if self.speed.check_inputs:
            if not torch.isfinite(x).all():
                raise ValueError("x contains NaN or Inf")
            if not torch.isfinite(c).all():
                raise ValueError("c contains NaN or Inf")
        xn, back = self._to_native(x, "x")
        cn, _ = self._to_native(c, "c")
        cn = self.to_step_layout(self.normalize_stimulus(cn))
        xn = self.to_step_layout(normalize(xn, self.n, self.channel_dim))
        return OscillatorState(self, xn, cn, self.omega(), self.gamma, back)

    def advance(self, state: OscillatorState) -> tuple[OscillatorState, torch.Tensor]:
        """One Kuramoto step: the next state and the voting energy ``-Σ <x, J x + c>`` of ``state``, per sample."""
        x, e = self._step_fn(state.data, state.stimulus, state.omega, state.gamma)
        return state.replace(x), e

    def extend(self, x: torch.Tensor, c: torch.Tensor, caches: list) -> torch.Tensor:
        """Run T steps for tokens ``x`` ``(B, l, C)`` (stimulus ``c``) that follow the tokens the caches
        have seen, and return their final states; ``caches``: one
        :class:`~akorn.core.coupling.CouplingCache` per step (T = their number), filled as they go.

        With a causal coupling the states of earlier tokens never depend on later ones, so a
        sequence run in pieces gives the states of one run over the whole sequence (what
        generation token by token relies on). Not compiled, not checkpointed."""
        if not getattr(self.coupling, "causal", False):
            raise ValueError("extend needs a causal coupling: earlier tokens would see later ones")
        if not caches:
            raise ValueError("need one cache per Kuramoto step, got none")
        if x.ndim != 3 or c.shape != x.shape or x.shape[-1] != self.channels:
            raise ValueError(
                f"x and c must be tokens (B, l, {self.channels}), got {tuple(x.shape)} and {tuple(c.shape)}"
            )
        xn = self.to_step_layout(normalize(x, self.n, -1))
        cn = self.to_step_layout(self.normalize_stimulus(c))
        omega = self.omega()
        for cache in caches:
            xn, _ = self._step(xn, cn, omega, self.gamma, cache)
        return self.from_step_layout(xn)

    def iterate(self, state: OscillatorState, steps: int | None = None):
        """Yield ``(x_t, E(x_{t-1}))`` for ``t = 1 .. T``: each new state and the voting energy of the
        state the step started from. Stop early by leaving the loop."""
        for _ in range(self._steps(steps)):
            state, e = self.advance(state)
            yield state, e

    def voting_energy(self, state: OscillatorState) -> torch.Tensor:
        """``E(x) = -Σ <x, J x + c>`` per sample: the energy the paper's voting ranks trajectories by
        (:func:`akorn.core.maths.voting_energy`)."""
        return -(self._pull(state.data, state.stimulus) * state.data).flatten(1).sum(1)

    def lyapunov_energy(self, state: OscillatorState) -> torch.Tensor:
        """``-½ Σ <x, W x> - Σ <x, b + c>`` per sample, where ``J x = W x + b`` splits the coupling into its
        linear part and its constant ``b = J(0)`` (:func:`akorn.core.maths.lyapunov_energy`). For a
        linear, symmetric coupling and Ω = 0 it does not rise along the continuous dynamics; for the
        attention coupling (not linear in x) it is the same formula, without that guarantee."""
        x, c = state.data, state.stimulus
        b = self._pull(torch.zeros_like(x), torch.zeros_like(c))
        Wx = self._pull(x, torch.zeros_like(c)) - b
        return -(0.5 * (Wx * x) + (b + c) * x).flatten(1).sum(1)

    def energy(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Deprecated: :meth:`voting_energy` of ``layer.start(x, c)``."""
        warnings.warn(
            "KuramotoLayer.energy is deprecated; use voting_energy(layer.start(x, c))", DeprecationWarning, stacklevel=2
        )
        return self.voting_energy(self.start(x, c))

    def to_step_layout(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor in the coupling's native layout -> the layout the steps run in (``state_layout``)."""
        return to_planar(t, self.n, self.channel_dim) if self.planar else t

    def from_step_layout(self, t: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_step_layout`."""
        return from_planar(t, self.n, self.channel_dim) if self.planar else t

    def _steps(self, steps: int | None) -> int:
        T = self.steps if steps is None else steps
        if not isinstance(T, int) or isinstance(T, bool) or T < 0:
            raise ValueError(f"steps must be a non-negative integer, got {T!r}")
        return T

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
                    raise ValueError(
                        f"{name}: a 1-D conv coupling takes tokens (B, L, C), got an image {tuple(t.shape)}"
                    )
                return t, lambda u: u
            self._check_grid(name, (H, W))
            # (B, C, H, W) -> (B, HW, C), and back
            return t.flatten(2).transpose(1, 2), lambda u: u.transpose(1, 2).unflatten(2, (H, W))
        if t.ndim == 3:  # (B, L, C)
            B, L, Ct = t.shape
            if Ct != C:
                raise ValueError(f"{name} must have {C} channels in dim 2 of (B, L, C), got shape {tuple(t.shape)}")
            if self.coupling.layout == "tokens":
                self._check_grid(name, (L,))
                return t, lambda u: u
            if getattr(self.coupling, "spatial_dims", 2) == 1:
                return t.transpose(1, 2), lambda u: u.transpose(1, 2)  # (B, L, C) <-> (B, C, L)
            if self.grid is None or len(self.grid) != 2 or math.prod(self.grid) != L:
                raise ValueError(
                    f"{name}: a 2-D conv coupling on tokens needs grid=(H, W) with H*W = L = {L}, got grid={self.grid}"
                )
            H, W = self.grid
            # (B, L, C) -> (B, C, H, W), and back
            return t.transpose(1, 2).unflatten(2, (H, W)), lambda u: u.flatten(2).transpose(1, 2)
        raise ValueError(f"{name} must be an image (B, C, H, W) or tokens (B, L, C), got shape {tuple(t.shape)}")

    def _check_grid(self, name: str, got: tuple[int, ...]):
        units = getattr(self.coupling, "units", None)
        grid = getattr(self.coupling, "grid", None)
        if units is None:
            return
        if len(got) == 2 and len(grid) == 2 and tuple(got) != tuple(grid):
            raise ValueError(f"{name}: spatial size {tuple(got)} does not match the layer's grid {grid}")
        if len(got) == 1 and getattr(self.coupling, "causal", False) and got[0] <= units:
            return  # a causal coupling takes a prefix of its sequence
        if math.prod(got) != units:
            raise ValueError(f"{name}: {math.prod(got)} units do not match the layer's grid {grid} ({units} units)")

    def normalize_stimulus(self, c: torch.Tensor) -> torch.Tensor:
        """Apply the optional per-oscillator GroupNorm to ``c`` (native layout)."""
        if self.c_norm is None:
            return c
        if self.coupling.layout == "tokens":
            return self.c_norm(c.transpose(1, 2)).transpose(1, 2)  # GroupNorm wants (B, C, L)
        return self.c_norm(c)

    # -- the call --------------------------------------------------------------------------------
    def run(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None = None,
        steps: int | None = None,
        *,
        return_trajectory: bool = False,
        return_energy: bool = False,
        on_step=None,
        stop=None,
    ) -> KuramotoResult:
        """Run up to T Kuramoto steps from ``x`` with stimulus ``c``; the one loop of the library.

        ``on_step(t, state, energy)`` is called after every step ``t = 1 .. T`` with the new
        :class:`OscillatorState` and the voting energy of the state before it; ``stop(t, state,
        energy)`` returning True ends the run after that step (events in the spirit of torchdiffeq).
        Without gradients, a trajectory or energies, memory does not grow with T.
        """
        T = self._steps(steps)
        state = self.start(x, c)
        watched = on_step is not None or stop is not None
        states = [state.data] if return_trajectory else None
        energies = []
        if self.speed.checkpoint and torch.is_grad_enabled() and not watched:
            xn, stepped, saved = checkpointed_steps(
                self._step_fn, T, state.data, state.stimulus, state.omega, state.gamma, list(self.coupling.parameters())
            )
            state = state.replace(xn)
            energies = list(stepped.unbind(1))
            if return_trajectory:
                states = list(saved.unbind(0)) + [xn]
        else:
            trajectory_steps = self.iterate(state, T)
            for t, (state, e) in enumerate(trajectory_steps, 1):
                if return_energy:
                    energies.append(e)
                if return_trajectory:
                    states.append(state.data)
                if on_step is not None:
                    on_step(t, state, e)
                if stop is not None and stop(t, state, e):
                    break
        energy = None
        if return_energy:
            if self.energy_mode == "states":
                energy = torch.stack(energies + [self.voting_energy(state)], dim=1)
            else:
                zero = torch.zeros(x.shape[0], dtype=state.data.dtype, device=state.data.device)
                energy = torch.stack([zero] + energies, dim=1)
        trajectory = torch.stack([state.to_input_layout(s) for s in states], dim=1) if return_trajectory else None
        return KuramotoResult(state.x, trajectory, energy)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None = None,
        steps: int | None = None,
        return_trajectory: bool = False,
        return_energy: bool = False,
    ):
        """Run T Kuramoto steps from ``x`` with stimulus ``c`` (same shape; zeros if None); see :meth:`run`.

        Returns the final state, or a :class:`KuramotoResult` when a trajectory or energies are asked for.
        """
        result = self.run(x, c, steps, return_trajectory=return_trajectory, return_energy=return_energy)
        return result if (return_trajectory or return_energy) else result.x

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, n={self.n}, steps={self.steps}, omega={self.omega_kind}, "
            f"energy_mode={self.energy_mode}, state_layout={'planar' if self.planar else 'interleaved'}, "
            f"checkpoint={self.speed.checkpoint}"
        )
