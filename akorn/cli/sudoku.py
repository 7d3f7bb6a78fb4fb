"""``akorn sudoku ...``: train, eval, solve, generate, download, extension."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

import akorn
from akorn.cli.common import (
    DEVICE_HELP,
    add_export_parser,
    add_quiet_option,
    run_training,
    show_progress,
    subcommands,
    train_parser,
    write_imported,
)
from akorn.engine.files import (
    check_output_file,
    decode_lines,
    ensure_writable_dir,
    read_text_lines,
    write_text_atomically,
)
from akorn.errors import UserError
from akorn.experiments.model_files import load_model
from akorn.experiments.sudoku.data import format_grid
from akorn.experiments.sudoku.inference import SELECTS
from akorn.extras import install_hint


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help)
    s = subcommands(p)
    train_parser(s, "train", "train a Sudoku model (e.g. preset=cpu epochs=5)").set_defaults(func=cmd_train)
    _add_eval(s)
    _add_solve(s)
    _add_generate(s)
    _add_download(s)
    _add_import(s)
    add_export_parser(s, "sudoku")
    _add_extension(s)


def _add_eval(s):
    e = s.add_parser("eval", help="evaluate a run's checkpoint (EMA weights) from its folder alone")
    e.add_argument("run", help="run folder, or 'pretrained' for the shipped model ('pretrained:NAME' for another)")
    e.add_argument("--data", required=True, help="CSV, SATNet/RRN folder or generate:N:LO-HI[:SEED[:STYLE]]")
    e.add_argument("--split", default="test", help="split of a SATNet/RRN folder (default test)")
    e.add_argument("--steps", type=int, default=None, renamed_from=("--T",), help=STEPS_HELP)
    e.add_argument(
        "--candidates", type=int, default=1, renamed_from=("--K",), help="random initial states per board (K)"
    )
    e.add_argument("--select", choices=SELECTS, default="energy", help=SELECT_HELP)
    e.add_argument("--energy", choices=["sum", "last"], default="sum", help="energy over steps used for voting")
    add_exit_options(e)
    e.add_argument("--limit", type=int, default=0, help="evaluate the first N boards only")
    e.add_argument(
        "--per-givens",
        type=int,
        default=0,
        metavar="N",
        help="evaluate the first N boards of every number of givens (a stratified subset)",
    )
    e.add_argument("--chunk", type=int, default=100, help="rows (boards x candidates) per forward pass")
    e.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    e.add_argument("--device", default="auto", help=DEVICE_HELP)
    e.add_argument("--compile", action="store_true", help="torch.compile the Kuramoto step (pays off for long runs)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--step", type=int, default=None, help="the checkpoint of this step (default: the latest)")
    e.add_argument("--json", help="also write the report to this JSON file")
    e.add_argument(
        "--records",
        metavar="FILE.jsonl",
        help="one line per board as it finishes (default with --json: beside it, NAME.records.jsonl)",
    )
    e.add_argument(
        "--resume",
        action="store_true",
        help="skip the boards already in the records file (an interrupted evaluation) and add the rest",
    )
    e.add_argument("--show-failures", type=int, default=0, metavar="N", help="print the first N boards got wrong")
    add_quiet_option(e)
    e.add_argument("overrides", nargs="*", help="key=value overrides of the run's config (rarely needed)")
    e.set_defaults(func=cmd_eval)


def _add_solve(s):
    v = s.add_parser("solve", help="solve puzzles (81 chars, 0 or . for blanks) from arguments, --file or stdin")
    v.add_argument("puzzles", nargs="*")
    v.add_argument("--file", help="file of puzzles, one a line ('-' for stdin)")
    v.add_argument("--model", default="pretrained", help="run folder or 'pretrained'")
    v.add_argument("--steps", type=int, default=None, renamed_from=("--T",), help=STEPS_HELP)
    v.add_argument("--candidates", type=int, default=16, renamed_from=("--K",), help="random starts per puzzle (K)")
    v.add_argument("--select", choices=SELECTS, default="valid", help=SELECT_HELP)
    add_exit_options(v)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--plain", action="store_true", help="print solutions as 81-character lines")
    v.add_argument("--device", default="auto", help=DEVICE_HELP)
    v.set_defaults(func=cmd_solve)


def _add_generate(s):
    g = s.add_parser("generate", help="generate puzzles with unique solutions as quiz,solution CSV")
    g.add_argument("n", type=int)
    g.add_argument("--givens", default="31-42", help="range of clue counts, e.g. 31-42 (SATNet) or 17-34 (RRN)")
    g.add_argument(
        "--style",
        default="unique",
        choices=["unique", "singles", "satnet"],
        help="unique: any unique puzzle (often needs search); singles: naked singles solve it; "
        "satnet: as easy as the SATNet boards (naked singles in SATNet's number of rounds)",
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True, help="output CSV (.csv, .csv.xz or .csv.gz)")
    g.set_defaults(func=cmd_generate)


def _add_download(s):
    d = s.add_parser("download", help="download the SATNet or RRN data set (needs internet)")
    d.add_argument("name", choices=["satnet", "rrn"])
    d.add_argument("--data-dir", default="data")
    d.set_defaults(func=cmd_download)


def _add_import(s):
    im = s.add_parser(
        "import", help="convert a Sudoku AKOrN checkpoint of the authors' code (ema_*.pth) into a stored model"
    )
    im.add_argument("checkpoint", help="their ema_<epoch>.pth, ema_model.pth or model.pth")
    im.add_argument("--out", required=True, help="output path without extension: writes OUT.safetensors and OUT.json")
    im.add_argument("--steps", type=int, default=16, help="T their model was trained with (their --T; default 16)")
    im.add_argument("--eval-steps", type=int, default=0, metavar="T", help="recommended T at test time (0: --steps)")
    im.set_defaults(func=cmd_import)


def _add_extension(s):
    x = s.add_parser("extension", help="board accuracy against T_eval for one or more runs (table and plot)")
    x.add_argument("runs", nargs="+", help="run folders (or 'pretrained')")
    x.add_argument("--data", required=True)
    x.add_argument("--split", default="test")
    x.add_argument(
        "--steps",
        default="16,32,64,128,256,512",
        renamed_from=("--T",),
        help="comma-separated numbers of Kuramoto steps to evaluate at",
    )
    x.add_argument("--limit", type=int, default=0)
    x.add_argument("--per-givens", type=int, default=0, metavar="N", help="first N boards of every number of givens")
    x.add_argument("--out", default="extension", help="output folder for table.md, results.json, plot.png")
    x.add_argument("--chunk", type=int, default=100, help="boards per forward pass")
    x.add_argument("--seed", type=int, default=0)
    add_quiet_option(x)
    x.add_argument("--device", default="auto", help=DEVICE_HELP)
    x.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: autocast on the projections (the oscillator state stays float32)",
    )
    x.set_defaults(func=cmd_extension)


STEPS_HELP = "Kuramoto steps T at test time (default: a shipped model's recommended T, else as trained)"
SELECT_HELP = (
    "which start's answer to keep: energy = the lowest energy (the paper's voting); confidence = the "
    "most confident readout; valid = a grid that obeys every rule, the board stopping at the first "
    "one (the most confident start when none does)"
)


def add_exit_options(p):
    p.add_argument(
        "--tol",
        type=float,
        default=0.0,
        help="early exit: a candidate stops once no element of its state moves by this much in one step",
    )
    p.add_argument(
        "--stable",
        type=int,
        default=0,
        metavar="S",
        help="early exit: a candidate stops once its digits have not changed for S steps, counted in "
        "whole check intervals (0: off)",
    )
    p.add_argument(
        "--check-every",
        type=int,
        default=8,
        metavar="N",
        help="steps between the readouts that --stable and --select valid look at (default 8; keep it "
        "even for models that read out after even steps)",
    )


def cmd_train(args):
    from akorn.experiments.sudoku.experiment import SudokuExperiment

    run_training(args, SudokuExperiment())


def check_inference_args(args):
    """Positive K, T, chunk and check interval, non-negative --stable and --tol, or a one-line error
    (before any model is loaded)."""
    for name in ("candidates", "steps", "chunk", "check_every"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {v}")
    check_board_counts(getattr(args, "limit", 0), getattr(args, "per_givens", 0))
    if getattr(args, "stable", 0) < 0:
        raise UserError(f"--stable must be 0 (off) or a positive number of steps, got {args.stable}")
    tol = getattr(args, "tol", 0.0)
    if not tol >= 0 or tol == float("inf"):
        raise UserError(f"--tol must be 0 (off) or a positive number, got {tol}")


def check_board_counts(limit: int, per_givens: int):
    for name, v in (("limit", limit), ("per-givens", per_givens)):
        if v < 0:
            raise UserError(f"--{name} must be 0 (all) or a positive number of boards, got {v}")


def _inference_options(args, recommended_steps: int) -> dict:
    """``predict``'s options from the command line (``solve`` has no --energy, --chunk or --precision)."""
    return dict(
        steps=args.steps or recommended_steps,
        candidates=args.candidates,
        select=args.select,
        energy_reduce=getattr(args, "energy", "sum"),
        chunk=getattr(args, "chunk", 100),
        tol=args.tol,
        seed=args.seed,
        precision=getattr(args, "precision", "fp32"),
        stable=args.stable,
        check_every=args.check_every,
    )


def _records_path(args) -> Path | None:
    if args.records:
        return Path(args.records)
    if args.json:
        return Path(args.json).with_suffix(".records.jsonl")
    return None


def cmd_eval(args):
    import platform

    from akorn.engine.records import Records, file_checksum
    from akorn.experiments.sudoku import data as sdata
    from akorn.experiments.sudoku.evaluation import evaluate_boards, summarize

    check_inference_args(args)
    if args.show_failures < 0:
        raise UserError(f"--show-failures must be 0 or a positive number of boards, got {args.show_failures}")
    if args.json:
        check_output_file(args.json, "--json file")
    records_path = _records_path(args)
    if args.resume and records_path is None:
        raise UserError("--resume needs the records of the interrupted evaluation: give --records FILE or --json")
    loaded = load_model(args.run, "sudoku", words=args.overrides, compile=args.compile, device=args.device,
                        step=args.step)  # fmt: skip
    model = loaded.model
    record = {**loaded.describe(), "model": loaded.config.model}
    if "run" in loaded.record:
        record["config"] = vars(loaded.config)
    ds = sdata.load(args.data, args.split)
    if args.per_givens:
        ds = sdata.stratified(ds, args.per_givens)
    if args.limit:
        ds = ds[: args.limit]
    options = _inference_options(args, loaded.steps)
    data_path = Path(args.data)
    header = {
        "model": args.run,
        "model_record": record,
        "data": args.data,
        "data_sha256": file_checksum(data_path) if data_path.exists() else None,
        "split": args.split,
        **{k: v for k, v in options.items() if k != "chunk"},
    }
    records = Records(records_path, header, resume=args.resume) if records_path else None
    t0 = time.time()
    try:
        items = evaluate_boards(model, ds, records, progress=show_progress(args), **options)
    finally:
        if records is not None:
            records.close()
    rep = summarize(items)
    device = next(model.parameters()).device
    rep.update(
        seconds=round(time.time() - t0, 2),
        **header,
        chunk=args.chunk,
        compile=args.compile,
        step=args.step,
        run=args.run,
        device=str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        cpu=platform.processor() or platform.machine(),
        threads=torch.get_num_threads(),
        akorn_version=akorn.__version__,
        torch_version=torch.__version__,
        records=str(records_path) if records_path else None,
    )
    _print_report(rep, items, ds, args)
    if args.json:
        write_text_atomically(args.json, json.dumps(rep, indent=2), "--json file")


def _print_report(rep: dict, items: list, ds, args):
    print(
        f"boards {rep['boards']}  steps={rep['steps']}  candidates={rep['candidates']}  select={rep['select']}  "
        f"({rep['seconds']} s, {rep['mean_steps_run']:.1f} steps per start)"
    )
    print(
        f"board accuracy {100 * rep['board_acc']:.2f}%   cell accuracy {100 * rep['cell_acc']:.2f}%   "
        f"grids obeying the rules {100 * rep['valid_grids']:.2f}%"
    )
    print("givens  boards  board_acc")
    for g, r in rep["by_givens"].items():
        print(f"{g:6d}  {r['boards']:6d}  {100 * r['board_acc']:8.2f}%")
    if args.show_failures:
        wrong = [(i, it) for i, it in enumerate(items) if not it["solved"]][: args.show_failures]
        for i, it in wrong:
            print(
                f"\nboard {it['index']} of {args.data} ({it['givens']} givens), got {100 * it['cell_acc']:.1f}% "
                "of its blanks; the model's answer | the solution:"
            )
            answer = format_grid([int(d) for d in it["digits"]]).splitlines()
            truth = format_grid(ds.solution[i].tolist()).splitlines()
            print("\n".join(f"{a}    {b}" for a, b in zip(answer, truth)))


def cmd_solve(args):
    from akorn.experiments.sudoku import data as sdata
    from akorn.experiments.sudoku.inference import predict
    from akorn.experiments.sudoku.solver import is_valid_solution

    check_inference_args(args)
    lines = list(args.puzzles)
    source = "argument"
    if args.file:
        source = "stdin" if args.file == "-" else args.file
        if args.file == "-":
            lines += decode_lines(sys.stdin.buffer.read(), "stdin")
        else:
            lines += read_text_lines(args.file, "puzzle file")
    elif not lines and not sys.stdin.isatty():
        source = "stdin"
        lines = decode_lines(sys.stdin.buffer.read(), "stdin")
    grids, errors = sdata.read_puzzles(lines, source)
    if not grids:
        raise UserError(
            f"no puzzles in {source if source != 'argument' else 'the arguments'}: give 81-character puzzles "
            "as arguments, with --file, or on stdin (blank lines and # comments are skipped)"
        )
    good = [g for g in grids if g is not None]
    digits = None
    if good:
        loaded = load_model(args.model, "sudoku", compile=False, device=args.device)
        digits = predict(loaded.model, torch.tensor(good), **_inference_options(args, loaded.steps)).digits.tolist()
    it = iter(digits or [])
    n_bad = 0
    for i, (g, err) in enumerate(zip(grids, errors), 1):
        if g is None:
            print(f"puzzle {i}: not solved: {err}")
            n_bad += 1
            continue
        sol = next(it)
        ok = is_valid_solution(sol, g)
        if args.plain:
            print("".join(map(str, sol)) + ("" if ok else "  # INVALID: the network's answer breaks the rules"))
            n_bad += not ok
            continue
        print(f"puzzle {i}: " + ("solved" if ok else "NOT solved: the network's answer breaks the rules (shown below)"))
        print(format_grid(sol))
        print()
        n_bad += not ok
    if n_bad:
        sys.exit(1)


def cmd_generate(args):
    from akorn.experiments.sudoku import data as sdata

    try:
        lo, hi = (int(v) for v in args.givens.split("-"))
    except ValueError:
        raise UserError(f"--givens must look like 31-42, got {args.givens!r}") from None
    if not 17 <= lo <= hi <= 80:
        raise UserError(f"--givens must satisfy 17 <= LO <= HI <= 80, got {args.givens}")
    t0 = time.time()
    ds = sdata.generate_set(args.n, (lo, hi), args.seed, args.style)
    dt = time.time() - t0
    sdata.write_csv(ds, args.out)
    print(f"{args.n} {args.style} puzzles ({lo}-{hi} givens) in {dt:.1f} s: {args.n / dt:.1f} puzzles/s -> {args.out}")


def cmd_download(args):
    from akorn.experiments.sudoku import data as sdata

    print(sdata.download(args.name, args.data_dir))


def cmd_extension(args):
    from akorn.experiments.sudoku import data as sdata
    from akorn.experiments.sudoku.evaluation import evaluate_boards, summarize

    try:
        ts = [int(t) for t in args.steps.split(",")]
    except ValueError:
        raise UserError(f"--steps must be comma-separated positive integers, got {args.steps!r}") from None
    check_board_counts(args.limit, args.per_givens)
    if min(ts) < 1 or args.chunk < 1:
        raise UserError(f"--steps values and --chunk must be positive, got --steps {args.steps} --chunk {args.chunk}")
    ds = sdata.load(args.data, args.split)
    if args.per_givens:
        ds = sdata.stratified(ds, args.per_givens)
    if args.limit:
        ds = ds[: args.limit]
    out = ensure_writable_dir(args.out)
    results, cells = {}, {}
    for spec in args.runs:
        loaded = load_model(spec, "sudoku", compile=False, device=args.device)
        model = loaded.model
        label = f"{loaded.config.model} ({Path(spec).name})"
        results[label], cells[label] = {}, {}
        for T in ts:
            items = evaluate_boards(
                model,
                ds,
                progress=show_progress(args),
                desc=f"{label} T={T}",
                steps=T,
                chunk=args.chunk,
                precision=args.precision,
                seed=args.seed,
            )
            acc = summarize(items)
            results[label][T], cells[label][T] = acc["board_acc"], acc["cell_acc"]
            print(f"{label}  T={T}  board {100 * acc['board_acc']:.2f}%  cell {100 * acc['cell_acc']:.2f}%", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "cell_results.json").write_text(json.dumps(cells, indent=2))
    rows = [
        f"{len(ds)} boards from {args.data}, {args.precision}; board accuracy % (cell accuracy % over blanks)",
        "",
        "| model | " + " | ".join(f"T={t}" for t in ts) + " |",
        "|" + "---|" * (len(ts) + 1),
    ]
    for label in results:
        rows.append(
            f"| {label} | "
            + " | ".join(f"{100 * results[label][t]:.1f} ({100 * cells[label][t]:.1f})" for t in ts)
            + " |"
        )
    (out / "table.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    try:
        from akorn.viz.plots import plot_accuracy_vs_steps

        plot_accuracy_vs_steps(results, out / "plot.png")
        plot_accuracy_vs_steps(cells, out / "plot-cells.png", ylabel="cell accuracy over blanks (%)")
    except ImportError:
        print(f"matplotlib not installed: no plot written ({install_hint('viz')})")


def cmd_import(args):
    if args.steps < 1 or args.eval_steps < 0:
        raise UserError(f"--steps must be positive and --eval-steps non-negative, got {args.steps}, {args.eval_steps}")
    loaded = load_model(args.checkpoint, "sudoku", words=[f"steps={args.steps}"], compile=False)
    c = loaded.config
    summary = (f"imported from the authors' code ({Path(args.checkpoint).name}): C={c.channels}, N={c.n}, "
               f"{c.heads} heads, T={c.steps}")  # fmt: skip
    write_imported(loaded, args.out, summary, args.eval_steps)
