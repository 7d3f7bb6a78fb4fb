"""Checkpoints: safetensors weights plus JSON, written atomically; loading never unpickles code.

Layout of one checkpoint (a folder)::

    step-00000100/
        model.safetensors      model weights
        ema.safetensors        EMA weights (if any)
        optimizer.safetensors  optimizer tensors
        state.json             step, config, experiment, optimizer structure, package version

The folder is written as ``step-00000100.tmp`` (for step 100), every file fsync-ed, then renamed, so a
killed run never leaves a half-written checkpoint under a final name.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from akorn.engine.files import read_json
from akorn.errors import UserError

STATE_FILE = "state.json"


def _fsync_dir(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _contiguous(sd: dict) -> dict:
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def optimizer_to_flat(opt_state: dict) -> tuple[dict, dict]:
    """Split an optimizer state dict into tensors (for safetensors) and a JSON-able structure."""
    tensors, structure = {}, {"param_groups": opt_state["param_groups"], "state": {}}
    for idx, st in opt_state["state"].items():
        entry = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                name = f"{idx}.{k}"
                tensors[name] = v.detach().contiguous().cpu()
                entry[k] = {"tensor": name}
            else:
                entry[k] = {"value": v}
        structure["state"][str(idx)] = entry
    return tensors, structure


def optimizer_from_flat(tensors: dict, structure: dict) -> dict:
    state = {}
    for idx, entry in structure["state"].items():
        state[int(idx)] = {k: tensors[v["tensor"]] if "tensor" in v else v["value"] for k, v in entry.items()}
    return {"state": state, "param_groups": structure["param_groups"]}


def save_checkpoint(
    root: Path, step: int, model_sd: dict, ema_sd: dict | None, optimizer_sd: dict | None, meta: dict, keep: int = 3
) -> Path:
    """Write ``root/step-<8-digit step>`` atomically and keep only the newest ``keep`` checkpoints.

    A full disk or a permission error is a :class:`UserError`; the half-written folder is removed
    and the earlier checkpoints are left as they were.
    """
    root = Path(root)
    tmp = root / f"{checkpoint_name(step)}.tmp"
    try:
        return _write_checkpoint(root, tmp, step, model_sd, ema_sd, optimizer_sd, meta, keep)
    except (OSError, SafetensorError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = getattr(e, "strerror", None) or str(e).strip().splitlines()[0]
        raise UserError(
            f"cannot write the checkpoint of step {step} in {root}: {reason}; the earlier checkpoints are kept"
        ) from None


def _write_checkpoint(root, tmp, step, model_sd, ema_sd, optimizer_sd, meta, keep) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_contiguous(model_sd), tmp / "model.safetensors")
    if ema_sd is not None:
        save_file(_contiguous(ema_sd), tmp / "ema.safetensors")
    state = dict(meta, step=step)
    if optimizer_sd is not None:
        tensors, structure = optimizer_to_flat(optimizer_sd)
        save_file(tensors, tmp / "optimizer.safetensors")
        state["optimizer"] = structure
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=1, sort_keys=True))
    for f in tmp.iterdir():
        _fsync_file(f)
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint saved after optimizer step ``step``."""
    return f"step-{step:08d}"


def checkpoint_step(path: Path) -> int | None:
    """The step of a finished checkpoint folder's name (``step-00000100`` -> 100); None for anything else."""
    name = Path(path).name
    prefix, _, digits = name.partition("-")
    if prefix != "step" or not digits.isdigit():
        return None
    return int(digits)


def list_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoint folders under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(done, key=checkpoint_step)


EMA_COUNT_KEY = "__n_averaged"  # the EMA's update count, stored beside its weights


def ema_model_weights(sd: dict) -> dict:
    """The model weights inside an EMA state dict: without the update count and without the
    ``module.`` prefix that ``AveragedModel`` or a DDP wrapper adds."""
    return {k.removeprefix("module."): v for k, v in sd.items() if k != EMA_COUNT_KEY}


def save_weights(sd: dict, path: str | Path) -> Path:
    """Write a state dict as safetensors through a temporary file and a rename, so no reader ever
    sees half a weights file; a folder that cannot be written is a :class:`UserError`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(_contiguous(sd), str(tmp))
        _fsync_file(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def load_weights(path: Path) -> dict:
    """Read a safetensors file; a missing or corrupt file is a :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"missing weights file: {path}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"corrupt weights file {path}: {e}") from None


def load_checkpoint(ckpt: Path, need_ema: bool = False) -> dict:
    """Load a checkpoint folder into ``{"state", "model", "ema", "optimizer"}``.

    ``need_ema``: the run keeps an EMA, so a checkpoint without ``ema.safetensors`` is damaged
    (resuming would restart the EMA, which is what gets evaluated, from scratch)."""
    ckpt = Path(ckpt)
    state = read_json(ckpt / STATE_FILE, f"not a checkpoint ({ckpt})")
    step = state.get("step") if isinstance(state, dict) else None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise UserError(f"corrupt {ckpt / STATE_FILE}: its step must be a non-negative integer, got {step!r}")
    out = {"state": state, "model": load_weights(ckpt / "model.safetensors"), "ema": None, "optimizer": None}
    if (ckpt / "ema.safetensors").exists():
        out["ema"] = load_weights(ckpt / "ema.safetensors")
    elif need_ema:
        raise UserError(
            f"checkpoint {ckpt} has no ema.safetensors, though its run keeps an EMA (the weights "
            "that get evaluated); restore the file, or use an earlier checkpoint"
        )
    if "optimizer" in state:
        out["optimizer"] = optimizer_from_flat(load_weights(ckpt / "optimizer.safetensors"), state["optimizer"])
    return out


def safe_torch_load(path: Path):
    """``torch.load`` that refuses pickled code (``weights_only=True``); errors become :class:`UserError`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except Exception as e:  # pickle.UnpicklingError and friends: never fall back to full unpickling
        raise UserError(f"refusing to load {path}: not a plain tensor file ({type(e).__name__})") from None
