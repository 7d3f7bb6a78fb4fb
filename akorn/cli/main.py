"""``akorn``: the table of commands. Each command's module is imported only when it runs, so
``akorn --version`` and ``akorn --help`` answer without loading torch."""

from __future__ import annotations

import importlib
import os
import sys

# OpenMP threads that finish early wait for the others by spinning. On a machine where another
# process also computes, the spinning threads take the cores the working ones need: a compiled
# bf16 Sudoku training step slowed 2.7x beside a 2-thread process with spinning, 2.0x with
# waiting threads asleep (benchmarks/busy_machine.py, docs/speed.md). Set before torch loads;
# a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from akorn import __version__
from akorn.cli.common import Parser, subcommands
from akorn.errors import UserError
from akorn.extras import explain_missing, require

# name -> (module with add_parser(sub), one-line help)
COMMANDS = {
    "sudoku": ("akorn.cli.sudoku", "Sudoku reasoning: train, evaluate, solve, generate puzzles"),
    "objects": ("akorn.cli.objects", "unsupervised object discovery: train, evaluate masks"),
    "classify": ("akorn.cli.classify", "image classification: train, robustness to attacks, corruptions, calibration"),
    "adapters": ("akorn.cli.adapters", "Kuramoto adapters on pretrained backbones; masks on photographs"),
    "text": ("akorn.cli.text", "byte-level language models: train, evaluate against T, sample"),
    "viz": ("akorn.cli.viz", "watch oscillators synchronise: waves, Sudoku dynamics, objects, plots"),
    "demo": ("akorn.cli.demo", "solve a few freshly generated SATNet-like puzzles with the shipped Sudoku model"),
}


def build_parser(argv: list[str]) -> Parser:
    p = Parser(
        prog="akorn",
        description="Artificial Kuramoto Oscillatory Neurons. Options of every command "
        "can be written --name value, --name=value or name=value.",
    )
    p.add_argument("--version", action="version", version=f"akorn {__version__}")
    sub = subcommands(p, dest="command")
    chosen = next((w for w in argv if not w.startswith("-")), None)
    for name, (module, help) in COMMANDS.items():
        if name == chosen:
            importlib.import_module(module).add_parser(sub, name, help)
        else:
            sub.add_parser(name, help=help)
    return p


def _command_words(argv: list[str]) -> list[str]:
    """The command and subcommand named in ``argv`` (``["viz", "waves"]``), for messages."""
    words = []
    for w in argv:
        if w.startswith("-") or "=" in w:
            break
        words.append(w)
        if len(words) == 2:
            break
    return words


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        require(*getattr(args, "extras", ()), what="akorn " + " ".join(_command_words(argv)))
        args.func(args)
    except ModuleNotFoundError as e:
        line = explain_missing(e)
        if line is None:
            raise
        print(f"akorn: error: {line}", file=sys.stderr)
        return 2
    except UserError as e:
        if str(e):
            print(f"akorn: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
