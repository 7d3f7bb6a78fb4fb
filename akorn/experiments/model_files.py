"""Every model a command reads, through one loader, and every model it writes, through one writer.

A *source* is one of:

* a run folder (its latest checkpoint, or ``step=``; EMA weights unless ``weights="raw"``);
* ``pretrained`` or ``pretrained:NAME``, a model shipped inside the package;
* ``NAME.safetensors`` (or ``NAME.json``, or ``NAME`` when ``NAME.safetensors`` exists): a stored
  model, written by ``export`` or ``import``, with its record ``NAME.json`` beside it;
* ``FILE.pth`` / ``FILE.pt``: a checkpoint of the authors' code, converted on the fly.

:func:`load_model` returns a :class:`LoadedModel`: the model (eval mode), its config, its record
and the T its record recommends. :func:`export_model` writes a run's weights and record;
:func:`write_model` writes any model with its record.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akorn.errors import UserError

PRETRAINED = "pretrained"
AUTHORS_SUFFIXES = (".pth", ".pt")

# name -> "module:class"; imported on first use so that a command pays only for its own experiment
EXPERIMENTS = {
    "sudoku": "akorn.experiments.sudoku.experiment:SudokuExperiment",
    "objects": "akorn.experiments.objects.experiment:ObjectsExperiment",
    "classify": "akorn.experiments.classify.experiment:ClassifyExperiment",
    "adapters": "akorn.experiments.adapters:AdaptersExperiment",
    "text": "akorn.experiments.text.experiment:TextExperiment",
}


def experiment_named(name: str):
    """An instance of the experiment called ``name`` (``sudoku``, ``objects``, ``classify``, ``adapters``, ``text``)."""
    if name not in EXPERIMENTS:
        raise UserError(f"unknown experiment {name!r}; the experiments are {', '.join(EXPERIMENTS)}")
    module, _, cls = EXPERIMENTS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for evaluation and what is known about it."""

    model: Any  # nn.Module in eval mode
    config: Any  # the experiment's config dataclass
    experiment: Any  # the Experiment it belongs to
    source: str  # what was read: "pretrained:NAME", a weights file, a checkpoint folder or the authors' file
    record: dict = field(default_factory=dict)  # a stored model's record; for a run folder, where its checkpoint is
    steps: int = 0  # the T its record recommends at test time, else the training T (0 for a model without T)

    def describe(self) -> dict:
        """What an evaluation report says about where its model came from."""
        keep = ("summary", "checkpoint", "stored_dtype", "eval_steps", "training_seconds_logged", "imported_from")
        kind = "run" if "run" in self.record else "model"
        return {kind: self.record.get("run", self.source), "source": self.source,
                **{k: self.record[k] for k in keep if k in self.record}}  # fmt: skip


def source_kind(source: str) -> str:
    """``pretrained``, ``stored``, ``authors`` or ``run``."""
    if source == PRETRAINED or source.startswith(PRETRAINED + ":"):
        return "pretrained"
    if source.endswith(AUTHORS_SUFFIXES) and not Path(source).is_dir():
        return "authors"
    if stored_files(source) is not None:
        return "stored"
    return "run"


def stored_files(source: str) -> tuple[Path, Path] | None:
    """``(weights, record)`` of a stored model, or None when ``source`` does not name one."""
    if source.endswith((".safetensors", ".json")):
        base = source.rsplit(".", 1)[0]
    elif Path(source + ".safetensors").is_file():
        base = source
    else:
        return None
    return Path(base + ".safetensors"), Path(base + ".json")


def shipped_names() -> list[str]:
    """The shipped models of this installation."""
    from importlib import resources

    base = resources.files("akorn") / "weights"
    return sorted(f.name[: -len(".safetensors")] for f in base.iterdir() if f.name.endswith(".safetensors"))


def shipped_files(name: str) -> tuple[Path, Path]:
    """``(weights, record)`` of the shipped model ``name``."""
    from importlib import resources

    base = resources.files("akorn") / "weights"
    w, c = Path(str(base / f"{name}.safetensors")), Path(str(base / f"{name}.json"))
    if not (w.is_file() and c.is_file()):
        raise UserError(f"pretrained model {name!r} is not in this installation; it has {', '.join(shipped_names())}")
    return w, c


def shipped_name(source: str, experiment=None) -> str:
    """The file name behind ``pretrained[:NAME]``: an experiment's short names map to its files."""
    name = source.partition(":")[2]
    if experiment is not None:
        return experiment.pretrained.get(name, name)
    if not name:
        raise UserError("'pretrained' alone needs an experiment; give pretrained:NAME")
    for exp_name in EXPERIMENTS:
        aliases = experiment_named(exp_name).pretrained
        if name in aliases:
            return aliases[name]
    return name


def load_model(
    source: str,
    experiment=None,
    *,
    words: list[str] | None = None,
    weights: str = "ema",
    step: int | None = None,
    compile: bool | None = None,
    device: str | None = None,
) -> LoadedModel:
    """The model ``source`` names (see the module's docstring), in eval mode.

    ``experiment``: an Experiment or its name; None takes it from the source's record. ``words``
    override config fields that do not change the weights (``steps=32``). ``weights="raw"`` reads a
    run's raw weights instead of its EMA, ``step`` a run's checkpoint after that optimizer step.
    ``compile`` (True or False) replaces the config's own ``compile`` field. ``device`` moves the model there."""
    from akorn.engine.trainer import load_run

    if isinstance(experiment, str):
        experiment = experiment_named(experiment)
    if weights not in ("ema", "raw"):
        raise UserError(f"weights must be ema or raw, got {weights!r}")
    kind = source_kind(source)
    if kind != "run" and step is not None:
        raise UserError(f"--step picks a checkpoint of a run folder; {source} is one stored model")
    if kind != "run" and weights == "raw":
        raise UserError(f"--weights raw needs a run folder; {source} stores one set of weights")
    if kind == "pretrained":
        name = shipped_name(source, experiment)
        files = shipped_files(name)
    elif kind == "stored":
        files = stored_files(source)
    if experiment is None:
        experiment = _experiment_of(source, kind, files[1] if kind in ("pretrained", "stored") else None)
    words = ([] if compile is None else [f"compile={str(compile).lower()}"]) + list(words or [])
    if kind in ("pretrained", "stored"):
        loaded = _load_stored(*files, experiment, words, source)
    elif kind == "authors":
        sd, cfg = experiment.from_authors_checkpoint(source, words)
        loaded = _finish(experiment, cfg, sd, source, {"imported_from": source})
    else:
        model, cfg, ckpt = load_run(experiment, source, words, use_ema=weights == "ema", step=step)
        record = {"run": source, "checkpoint": str(ckpt), "weights": weights}
        loaded = LoadedModel(model, cfg, experiment, str(ckpt), record, recommended_steps(cfg, {}))
    if device is not None:
        from akorn.engine.distributed import pick_device

        loaded.model.to(pick_device(device))
    return loaded


def recommended_steps(cfg, record: dict) -> int:
    return record.get("eval_steps") or record.get("test_steps") or getattr(cfg, "steps", 0)


def _experiment_of(source: str, kind: str, record_file: Path | None):
    """The experiment a stored model's record or a run folder's config names."""
    from akorn.engine.files import read_json

    if kind == "authors":
        raise UserError(f"{source}: a checkpoint of the authors' code names no experiment; read it through a command")
    if kind == "run":
        if not Path(source).is_dir():
            raise UserError(f"run folder not found: {source}")
        named = read_json(Path(source) / "config.json", f"not a run folder ({source})").get("experiment")
    else:
        # Records of Sudoku models may predate the field; Sudoku was the only experiment then.
        named = read_json(record_file, "model record").get("experiment") or "sudoku"
    return experiment_named(str(named))


def _load_stored(weights: Path, record_file: Path, experiment, words: list[str], source: str) -> LoadedModel:
    from akorn.engine.checkpoint import load_weights
    from akorn.engine.config import apply_overrides, from_dict, parse_words
    from akorn.engine.files import read_json

    if not weights.is_file():
        raise UserError(f"weights file not found: {weights}")
    record = read_json(record_file, "model record")
    if not isinstance(record.get("config"), dict):
        raise UserError(f"{record_file} is not a model record (it has no config)")
    named = record.get("experiment") or "sudoku"  # Sudoku's records may predate the field
    if named != experiment.name:
        raise UserError(f"{weights} is a model of 'akorn {named}', not of 'akorn {experiment.name}'")
    cfg = from_dict(experiment.config_cls, record["config"], str(record_file))
    if words:
        cfg = apply_overrides(cfg, parse_words(words))
    return _finish(experiment, cfg, load_weights(weights), source, record)


def _finish(experiment, cfg, sd: dict, source: str, record: dict) -> LoadedModel:
    try:
        model = experiment.build_model(cfg)
    except ValueError as e:
        raise UserError(f"cannot build the model of this config: {e}") from None
    try:
        model.load_state_dict(sd)  # fp16 weights are copied into the float32 parameters
    except RuntimeError as e:
        raise UserError(f"{source} does not fit the model its record describes: {str(e).splitlines()[0]}") from None
    model.eval()
    return LoadedModel(model, cfg, experiment, source, record, recommended_steps(cfg, record))


# --- writing -----------------------------------------------------------------------------------


def write_model(model, cfg, experiment: str, out: str, record: dict, dtype: str = "fp32") -> tuple[Path, Path]:
    """``out``.safetensors (weights in ``dtype``) and ``out``.json (the record that rebuilds them)."""
    import torch

    from akorn.engine.checkpoint import save_weights
    from akorn.engine.config import to_dict
    from akorn.engine.files import check_output_file, write_text_atomically

    if dtype not in ("fp32", "fp16"):
        raise UserError(f"--dtype must be fp32 or fp16, got {dtype!r}")
    weights = check_output_file(out + ".safetensors", "weights file")
    record_file = check_output_file(out + ".json", "record file")
    store = torch.float16 if dtype == "fp16" else torch.float32
    sd = {k: v.to(store) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    full = {"experiment": experiment, "config": to_dict(cfg), **record, "stored_dtype": dtype,
            "torch_version": torch.__version__}  # fmt: skip
    save_weights(sd, weights)
    write_text_atomically(record_file, json.dumps(full, indent=1) + "\n", "model record")
    return weights, record_file


def export_model(run: str, experiment, out: str, *, dtype: str = "fp32", evals: list[str] = (),
                 summary: str = "", eval_steps: int = 0) -> tuple[Path, Path]:  # fmt: skip
    """A run's EMA weights and a record of what made them: the training commands and seconds, the
    runs it was fine-tuned from, its last training and evaluation logs, and ``evals`` (reports)."""
    from akorn.engine.files import read_json

    if eval_steps < 0:
        raise UserError(f"--eval-steps must be positive (or 0 for the training T), got {eval_steps}")
    loaded = load_model(run, experiment)
    if "run" not in loaded.record:
        raise UserError(f"export reads a run folder; {run} is a stored model already")
    record = {
        "source": loaded.source,
        "checkpoint": Path(loaded.source).name,
        **run_history(Path(run), loaded.config, Path(loaded.source)),
        "evaluations": [read_json(Path(p), "--eval report") for p in evals],
        "summary": summary,
        "eval_steps": eval_steps or getattr(loaded.config, "steps", 0),
    }
    return write_model(loaded.model, loaded.config, loaded.experiment.name, out, record, dtype)


def run_history(run_dir: Path, cfg, ckpt: Path) -> dict:
    """What a run folder says about how its checkpoint ``ckpt`` came to be."""
    from akorn.engine.checkpoint import checkpoint_step
    from akorn.engine.trainer import RunFolder

    run = RunFolder(run_dir)
    saved = checkpoint_step(ckpt) or 0
    # Only the steps up to the exported checkpoint: a run may have gone on after it.
    metrics = [m for m in run.read_metrics() if m.get("step", 0) <= saved]
    train = [m for m in metrics if m.get("split") == "train" and "loss" in m]
    evals = [m for m in metrics if m.get("split") == "eval"]
    commands = run.path / "command.txt"
    return {
        "training_commands": commands.read_text().splitlines() if commands.exists() else [],
        "training_seconds_logged": round(sum(m.get("sec_per_step", 0) * cfg.log_every for m in train)),
        "initialised_from": lineage(getattr(cfg, "init", "")),
        "training": {
            "steps": saved,
            "last_train_log": train[-1] if train else None,
            "last_eval": evals[-1] if evals else None,
            "time_limit_reached": any("time_limit_reached" in m for m in metrics),
        },
    }


def lineage(init: str) -> list[dict]:
    """The chain of runs a fine-tuned run started from, each with its training commands."""
    chain = []
    while init:
        base = Path(init)
        base = base if (base / "command.txt").exists() else base.parent.parent  # a checkpoint folder's run
        commands = base / "command.txt"
        if not commands.exists():
            chain.append({"init": init, "training_commands": []})
            break
        chain.append({"init": init, "training_commands": commands.read_text().splitlines()})
        base_cfg = base / "config.json"
        init = json.loads(base_cfg.read_text()).get("config", {}).get("init", "") if base_cfg.exists() else ""
    return chain
