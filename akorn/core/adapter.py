"""Kuramoto adapters on a frozen backbone.

An adapter sits at a named submodule of any ``nn.Module`` (a forward hook reaches its output). The
output is the stimulus of a Kuramoto layer (after a 1x1 projection to the adapter's width); the
layer runs T steps from a random state, and a readout maps the final state back to the backbone's
width. ``placement="between"`` adds that readout to the backbone's output there (the readout's last
projection starts at zero, so an untrained adapter leaves the backbone's computation as it was);
``placement="top"`` leaves the backbone alone and keeps the readout as the adapter's features.

Feature maps ``(B, C, H, W)`` and tokens ``(B, L, C)`` both work; tokens may start with
``prefix_tokens`` (a class token) that the adapter passes through, the rest laid out on ``grid``.
The backbone's parameters are frozen (``requires_grad=False``) and it stays in eval mode, so the
part of the backbone below the first adapter records no autograd graph at all.
``backbone_precision="bf16"`` runs the backbone under bf16 autocast while the adapters run as the
caller runs them (fp32, or the caller's own autocast).

Shape letters: B batch, C channels, N oscillator dimension, H, W feature grid, L tokens, U units, T steps.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import nn

from akorn.core.layer import KuramotoLayer
from akorn.core.readout import Readout

PLACEMENTS = ("between", "top")
BACKBONE_PRECISIONS = ("fp32", "bf16")


class AdapterBlock(nn.Module):
    """Projection in, Kuramoto layer, readout, projection out, for one point of the backbone."""

    def __init__(self, width: int, channels: int, n: int, steps: int, coupling: str, heads: int,
                 kernel_size: int, grid: tuple[int, int] | None, tokens: bool):  # fmt: skip
        super().__init__()
        self.tokens = tokens
        positions = "gta" if grid is not None else "none"
        self.project_in = nn.Linear(width, channels) if tokens else nn.Conv2d(width, channels, 1)
        self.layer = KuramotoLayer(
            channels,
            n=n,
            coupling=coupling,
            heads=heads,
            kernel_size=kernel_size,
            positions=positions,
            grid=grid,
            omega="identity" if coupling == "attn" else "global",
            c_norm="gn",
            steps=steps,
        )
        self.readout = Readout(channels, channels, group=n)
        self.project_out = nn.Linear(channels, width) if tokens else nn.Conv2d(channels, width, 1)
        nn.init.zeros_(self.project_out.weight)
        nn.init.zeros_(self.project_out.bias)
        self.record, self.trajectory = False, None

    def forward(self, h: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(readout features, their projection to the backbone's width)``."""
        c = self.project_in(h)
        x = torch.randn(c.shape, generator=generator, device=c.device, dtype=c.dtype)
        if self.record:  # keep every step's state, (B, T+1, ...) in the layer's input layout
            result = self.layer(x, c, return_trajectory=True)
            self.trajectory, x = result.trajectory, result.x
        else:
            x = self.layer(x, c)
        feats = self.readout(x)
        return feats, self.project_out(feats)


class KuramotoAdapter(nn.Module):
    """A frozen ``backbone`` with Kuramoto adapters at the submodules named in ``points``.

    ``forward(img)`` runs the backbone (with the adapters in place) and returns its output;
    ``features(img)`` returns ``{point: adapter features}``. ``points`` are names from
    ``backbone.named_modules()``; ``widths`` gives each point's channel count when the backbone
    cannot be probed with ``example`` input.
    """

    def __init__(
        self,
        backbone: nn.Module,
        points: str | Sequence[str],
        example: torch.Tensor,
        channels: int = 256,
        n: int = 4,
        steps: int = 4,
        coupling: str = "attn",
        heads: int = 8,
        kernel_size: int = 3,
        placement: str = "top",
        prefix_tokens: int = 0,
        backbone_precision: str = "fp32",
    ):
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        if backbone_precision not in BACKBONE_PRECISIONS:
            raise ValueError(f"backbone_precision must be one of {BACKBONE_PRECISIONS}, got {backbone_precision!r}")
        if coupling not in ("attn", "conv"):
            raise ValueError(f"coupling must be 'attn' or 'conv', got {coupling!r}")
        points = [points] if isinstance(points, str) else list(points)
        if not points:
            raise ValueError("an adapter needs at least one point of the backbone")
        modules = dict(backbone.named_modules())
        unknown = [p for p in points if p not in modules or p == ""]
        if unknown:
            names = [k for k in modules if k and "." not in k] or list(modules)[1:6]
            raise ValueError(
                f"the backbone has no submodule {unknown[0]!r}; its top-level ones are {', '.join(names[:12])}"
            )
        self.backbone = backbone
        for p in backbone.parameters():
            p.requires_grad_(False)
        backbone.eval()
        self.points, self.placement, self.prefix_tokens = points, placement, prefix_tokens
        self.backbone_precision = backbone_precision
        shapes = self._probe(example, points, modules)
        self.adapters = nn.ModuleDict()
        self.grids: dict[str, tuple[int, int] | None] = {}
        self.token_points: set[str] = set()
        for p in points:
            shape = shapes[p]
            tokens = len(shape) == 3
            if tokens:
                patches = shape[1] - prefix_tokens
                side = int(round(patches**0.5))
                grid = (side, side) if side * side == patches else None
                if coupling == "conv" and grid is None:
                    raise ValueError(f"{p}: {patches} tokens are not a square grid, which conv coupling needs")
                width = shape[2]
                self.token_points.add(p)
            else:
                grid, width = (shape[2], shape[3]), shape[1]
            self.grids[p] = grid
            # conv coupling runs on maps: tokens are laid out on their grid for it
            inner_tokens = tokens and coupling == "attn"
            self.adapters[_key(p)] = AdapterBlock(
                width, channels, n, steps, coupling, heads, kernel_size, grid, inner_tokens
            )
        self._captured: dict[str, torch.Tensor] = {}
        self._generator: torch.Generator | None = None
        self._bypass = False
        self._caller_autocast = (False, torch.bfloat16)
        self._stop_early = False  # features(): the layers after the last point are not needed
        self._handles = [modules[p].register_forward_hook(functools.partial(self._on_output, p)) for p in points]

    @torch.no_grad()
    def _probe(self, example, points, modules) -> dict[str, tuple[int, ...]]:
        shapes, handles = {}, []
        for p in points:
            handles.append(modules[p].register_forward_hook(lambda m, i, o, p=p: shapes.__setitem__(p, tuple(o.shape))))
        try:
            self.backbone(example)
        finally:
            for h in handles:
                h.remove()
        bad = [p for p in points if p not in shapes or len(shapes[p]) not in (3, 4)]
        if bad:
            raise ValueError(f"{bad[0]}: its output is not a feature map (B, C, H, W) or tokens (B, L, C)")
        return shapes

    def _on_output(self, point: str, module, inputs, output):
        """The forward hook at ``point``. Registered as a partial of this bound method, so a deep copy
        of the adapter (an EMA) gets hooks that run the copy's own adapters."""
        if self._bypass:
            return None
        feats, back = self._adapt(point, output)
        self._captured[point] = feats
        if self.placement == "top":
            if self._stop_early and len(self._captured) == len(self.points):
                raise _Enough
            return None
        tokens = point in self.token_points
        if tokens and back.ndim == 4:
            back = back.flatten(2).transpose(1, 2)
        if tokens and self.prefix_tokens:
            back = torch.cat([torch.zeros_like(output[:, : self.prefix_tokens]), back], 1)
        return output + back

    def _run(self, img: torch.Tensor, stop_early: bool):
        self._stop_early = stop_early
        kind = img.device.type
        # the adapters run as the caller asked (autocast or not), whatever the backbone runs in
        self._caller_autocast = _autocast_state(kind)
        try:
            with torch.autocast(kind, dtype=torch.bfloat16, enabled=self.backbone_precision == "bf16"):
                return self.backbone(img)
        except _Enough:
            return None
        finally:
            self._stop_early = False

    def _adapt(self, point: str, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        adapter = self.adapters[_key(point)]
        tokens = point in self.token_points
        h = output[:, self.prefix_tokens :] if tokens else output
        if tokens and not adapter.tokens:
            h = _tokens_to_map(h, self.grids[point])
        if self.backbone_precision == "fp32":
            return adapter(h, self._generator)
        enabled, dtype = self._caller_autocast
        with torch.autocast(h.device.type, dtype=dtype, enabled=enabled):
            return adapter(h.float(), self._generator)

    def features_from(
        self, outputs: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Each adapter's features from the backbone's outputs at its point, the backbone not run.

        Only for ``placement="top"``, where no adapter changes what the backbone computes, so
        outputs computed once (a feature cache) are what the backbone would give again."""
        if self.placement != "top":
            raise ValueError("features_from needs placement='top': between blocks, adapters change what follows")
        missing = [p for p in self.points if p not in outputs]
        if missing:
            raise ValueError(f"no backbone output given for {missing[0]!r}")
        self._generator = generator
        kind = next(iter(outputs.values())).device.type
        self._caller_autocast = _autocast_state(kind)
        try:
            return {p: self._adapt(p, outputs[p])[0] for p in self.points}
        finally:
            self._generator = None

    @torch.no_grad()
    def backbone_outputs(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        """The frozen backbone's outputs at every point, adapters not run (what ``features_from`` takes)."""
        captured, handles = {}, []
        modules = dict(self.backbone.named_modules())
        for p in self.points:
            handles.append(modules[p].register_forward_hook(functools.partial(_keep_output, captured, p, self.points)))
        self._bypass = True
        try:
            self._run(img, stop_early=False)
        finally:
            self._bypass = False
            for h in handles:
                h.remove()
        return captured

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm statistics and dropout stay as trained
        return self

    def forward(self, img: torch.Tensor, generator: torch.Generator | None = None):
        self._generator, self._captured = generator, {}
        try:
            return self._run(img, stop_early=False)
        finally:
            self._generator = None

    def features(
        self, img: torch.Tensor, generator: torch.Generator | None = None, stop_early: bool = True
    ) -> dict[str, torch.Tensor]:
        """Each adapter's readout features, maps ``(B, C, h, w)`` or tokens ``(B, L, C)``.

        On top of the backbone, ``stop_early`` stops the backbone at the last adapter's point: what
        comes after it does not change the features."""
        self._generator, self._captured = generator, {}
        try:
            self._run(img, stop_early=stop_early and self.placement == "top")
        finally:
            self._generator = None
        out, self._captured = self._captured, {}
        return out

    def block(self, point: str) -> AdapterBlock:
        """The adapter at ``point`` (its Kuramoto layer, readout and projections)."""
        return self.adapters[_key(point)]

    def adapter_parameters(self):
        return self.adapters.parameters()

    @torch.no_grad()
    def trajectory(self, img: torch.Tensor, point: str, generator: torch.Generator | None = None) -> torch.Tensor:
        """The states of the adapter at ``point`` over its steps: ``(B, T+1, C, h, w)`` (tokens laid
        out on their grid)."""
        block = self.adapters[_key(point)]
        block.record = True
        try:
            self.forward(img, generator)
            traj = block.trajectory
        finally:
            block.record, block.trajectory = False, None
        if traj.ndim == 4:  # tokens (B, T+1, L, C)
            B, T1, L, C = traj.shape
            traj = traj.transpose(2, 3).reshape(B, T1, C, *self.grids[point])
        return traj


def _autocast_state(kind: str) -> tuple[bool, torch.dtype]:
    try:
        return torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind)
    except (TypeError, AttributeError):  # torch before 2.4 asks per device kind
        if kind == "cpu":
            return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
        return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()


class _Enough(Exception):
    """Raised by a hook once every point's output is in hand, to skip the rest of the backbone."""


def _keep_output(store: dict, point: str, points: list[str], module, inputs, output):
    store[point] = output
    if len(store) == len(points):
        raise _Enough


def _key(point: str) -> str:
    return point.replace(".", "/")


def _tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    B, L, C = tokens.shape
    return tokens.transpose(1, 2).reshape(B, C, *grid)
