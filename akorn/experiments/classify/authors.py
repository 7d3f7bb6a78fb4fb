"""Checkpoints of the authors' CIFAR-10 classifier (``knet.AKOrN`` of github.com/autonomousvision/akorn)
as our :class:`~akorn.experiments.classify.models.AKOrNClassifier`.

Their stage ``l`` is ``layers.l``: ``.0`` the transition (two entries of one shared conv), ``.2`` the
Kuramoto layer (``connectivity``, ``omg.omg_param``, ``c_norm``), ``.3`` the readout (``.0`` the
group-norm readout conv, ``.1.fn.fn.{0,1}.fn`` the residual pair, ``.2.fn`` the last norm-ReLU-conv).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from akorn.errors import UserError
from akorn.experiments.authors_layout import check_keys, model_state_dict

WHAT = "a checkpoint of the authors' AKOrN classifier"
_NORM_CONV = ("weight", "bias")
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _pre(theirs: str, ours: str, sd: dict, out: dict, expected: set):
    """A norm-ReLU-conv: their ``fn.0`` (norm) and ``fn.2`` (conv) -> our ``.0`` and ``.2``."""
    for k in _BN:
        if f"{theirs}.0.{k}" in sd:
            out[f"{ours}.0.{k}"] = sd[f"{theirs}.0.{k}"].clone()
            expected.add(f"{theirs}.0.{k}")
    for k in _NORM_CONV:
        out[f"{ours}.2.{k}"] = sd[f"{theirs}.2.{k}"].clone()
        expected.add(f"{theirs}.2.{k}")


def convert(sd: dict) -> tuple[dict, dict]:
    """Their state dict -> ours, and the config fields read off the shapes."""
    needed = {"conv0.weight", "layers.0.2.connectivity.weight", "layers.0.3.0.invconv.weight", "out.weight", "gamma"}
    if needed - set(sd):
        check_keys(sd, set(sd) | needed, WHAT)  # names what is missing
    stages = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k)))
    C = sd["conv0.weight"].shape[0]
    kernels = [sd[f"layers.{s}.2.connectivity.weight"].shape[-1] for s in range(stages)]
    group = sd["layers.0.3.0.invconv.weight"].shape[0] // C
    readout_kernel = sd["layers.0.3.0.invconv.weight"].shape[-1]
    out = {"stem.weight": sd["conv0.weight"].clone(), "head.weight": sd["out.weight"].clone()}
    out["head.bias"] = sd["out.bias"].clone()
    expected = {"gamma", "conv0.weight", "out.weight", "out.bias"}
    for s in range(stages):
        t, k = f"layers.{s}", f"layers.{s}"
        if s > 0:
            for p in ("weight", "bias"):
                out[f"transitions.{s}.{p}"] = sd[f"{t}.0.0.{p}"].clone()
                expected |= {f"{t}.0.0.{p}", f"{t}.0.1.{p}"}
                if not torch.equal(sd[f"{t}.0.0.{p}"], sd[f"{t}.0.1.{p}"]):
                    raise UserError(f"not {WHAT}: its transition {s} has two different convs for x and c")
        for p in ("weight", "bias"):
            out[f"{k}.coupling.conv.{p}"] = sd[f"{t}.2.connectivity.{p}"].clone()
            out[f"{k}.c_norm.{p}"] = sd[f"{t}.2.c_norm.{p}"].clone()
            expected |= {f"{t}.2.connectivity.{p}", f"{t}.2.c_norm.{p}"}
        out[f"{k}.omega_param"] = sd[f"{t}.2.omg.omg_param"].clone()
        out[f"{k}.gamma"] = sd["gamma"].reshape(()).clone()
        expected.add(f"{t}.2.omg.omg_param")
        r = f"readouts.{s}"
        out[f"{r}.0.proj.weight"] = sd[f"{t}.3.0.invconv.weight"].clone()
        out[f"{r}.0.proj.bias"] = sd[f"{t}.3.0.invconv.bias"].clone()
        out[f"{r}.0.bias"] = sd[f"{t}.3.0.bias"].clone()
        expected |= {f"{t}.3.0.invconv.weight", f"{t}.3.0.invconv.bias", f"{t}.3.0.bias"}
        for i in range(2):
            _pre(f"{t}.3.1.fn.fn.{i}.fn", f"{r}.1.fn.{i}", sd, out, expected)
        _pre(f"{t}.3.2.fn", f"{r}.2", sd, out, expected)
    check_keys(sd, expected, WHAT)
    fields = dict(
        channels=C,
        stages=stages,
        kernel_sizes=",".join(map(str, kernels)),
        n=group,
        readout_kernel=readout_kernel,
        gamma=float(sd["gamma"]),
        classes=sd["out.weight"].shape[0],
        in_channels=sd["conv0.weight"].shape[1],
        image_size=32,
    )
    return out, fields


def load_authors_checkpoint(path: str | Path) -> tuple[dict, dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with code in it, or a torn file
        raise UserError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    return convert(model_state_dict(obj, WHAT))
