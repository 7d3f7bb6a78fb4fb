"""The ``akorn`` command."""
from __future__ import annotations

import argparse
import sys

import akorn
from akorn.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="akorn", description="Artificial Kuramoto Oscillatory Neurons")
    p.add_argument("--version", action="version", version=f"akorn {akorn.__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    from akorn.sudoku import cli as sudoku_cli

    sudoku_cli.add_parser(sub)
    from akorn.objects import cli as objects_cli

    objects_cli.add_parser(sub)
    from akorn.viz import cli as viz_cli

    viz_cli.add_parser(sub)
    d = sub.add_parser("demo", help="solve a few freshly generated SATNet-like puzzles with the shipped Sudoku model")
    d.add_argument("--n", type=int, default=3)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)
    return p


def cmd_demo(args):
    import torch

    from akorn import pretrained
    from akorn.sudoku import data as sdata
    from akorn.sudoku.cli import format_grid, default_steps
    from akorn.sudoku.inference import accuracy, predict
    from akorn.sudoku.solver import is_valid_solution

    model, record = pretrained.load_sudoku()
    print(f"shipped Sudoku AKOrN: {record.get('summary', '')}")
    ds = sdata.generate_set(args.n, (31, 42), seed=args.seed, style="satnet")
    pred = predict(model, ds.quiz, steps=default_steps(model), candidates=16, select="valid", seed=args.seed)
    for q, p in zip(ds.quiz.tolist(), pred.digits.tolist()):
        print("puzzle:")
        print(format_grid(q))
        print("AKOrN's answer: " + ("solved, every rule holds" if is_valid_solution(p, q) else "NOT a valid solution"))
        print(format_grid(p))
        print()
    acc = accuracy(pred.digits, ds.solution, ds.quiz)
    print(f"{100 * acc['board_acc']:.0f}% of {args.n} boards solved")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"akorn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
