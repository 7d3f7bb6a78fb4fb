"""Where a command's model comes from: a run folder, a shipped model (``pretrained:NAME``) or an
exported one (``NAME.safetensors`` beside ``NAME.json``); and ``export``, which writes the latter."""

from __future__ import annotations

import json
from pathlib import Path

from akorn.errors import UserError

PRETRAINED = "pretrained:"


def is_file_model(source: str) -> bool:
    """A shipped or exported model rather than a run folder."""
    return source.startswith(PRETRAINED) or source.endswith(".safetensors")


def load_model(experiment, source: str, aliases: dict[str, str], words: list[str] | None = None,
               use_ema: bool = True, step: int | None = None):  # fmt: skip
    """``(model, config, where it came from)``. ``aliases`` maps the short names of ``pretrained:``
    to shipped models (``{"cifar10": "cifar10-akorn"}``); ``words`` override config fields."""
    from akorn.engine.trainer import load_run
    from akorn.experiments import pretrained

    if is_file_model(source) and step is not None:
        raise UserError(f"--step picks a checkpoint of a run folder; {source} is one stored model")
    if is_file_model(source) and not use_ema:
        raise UserError(f"--weights raw needs a run folder; {source} stores one set of weights")
    if source.startswith(PRETRAINED):
        name = source[len(PRETRAINED) :]
        model, cfg, _ = pretrained.load(experiment, aliases.get(name, name), words)
        return model, cfg, source
    if source.endswith(".safetensors"):
        record = Path(source[: -len(".safetensors")] + ".json")
        model, cfg, _ = pretrained.load_files(experiment, Path(source), record, words)
        return model, cfg, source
    model, cfg, ckpt = load_run(experiment, source, words, use_ema=use_ema, step=step)
    return model, cfg, str(ckpt)


def add_export_parser(sub, what: str, func):
    x = sub.add_parser("export", help=f"a run's EMA weights as safetensors (fp32 or fp16) plus a JSON record ({what})")
    x.add_argument("run")
    x.add_argument("--out", required=True, help="NAME: writes NAME.safetensors and NAME.json")
    x.add_argument("--fp16", action="store_true", help="store half-precision weights (half the size)")
    x.add_argument("--report", default="", help="an eval report (JSON) to keep in the record")
    x.set_defaults(func=func)
    return x


def export(args, experiment: str, model, cfg, source: str):
    """Write ``args.out``.safetensors and .json: the weights, the experiment and config that build
    them, and what the run did (its last training and evaluation records; ``--report``)."""
    import torch

    from akorn.engine.checkpoint import save_weights
    from akorn.engine.config import to_dict
    from akorn.engine.files import check_output_file, read_json, write_text_atomically

    weights = check_output_file(args.out + ".safetensors", "weights file")
    record_file = check_output_file(args.out + ".json", "record file")
    sd = {k: v.half() if args.fp16 and v.is_floating_point() else v for k, v in model.state_dict().items()}
    record = {"experiment": experiment, "config": to_dict(cfg), "source": source, "fp16": args.fp16,
              "torch_version": torch.__version__}  # fmt: skip
    if Path(args.run).is_dir():
        from akorn.engine.trainer import RunFolder

        metrics = RunFolder(Path(args.run)).read_metrics()
        train = [m for m in metrics if m.get("split") == "train" and "loss" in m]
        evals = [m for m in metrics if m.get("split") == "eval"]
        record["training"] = {
            "steps": max((m["step"] for m in metrics), default=0),
            "last_train_log": train[-1] if train else None,
            "last_eval": evals[-1] if evals else None,
            "time_limit_reached": any("time_limit_reached" in m for m in metrics),
        }
    if args.report:
        record["report"] = read_json(Path(args.report), "eval report")
    save_weights(sd, weights)
    write_text_atomically(record_file, json.dumps(record, indent=1) + "\n")
    print(f"written: {weights} ({weights.stat().st_size / 1e6:.2f} MB), {record_file}")
