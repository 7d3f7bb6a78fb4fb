"""The Sudoku model shipped inside the package: small, loadable without pickles, and the demo runs."""

from importlib import resources

import pytest

from akorn.experiments.model_files import load_model, shipped_names
from akorn.experiments.sudoku import data as sdata
from akorn.experiments.sudoku.solver import is_valid_solution
from tests.conftest import run_cli

pytestmark = pytest.mark.skipif("sudoku-akorn" not in shipped_names(), reason="no shipped weights in this checkout")


def test_shipped_model_is_small_and_documented():
    w = resources.files("akorn") / "weights" / "sudoku-akorn.safetensors"
    assert w.stat().st_size <= 10 * 1024 * 1024
    loaded = load_model("pretrained", "sudoku")
    model, record = loaded.model, loaded.record
    assert record["config"]["model"] == "akorn" and record["training_commands"]
    assert sum(p.numel() for p in model.parameters()) > 0


def test_demo_and_solve_with_shipped_model(puzzle_csv):
    r = run_cli("demo", "--n", "2")
    assert r.returncode == 0, r.stderr
    assert "boards solved" in r.stdout
    quizzes = [line.split(",")[0] for line in puzzle_csv.read_text().splitlines()[:3]]
    r = run_cli("sudoku", "solve", "--plain", *quizzes)
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    for q, line in zip(quizzes, lines):
        grid = [int(ch) for ch in line[:81]]
        # a line is either a valid solution of its quiz, or it says plainly that it is not
        assert is_valid_solution(grid, sdata.parse_grid(q)) or "INVALID" in line
    assert r.returncode in (0, 1)


def test_shipped_models_run_at_their_recommended_even_t():
    for name in ("pretrained:sudoku-akorn", "pretrained:c128"):
        loaded = load_model(name, "sudoku")
        record = loaded.record
        # These models read the board out after an even number of steps (docs/sudoku.md: period two).
        assert loaded.steps == record["eval_steps"] and record["eval_steps"] % 2 == 0
        assert record["eval_steps"] != loaded.model.steps


def test_the_cpu_trained_model_is_shipped_beside_it():
    assert {"sudoku-akorn", "sudoku-akorn-c128"} <= set(shipped_names())
    assert load_model("pretrained:sudoku-akorn-c128").config.channels == 128  # the experiment read off its record
    big = load_model("pretrained", "sudoku").model
    assert sum(p.numel() for p in big.parameters()) > 2_500_000  # the authors' C=512 architecture


def test_the_tetrominoes_model_is_shipped_and_segments(tmp_path):
    import json

    w = resources.files("akorn") / "weights" / "tetrominoes-akorn.safetensors"
    assert "tetrominoes-akorn" in shipped_names() and w.stat().st_size <= 5 * 1024 * 1024
    loaded = load_model("pretrained:tetrominoes", "objects")
    cfg, record = loaded.config, loaded.record
    assert record["fp16"] and cfg.channels == 128 and record["report"]["uptile"] == 4
    r = run_cli("objects", "eval", "pretrained:tetrominoes", "--limit", "16", "--json", tmp_path / "r.json",
                cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    # a trained model: far above what the untrained model gives (0.33 on these 16 scenes)
    assert report["images"] == 16 and report["fg_ari_mean"] > 0.6
    r = run_cli("viz", "objects", "pretrained:tetrominoes", "--out", tmp_path / "viz")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "viz" / "index.html").exists()
