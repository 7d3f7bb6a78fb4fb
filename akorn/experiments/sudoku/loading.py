"""Sudoku models from a run folder or from the shipped weights, and how a board is printed."""

from __future__ import annotations

from akorn.errors import UserError


def load_model(spec: str, overrides=None, compile: bool = False, device: str = "cpu", step: int | None = None):
    """A trained model from a run folder or the shipped one, on ``device``; the compiled step only when asked for."""
    from akorn.engine.distributed import pick_device
    from akorn.engine.trainer import load_run
    from akorn.experiments import pretrained
    from akorn.experiments.sudoku.experiment import SudokuExperiment

    where = pick_device(device)
    if spec == "pretrained" or spec.startswith("pretrained:"):
        if step is not None:
            raise UserError("--step applies to run folders, not to a shipped model")
        model, record = pretrained.load_sudoku(spec.partition(":")[2] or pretrained.SUDOKU, compile=compile)
        return model.to(where), record["config"].get("model", "akorn")
    model, cfg, _ = load_run(SudokuExperiment(), spec, [f"compile={compile}", *(overrides or [])], step=step)
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
