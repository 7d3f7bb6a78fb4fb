"""``akorn demo``: the shipped Sudoku model solving a few freshly generated puzzles."""

from __future__ import annotations


def add_parser(sub, name: str, help: str):
    d = sub.add_parser(name, help=help)
    d.add_argument("--n", type=int, default=3, help="puzzles to solve")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)


def cmd_demo(args):
    from akorn.errors import UserError
    from akorn.experiments.model_files import load_model
    from akorn.experiments.sudoku import data as sdata
    from akorn.experiments.sudoku.data import format_grid
    from akorn.experiments.sudoku.inference import accuracy, predict
    from akorn.experiments.sudoku.solver import is_valid_solution

    if args.n < 1:
        raise UserError(f"--n must be a positive number of puzzles, got {args.n}")
    loaded = load_model("pretrained", "sudoku", compile=False)
    print(f"shipped Sudoku AKOrN: {loaded.record.get('summary', '')}")
    ds = sdata.generate_set(args.n, (31, 42), seed=args.seed, style="satnet")
    pred = predict(loaded.model, ds.quiz, steps=loaded.steps, candidates=16, select="valid", seed=args.seed)
    for q, p in zip(ds.quiz.tolist(), pred.digits.tolist()):
        print("puzzle:")
        print(format_grid(q))
        print("AKOrN's answer: " + ("solved, every rule holds" if is_valid_solution(p, q) else "NOT a valid solution"))
        print(format_grid(p))
        print()
    acc = accuracy(pred.digits, ds.solution, ds.quiz)
    print(f"{100 * acc['board_acc']:.0f}% of {args.n} boards solved")
