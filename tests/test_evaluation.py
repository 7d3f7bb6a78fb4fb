"""Evaluations a user can follow, audit and resume: starts that depend only on the board, per-board
records, resume after a kill, provenance."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from akorn.engine.records import read_records
from akorn.experiments.model_files import load_model
from akorn.experiments.sudoku import data as sdata
from akorn.experiments.sudoku.inference import predict
from tests.conftest import ROOT
from tests.test_fail_safe import cli, one_line_error

OPTS = dict(steps=6, candidates=3, seed=4)


@pytest.fixture(scope="module")
def model():
    return load_model("pretrained:sudoku-akorn-c128", "sudoku", compile=False).model


@pytest.fixture(scope="module")
def boards():
    return sdata.generate_set(10, (26, 34), seed=3)


def _same(a, b, rows_a=slice(None), rows_b=slice(None)):
    assert torch.equal(a.digits[rows_a], b.digits[rows_b])
    torch.testing.assert_close(a.score[rows_a], b.score[rows_b])
    torch.testing.assert_close(a.confidence[rows_a], b.confidence[rows_b])
    assert torch.equal(a.chosen[rows_a], b.chosen[rows_b])


def test_a_boards_result_does_not_depend_on_the_chunk(model, boards):
    _same(predict(model, boards.quiz, chunk=4, **OPTS), predict(model, boards.quiz, chunk=30, **OPTS))


def test_a_boards_result_does_not_depend_on_the_other_boards_or_their_order(model, boards):
    full = predict(model, boards.quiz, **OPTS)
    part = boards[torch.tensor([7, 2, 5])]
    _same(full, predict(model, part.quiz, board_index=part.index, **OPTS), [7, 2, 5], slice(None))
    first = boards[:4]  # what --limit 4 evaluates
    _same(full, predict(model, first.quiz, board_index=first.index, **OPTS), slice(0, 4), slice(None))


def test_the_selection_rules_compare_the_same_starts(model, boards):
    """Energy and confidence pick among identical trajectories; valid, which may stop a board early,
    solves every board that confidence solves (a valid grid is found whenever confidence's pick is right)."""
    energy = predict(model, boards.quiz, select="energy", **OPTS)
    confidence = predict(model, boards.quiz, select="confidence", **OPTS)
    valid = predict(model, boards.quiz, select="valid", check_every=2, **OPTS)
    assert torch.equal(energy.board_steps, confidence.board_steps)
    solved = lambda p: (p.digits == boards.solution.long()).all(1)  # noqa: E731
    assert bool((solved(valid) | ~solved(confidence)).all())
    # confidence keeps one of the same K starts, so its energy score is never below energy voting's pick
    assert bool((energy.score <= confidence.score + 1e-3).all())
    assert bool((energy.chosen != confidence.chosen).any()) or bool((energy.score == confidence.score).all())


def test_eval_records_every_board_and_a_full_provenance(tmp_path, puzzle_csv):
    out = tmp_path / "r.json"
    code, stdout, err = cli(
        "sudoku", "eval", "pretrained:sudoku-akorn-c128", "--data", puzzle_csv, "--limit", "6", "--steps", "4",
        "--candidates", "2", "--json", out, "--show-failures", "1",
    )  # fmt: skip
    assert code == 0, err
    rep = json.loads(out.read_text())
    for key in ("model", "model_record", "data", "data_sha256", "steps", "candidates", "select", "precision",
                "compile", "chunk", "seed", "akorn_version", "torch_version", "device", "seconds"):  # fmt: skip
        assert key in rep, key
    header, items = read_records(tmp_path / "r.records.jsonl")
    assert header["data_sha256"] == rep["data_sha256"] and [it["index"] for it in items] == list(range(6))
    assert {"givens", "solved", "cell_acc", "steps_run", "start", "energy", "confidence"} <= set(items[0])
    assert rep["board_acc"] == sum(it["solved"] for it in items) / 6
    if rep["board_acc"] < 1:
        assert "the model's answer | the solution" in stdout


def test_an_interrupted_eval_resumes_to_the_same_totals(tmp_path, puzzle_csv):
    args = ["sudoku", "eval", "pretrained:sudoku-akorn-c128", "--data", puzzle_csv, "--steps", "24",
            "--candidates", "6", "--chunk", "6", "--quiet"]  # fmt: skip
    code, _, err = cli(*args, "--json", tmp_path / "whole.json")
    assert code == 0, err
    records = tmp_path / "cut.records.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "akorn", *args, "--json", tmp_path / "cut.json"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and records.read_text().count("\n") >= 4:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = read_records(records)[1]
    assert 0 < len(kept) < 40, len(kept)
    code, _, err = cli(*args, "--json", tmp_path / "cut.json", "--resume")
    assert code == 0, err
    whole, cut = json.loads((tmp_path / "whole.json").read_text()), json.loads((tmp_path / "cut.json").read_text())
    for key in ("board_acc", "cell_acc", "boards", "by_givens", "valid_grids"):
        assert whole[key] == cut[key], key
    a, b = read_records(tmp_path / "whole.records.jsonl")[1], read_records(records)[1]
    assert sorted(a, key=lambda it: it["index"]) == sorted(b, key=lambda it: it["index"])

    # records of another evaluation are refused, naming the difference, and left as they are
    before = records.read_text()
    code, _, err = cli(*[a if a != "24" else "16" for a in args], "--json", tmp_path / "cut.json", "--resume")
    one_line_error(code, err, "another evaluation", "steps is 24 there, 16 now")
    assert records.read_text() == before
