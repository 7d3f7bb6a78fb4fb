"""Evaluating a Sudoku model board by board: progress, one record per board, resumable totals."""

from __future__ import annotations

import sys
from collections import defaultdict

import torch

from akorn.engine.records import Records
from akorn.experiments.sudoku.data import SudokuSet
from akorn.experiments.sudoku.inference import predict
from akorn.experiments.sudoku.models import SudokuAKOrN


def evaluate_boards(
    model,
    ds: SudokuSet,
    records: Records | None = None,
    progress: bool = True,
    desc: str = "boards",
    **options,
) -> list[dict]:
    """One record per board of ``ds`` (in its order): ``predict(model, ..., **options)`` run on blocks of
    boards, each record written to ``records`` as its block finishes; boards already in ``records``
    (a resumed evaluation) are not run again. Every board's starts depend only on the seed and the
    board's index in its file, so the records do not depend on the blocks."""
    K = options.get("candidates", 1) if isinstance(model, SudokuAKOrN) else 1
    done = records.done if records is not None else {}
    todo = [i for i in range(len(ds)) if int(ds.index[i]) not in done]
    block = max(1, 2 * options.get("chunk", 100) // K)
    got = {key: item for key, item in done.items()}
    from tqdm import tqdm

    bar = tqdm(
        total=len(ds), initial=len(ds) - len(todo), desc=desc, unit="board", disable=not progress, file=sys.stderr
    )
    solved = sum(got[int(ds.index[i])]["solved"] for i in range(len(ds)) if int(ds.index[i]) in got)
    try:
        for start in range(0, len(todo), block):
            sub = ds[torch.tensor(todo[start : start + block])]
            pred = predict(model, sub.quiz, board_index=sub.index, **options)
            for j in range(len(sub)):
                item = board_record(sub, j, pred)
                got[item["index"]] = item
                solved += item["solved"]
                if records is not None:
                    records.write(item)
            bar.update(len(sub))
            bar.set_postfix(solved=f"{100 * solved / max(bar.n, 1):.1f}%")
    finally:
        bar.close()
    return [got[int(i)] for i in ds.index]


def board_record(ds: SudokuSet, j: int, pred) -> dict:
    """What one board ended with: its index in the file, givens, whether it was solved, cells right,
    steps run, the start kept with its energy and confidence, and the digits."""
    quiz, solution, digits = ds.quiz[j].long(), ds.solution[j].long(), pred.digits[j].long()
    blank = quiz == 0
    right = int(((digits == solution) & blank).sum())
    return {
        "index": int(ds.index[j]),
        "givens": int((~blank).sum()),
        "solved": bool((digits == solution).all()),
        "cells_right": right,
        "blanks": int(blank.sum()),
        "cell_acc": right / max(1, int(blank.sum())),
        "steps_run": round(float(pred.board_steps[j]), 3) if pred.board_steps is not None else None,
        "start": int(pred.chosen[j]) if pred.chosen is not None else 0,
        "energy": float(pred.score[j]) if pred.score is not None else None,
        "confidence": float(pred.confidence[j]),
        "valid": bool(pred.valid[j]),
        "digits": "".join(map(str, digits.tolist())),
    }


def summarize(items: list[dict]) -> dict:
    """Board and cell accuracy, by number of givens too, from per-board records."""
    by = defaultdict(list)
    for it in items:
        by[it["givens"]].append(it["solved"])
    steps = [it["steps_run"] for it in items if it.get("steps_run") is not None]
    return {
        "board_acc": sum(it["solved"] for it in items) / max(1, len(items)),
        "cell_acc": sum(it["cells_right"] for it in items) / max(1, sum(it["blanks"] for it in items)),
        "boards": len(items),
        "by_givens": {g: {"boards": len(v), "board_acc": sum(v) / len(v)} for g, v in sorted(by.items())},
        "mean_steps_run": sum(steps) / len(steps) if steps else 0.0,
        "valid_grids": sum(it["valid"] for it in items) / max(1, len(items)),
    }
