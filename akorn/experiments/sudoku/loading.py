"""Sudoku models from a run folder or from the shipped weights, and how a board is printed."""

from __future__ import annotations

from akorn.errors import UserError


def load_model(
    spec: str,
    overrides=None,
    compile: bool = False,
    device: str = "cpu",
    step: int | None = None,
    with_record: bool = False,
):
    """A trained model from a run folder or the shipped one, on ``device``; the compiled step only when asked for.

    Returns the model and its kind (akorn, itrsa, transformer), or with ``with_record`` the model and
    where it came from: the shipped file's record or the run's checkpoint and config."""
    from akorn.engine.distributed import pick_device
    from akorn.engine.trainer import load_run
    from akorn.experiments import pretrained
    from akorn.experiments.sudoku.experiment import SudokuExperiment

    where = pick_device(device)
    if spec == "pretrained" or spec.startswith("pretrained:"):
        if step is not None:
            raise UserError("--step applies to run folders, not to a shipped model")
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
