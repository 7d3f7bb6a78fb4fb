"""Sudoku models from a run folder or from the shipped weights, and how a board is printed."""

from __future__ import annotations

from pathlib import Path

from akorn.errors import UserError


def load_model(
    spec: str,
    overrides=None,
    compile: bool = False,
    device: str = "cpu",
    step: int | None = None,
    with_record: bool = False,
):
    """A trained model on ``device`` from a run folder, a shipped model (``pretrained[:NAME]``) or a stored one
    (``PATH.safetensors`` with ``PATH.json``, from ``export`` or ``import``); compiled only when asked for.

    Returns the model and its kind (akorn, itrsa, transformer), or with ``with_record`` the model and
    where it came from: the shipped file's record or the run's checkpoint and config."""
    from akorn.engine.distributed import pick_device
    from akorn.engine.trainer import load_run
    from akorn.experiments import pretrained
    from akorn.experiments.sudoku.experiment import SudokuExperiment

    where = pick_device(device)
    stored = Path(spec).with_suffix(".safetensors") if spec.endswith((".safetensors", ".json")) else None
    if stored is None and Path(spec + ".safetensors").is_file():
        stored = Path(spec + ".safetensors")
    if spec == "pretrained" or spec.startswith("pretrained:") or stored is not None:
        if step is not None:
            raise UserError("--step applies to run folders, not to a stored model")
        if stored is not None:
            name = str(stored)
            model, record = pretrained.load_sudoku_files(stored, stored.with_suffix(".json"), compile=compile)
        else:
            name = spec.partition(":")[2] or pretrained.SUDOKU
            model, record = pretrained.load_sudoku(name, compile=compile)
        kind = record["config"].get("model", "akorn")
        if with_record:
            keep = ("summary", "checkpoint", "stored_dtype", "eval_steps", "training_seconds_logged")
            return model.to(where), {"shipped": name, "model": kind, **{k: record.get(k) for k in keep}}
        return model.to(where), kind
    model, cfg, ckpt = load_run(SudokuExperiment(), spec, [f"compile={compile}", *(overrides or [])], step=step)
    if with_record:
        return model.to(where), {"run": spec, "checkpoint": str(ckpt), "model": cfg.model, "config": vars(cfg)}
    return model.to(where), cfg.model


def default_steps(model) -> int:
    """T when none is given: a shipped model's recommended T (``eval_steps`` in its record), else the training T."""
    return getattr(model, "eval_steps", None) or model.steps


def format_grid(grid) -> str:
    lines = []
    for r in range(9):
        if r and r % 3 == 0:
            lines.append("------+-------+------")
        row = grid[9 * r : 9 * r + 9]
        lines.append(" | ".join(" ".join(str(d) if d else "." for d in row[i : i + 3]) for i in (0, 3, 6)))
    return "\n".join(lines)
