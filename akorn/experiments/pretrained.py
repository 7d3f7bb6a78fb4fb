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


CIFAR10 = "cifar10-akorn"  # the conv AKOrN classifier trained on 2 CPU cores (docs/classify.md)
TETROMINOES = "tetrominoes-akorn"  # the object-discovery AKOrN trained on 2 CPU cores (docs/objects.md)


def available(name: str = SUDOKU) -> bool:
    w, c = _files(name)
    return w.is_file() and c.is_file()


def _shipped(name: str):
    w, c = _files(name)
    if not (w.is_file() and c.is_file()):
        raise UserError(f"pretrained model {name!r} is not in this installation; it has {', '.join(names()) or 'none'}")
    return w, c


def load(experiment, name: str, words: list[str] | None = None):
    """A shipped model of ``experiment`` (eval mode), its config and its record."""
    return load_files(experiment, *_shipped(name), words)


def load_files(experiment, weights, record_file, words: list[str] | None = None):
    """A model stored as safetensors weights (fp32 or fp16) plus a JSON record of its config
    (``export``, ``import``); ``words`` override config fields that do not change the weights."""
    from akorn.engine.config import apply_overrides, from_dict, parse_words
    from akorn.engine.files import read_json

    w, c = Path(str(weights)), Path(str(record_file))
    if not w.is_file():
        raise UserError(f"weights file not found: {w}")
    record = read_json(c, "model record")
    if not isinstance(record.get("config"), dict):
        raise UserError(f"{c} is not a model record (it has no config)")
    if record.get("experiment", experiment.name) != experiment.name:
        raise UserError(f"{w} is a model of 'akorn {record['experiment']}', not of 'akorn {experiment.name}'")
    cfg = from_dict(experiment.config_cls, record["config"], str(c))
    if words:
        cfg = apply_overrides(cfg, parse_words(words))
    model = experiment.build_model(cfg)
    try:
        model.load_state_dict(load_weights(w))  # fp16 weights are copied into the float32 parameters
    except RuntimeError as e:
        raise UserError(f"{w} does not fit the model its record describes: {str(e).splitlines()[0]}") from None
    model.eval()
    return model, cfg, record


def load_sudoku(name: str = SUDOKU, compile: bool = False):
    """The shipped Sudoku AKOrN (eval mode) and its training record."""
    return load_sudoku_files(*_shipped(name), compile)


def load_sudoku_files(weights, record_file, compile: bool = False):
    """A Sudoku model stored as safetensors weights plus a JSON record (``export``, ``import``)."""
    from akorn.experiments.sudoku.experiment import SudokuExperiment

    model, _, record = load_files(SudokuExperiment(), weights, record_file, [f"compile={str(compile).lower()}"])
    # The T its evaluations found best (an even one: these models read out after even steps).
    model.eval_steps = record.get("eval_steps", record.get("test_steps"))
    return model, record


def load_classifier(name: str = CIFAR10):
    """A shipped classifier (eval mode), its config and its training record."""
    from akorn.experiments.classify.experiment import ClassifyExperiment

    return load(ClassifyExperiment(), name)


def load_classifier_files(weights, record_file):
    """A classifier stored as safetensors weights plus a JSON record (``export``, ``import``)."""
    from akorn.experiments.classify.experiment import ClassifyExperiment

    return load_files(ClassifyExperiment(), weights, record_file)
