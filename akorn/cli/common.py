"""One convention for every command.

Every option can be written as ``--name value``, ``--name=value`` or ``name=value`` (dashes
and underscores alike), and ``train`` commands take their config fields the same three ways.
Spellings that were renamed keep working, with a one-line notice on stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

MODEL_HELP = "a run folder, pretrained[:NAME], NAME.safetensors (with NAME.json) or a .pth of the authors' code"
DEVICE_HELP = "cpu, cuda, cuda:N, mps, or auto (a GPU when there is one; default)"
_WORD = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)=(.*)$", re.S)


class Parser(argparse.ArgumentParser):
    """An argument parser that accepts ``name=value`` for ``--name value`` and knows renamed options.

    ``config_words``: the parser collects ``name=value`` config overrides (a training command), so
    ``--name value`` words that are not its own options become overrides too. Options may stand
    anywhere among positional words.
    """

    def __init__(self, *args, config_words: bool = False, **kwargs):
        self.config_words = config_words
        self.flags: dict[str, bool] = {}  # option -> takes a value
        self.renamed: dict[str, str] = {}  # old option -> new option
        self.has_subcommands = False
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs):
        self.has_subcommands = True
        return super().add_subparsers(**kwargs)

    def add_argument(self, *names, renamed_from: tuple[str, ...] = (), **kwargs):
        action = super().add_argument(*names, **kwargs)
        for name in action.option_strings:
            self.flags[name] = action.nargs != 0
        for old in renamed_from:
            self.renamed[old] = action.option_strings[0]
        return action

    def _canonical(self, flag: str) -> str | None:
        """The option a spelling stands for (``--check_every`` -> ``--check-every``), or None."""
        if flag not in self.renamed:
            flag = flag.replace("_", "-")
        if flag in self.renamed:
            new = self.renamed[flag]
            print(f"akorn: {flag} is deprecated, use {new}", file=sys.stderr)
            return new
        return flag if flag in self.flags else None

    def rewrite(self, words: list[str]) -> list[str]:
        """Every option spelled ``--name [value]`` and put first, the other words after in their order
        (so options may follow a list of positional words). A parser with subcommands reads only the
        words before the subcommand's name: the rest, ``--help`` included, belong to the subcommand."""
        options: list[str] = []
        rest: list[str] = []
        i = 0
        while i < len(words):
            w = words[i]
            i += 1
            if self.has_subcommands and not w.startswith("-"):
                rest += words[i - 1 :]
                break
            if self.has_subcommands and w.startswith("--") and self._canonical(w.partition("=")[0]) is None:
                self.error(f"unrecognized arguments: {w}")
            if w == "--":
                rest += words[i - 1 :]
                break
            if w.startswith("--") and len(w) > 2:
                name, eq, value = w.partition("=")
                flag = self._canonical(name)
                if flag is not None:
                    got = [flag + eq + value]
                    if not eq and self.flags[flag] and i < len(words):
                        got.append(words[i])  # the option's value, taken as it is
                        i += 1
                    options += got
                elif self.config_words:
                    if not eq and i < len(words):
                        value = words[i]
                        i += 1
                    rest.append(f"{name[2:].replace('-', '_')}={value}")
                else:
                    rest.append(w)
                continue
            m = _WORD.match(w)
            flag = self._canonical("--" + m.group(1)) if m else None
            if flag is None:
                rest.append(w)
            elif self.flags[flag]:
                options += [flag, m.group(2)]
            elif _truthy(m.group(2), w):
                options.append(flag)
        return options + rest

    def parse_known_args(self, args=None, namespace=None):
        words = sys.argv[1:] if args is None else list(args)
        known, extras = super().parse_known_args(self.rewrite(words), namespace)
        if extras and not self.has_subcommands:
            # a command's own parser names what it does not know, with its own usage
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return known, extras


def _truthy(value: str, word: str) -> bool:
    v = value.lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"akorn: error: {word}: a switch takes true or false")


def add_quiet_option(parser):
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (none either when stderr is not a terminal)"
    )


def show_progress(args) -> bool:
    """A progress bar unless ``--quiet`` or stderr is not a terminal (a log file, a pipe)."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def is_first_process() -> bool:
    """Rank 0 under torchrun (or a single process): the one that prints for all."""
    return os.environ.get("RANK", "0") == "0"


def subcommands(parser: argparse.ArgumentParser, dest: str = "action"):
    """Sub-commands whose parsers are :class:`Parser` instances."""
    return parser.add_subparsers(dest=dest, required=True, parser_class=Parser)


def train_parser(sub, name: str, help: str):
    """A training command: config fields as ``key=value`` or ``--key value``, ``--config FILE``, ``--resume``."""
    t = sub.add_parser(
        name,
        help=help,
        config_words=True,
        description=help + ". Config fields as key=value or --key value, in any order.",
    )
    t.add_argument("--config", help="YAML file of key: value overrides (the command line wins)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.add_argument("overrides", nargs="*", help="config fields, key=value")
    return t


def run_training(args, experiment):
    """A training command's work: the config (defaults <- preset <- file <- words, or the resumed run's
    config <- words), the training, and the run folder printed by the first process."""
    from pathlib import Path

    from akorn.engine.config import from_dict, resolve
    from akorn.engine.trainer import RunFolder, train

    cls = experiment.config_cls
    base = None
    if args.resume:
        base = from_dict(cls, RunFolder(Path(args.resume)).read_config(experiment), args.resume)
    cfg = resolve(cls, args.overrides, args.config, experiment.presets, base=base)
    run = train(experiment, cfg, resume=args.resume)
    if is_first_process():
        print(f"run folder: {run}")


def add_export_parser(sub, experiment: str):
    """``akorn EXPERIMENT export``: the same flags for every experiment."""
    x = sub.add_parser("export", help="a run's EMA weights and JSON record as a stored model")
    x.add_argument("run", help="run folder")
    x.add_argument("--out", required=True, help="NAME: writes NAME.safetensors and NAME.json")
    x.add_argument(
        "--dtype",
        choices=["fp32", "fp16"],
        default="fp32",
        help="storage type of the floating-point weights (fp16 halves the file; loading casts back)",
    )
    x.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="JSON",
        help=f"an eval report (from 'akorn {experiment} eval --json') to keep in the record; may repeat",
    )
    x.add_argument("--summary", default="", help="one line describing the model")
    x.add_argument(
        "--eval-steps",
        type=int,
        default=0,
        metavar="T",
        renamed_from=("--test-steps",),
        help="recommended Kuramoto steps at test time, recorded for eval and solve (0: the training T)",
    )
    x.set_defaults(func=cmd_export, experiment=experiment)
    return x


def cmd_export(args):
    from akorn.experiments.model_files import export_model

    weights, record = export_model(args.run, args.experiment, args.out, dtype=args.dtype, evals=args.eval,
                                   summary=args.summary, eval_steps=args.eval_steps)  # fmt: skip
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB) and {record}")


def write_imported(loaded, out: str, summary: str, eval_steps: int = 0):
    """Store a model converted from the authors' code as ``out``.safetensors + ``out``.json."""
    from akorn.experiments.model_files import write_model

    record = {"imported_from": loaded.source, "summary": summary, "eval_steps": eval_steps or loaded.steps}
    weights, record_file = write_model(loaded.model, loaded.config, loaded.experiment.name, out, record)
    print(f"wrote {weights} and {record_file}: {summary}; evaluate it with "
          f"akorn {loaded.experiment.name} eval {weights}")  # fmt: skip
