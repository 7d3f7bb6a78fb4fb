"""Models shipped inside the package: safetensors weights plus a JSON config, no pickles."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from akorn.engine.checkpoint import load_weights
from akorn.errors import UserError

SUDOKU = "sudoku-akorn"  # C=512, the authors' architecture, trained on a GPU
SUDOKU_CPU = "sudoku-akorn-c128"  # the smaller model trained on 2 CPU cores (docs/sudoku.md)


def names() -> list[str]:
    """The shipped models of this installation."""
    base = resources.files("akorn") / "weights"
    return sorted(f.name[: -len(".safetensors")] for f in base.iterdir() if f.name.endswith(".safetensors"))


def _files(name: str):
    base = resources.files("akorn") / "weights"
    return base / f"{name}.safetensors", base / f"{name}.json"


def available(name: str = SUDOKU) -> bool:
    w, c = _files(name)
    return w.is_file() and c.is_file()


def load_sudoku(name: str = SUDOKU, compile: bool = False):
    """The shipped Sudoku AKOrN (eval mode) and its training record."""
    w, c = _files(name)
    if not (w.is_file() and c.is_file()):
        raise UserError(f"pretrained model {name!r} is not in this installation; it has {', '.join(names()) or 'none'}")
    return load_sudoku_files(w, c, compile)


def load_sudoku_files(weights, record_file, compile: bool = False):
    """A Sudoku model stored as safetensors weights plus a JSON record (``export``, ``import``)."""
    from akorn.engine.config import from_dict
    from akorn.engine.files import read_json
    from akorn.experiments.sudoku.experiment import SudokuConfig, SudokuExperiment

    w, c = weights, record_file
    record = read_json(Path(str(c)), "model record")
    if not isinstance(record.get("config"), dict):
        raise UserError(f"{c} is not a model record (it has no config)")
    cfg = from_dict(SudokuConfig, dict(record["config"], compile=compile), str(c))
    model = SudokuExperiment().build_model(cfg)
    try:
        model.load_state_dict(load_weights(w))
    except RuntimeError as e:
        raise UserError(f"{w} does not fit the model its record describes: {str(e).splitlines()[0]}") from None
    model.eval()
    # The T its evaluations found best (an even one: these models read out after even steps).
    model.eval_steps = record.get("eval_steps", record.get("test_steps"))
    return model, record


CIFAR10 = "cifar10-akorn"  # the conv AKOrN classifier trained on 2 CPU cores (docs/classify.md)


def load_classifier(name: str = CIFAR10):
    """A shipped classifier (eval mode), its config and its training record."""
    w, c = _files(name)
    if not (w.is_file() and c.is_file()):
        raise UserError(f"pretrained model {name!r} is not in this installation; it has {', '.join(names()) or 'none'}")
    return load_classifier_files(w, c)


def load_classifier_files(weights, record_file):
    """A classifier stored as safetensors weights plus a JSON record (``export``, ``import``)."""
    from akorn.engine.config import from_dict
    from akorn.engine.files import read_json
    from akorn.experiments.classify.experiment import ClassifyConfig, ClassifyExperiment

    w, c = weights, record_file
    record = read_json(Path(str(c)), "model record")
    if not isinstance(record.get("config"), dict):
        raise UserError(f"{c} is not a model record (it has no config)")
    cfg = from_dict(ClassifyConfig, record["config"], str(c))
    model = ClassifyExperiment().build_model(cfg)
    try:
        model.load_state_dict(load_weights(w))
    except RuntimeError as e:
        raise UserError(f"{w} does not fit the model its record describes: {str(e).splitlines()[0]}") from None
    model.eval()
    return model, cfg, record
