"""Property-based tests: random malformed puzzles, files, images and configs never end in a traceback."""

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akorn.engine.config import resolve
from akorn.engine.files import decode_lines
from akorn.engine.trainer import RunFolder
from akorn.errors import UserError
from akorn.experiments.sudoku import data as sdata
from akorn.experiments.sudoku.experiment import PRESETS, SudokuConfig
from tests.test_fail_safe import QUIZ, cli

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PUZZLE_CHARS = "0123456789.,# \t\x0c\x1c\x1d\x1e\x85\u2028xé"
lines = st.text(alphabet=PUZZLE_CHARS, max_size=100)
# puzzle-like lines: mostly 81 characters, so that the checks past the length are reached too
near_puzzles = st.one_of(lines, st.text(alphabet="0123456789.", min_size=81, max_size=81), st.just(QUIZ))


@FAST
@given(st.lists(near_puzzles, max_size=8))
def test_the_puzzle_reader_names_every_bad_line_and_keeps_the_good_ones(batch):
    grids, errors = sdata.read_puzzles(batch, "f")
    assert len(grids) == len(errors)
    for g, e in zip(grids, errors):
        assert (g is None) != (e is None)
        if g is not None:
            assert len(g) == 81 and all(0 <= d <= 9 for d in g)
        else:
            assert e.startswith("f:") and "\n" not in e and len(e) < 300
    numbered = [int(e.split(":")[1]) for e in errors if e]
    assert numbered == sorted(numbered) and all(1 <= n <= len(batch) for n in numbered)


@FAST
@given(st.binary(max_size=400))
def test_decoding_any_bytes_gives_lines_or_one_line_error(data):
    try:
        out = decode_lines(data, "f")
    except UserError as e:
        assert "\n" not in str(e)
    else:
        assert all("\n" not in line for line in out)


@FAST
@given(st.binary(max_size=300))
def test_any_file_as_a_sudoku_csv_is_read_or_refused_in_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("csv") / "boards.csv"
    path.write_bytes(data)
    try:
        ds = sdata.read_csv(path)
    except UserError as e:
        assert "\n" not in str(e)
    else:
        assert ds.quiz.shape[1:] == (81,)


FIELDS = [f.name for f in dataclasses.fields(SudokuConfig)]
values = st.one_of(
    st.integers(-5, 600).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "true", "no", "none", "akorn", "x", "[1,2]", "1e309", "-0"]),
)


@FAST
@given(st.lists(st.tuples(st.sampled_from(FIELDS + ["bogus", "preset"]), values), max_size=5))
def test_random_configs_are_accepted_only_when_valid(words):
    try:
        cfg = resolve(SudokuConfig, ["preset=tiny", *(f"{k}={v}" for k, v in words)], presets=PRESETS)
    except UserError as e:
        assert "\n" not in str(e)
    else:
        cfg.validate()
        assert cfg.lr > 0 and cfg.epochs >= 1 and cfg.channels % cfg.heads == 0


@FAST
@given(st.binary(max_size=600))
def test_any_bytes_as_an_image_load_or_give_one_line(tmp_path_factory, data):
    from akorn.viz import waves

    path = tmp_path_factory.mktemp("img") / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data if data[:1] == b"\x00" else data)
    try:
        img = waves.load_image(path, 16)
    except UserError as e:
        assert "\n" not in str(e)
    else:
        assert img.shape == (16, 16, 3) and np.isfinite(img).all() and img.min() >= 0 and img.max() <= 1


@FAST
@given(st.lists(st.text(alphabet='{}[]":,0123456789 stepabc\n', max_size=40), max_size=4))
def test_a_damaged_metrics_file_is_read_or_refused_in_one_line(tmp_path_factory, tail):
    run = tmp_path_factory.mktemp("run")
    good = [json.dumps({"step": s, "split": "train", "loss": 1.0 / s}) for s in (1, 2)]
    (run / "metrics.jsonl").write_text("".join(g + "\n" for g in good) + "\n".join(tail))
    try:
        records = RunFolder(run).read_metrics()
    except UserError as e:
        assert "\n" not in str(e)
    else:
        assert records[:2] == [json.loads(g) for g in good]


@pytest.mark.parametrize("seed", range(2))
@settings(max_examples=6, deadline=None)
@given(st.lists(near_puzzles, min_size=1, max_size=4), st.integers(0, 4))
def test_solve_handles_the_good_puzzles_of_a_batch_and_names_the_bad_ones(seed, batch, where):
    batch = batch[:where] + [QUIZ] + batch[where:]
    code, out, err = cli("sudoku", "solve", "--model", "pretrained:sudoku-akorn-c128", "--steps", "2",
                         "--candidates", "1", "--seed", seed, *batch)  # fmt: skip
    assert "Traceback" not in err
    grids, errors = sdata.read_puzzles(batch, "argument")
    assert code == (1 if any(errors) else code) and code in (0, 1), err
    said = [line for line in out.splitlines() if line.startswith("puzzle ")]
    assert len(said) == len(grids)
    for line, e in zip(said, errors):
        assert ("not solved: " + e) in line if e else ("solved" in line)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(FIELDS + ["bogus"]), values), max_size=4))
def test_a_training_command_with_any_config_writes_nothing_before_it_can_start(tmp_path_factory, words):
    out = tmp_path_factory.mktemp("runs")
    extra = [f"{k}={v}" for k, v in words if k not in ("out_dir", "name", "data", "init")]
    code, _, err = cli("sudoku", "train", "preset=tiny", *extra, f"out_dir={out}", "name=r", "data=/no/such.csv")
    assert code != 0 and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("akorn: error:")]) == 1, err
    assert not (out / "r").exists()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300), st.booleans())
def test_viz_waves_on_any_file_draws_or_refuses_and_leaves_no_folder_on_failure(tmp_path_factory, data, png):
    from PIL import Image

    tmp = tmp_path_factory.mktemp("waves")
    path = tmp / "in.png"
    if png:  # a real image with random pixels, of a random size and mode
        side = 1 + len(data) % 12
        pixels = np.frombuffer(data.ljust(side * side, b"\x00")[: side * side], dtype=np.uint8).reshape(side, side)
        Image.fromarray(pixels, mode="L" if len(data) % 2 else None).convert("RGB" if len(data) % 3 else "L").save(path)
    else:
        path.write_bytes(data)
    code, _, err = cli("viz", "waves", path, "--size", "8", "--steps", "2", "--out", tmp / "o")
    assert "Traceback" not in err
    if code:
        assert not (tmp / "o").exists()
    else:
        assert (tmp / "o" / "waves.gif").exists()


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_a_symmetry_keeps_a_board_valid_unique_and_as_hard(seed):
    import torch

    from akorn.experiments.sudoku import solver
    from akorn.experiments.sudoku.symmetry import apply_symmetries, random_symmetries

    i = seed % len(BOARDS)
    cells, digits = random_symmetries(1, torch.Generator().manual_seed(seed))
    quiz = apply_symmetries(BOARDS.quiz[i : i + 1], cells, digits)[0].tolist()
    solution = apply_symmetries(BOARDS.solution[i : i + 1], cells, digits)[0].tolist()
    assert solver.is_valid_solution(solution, quiz)
    assert solver.count_solutions(quiz) == 1
    assert sum(d > 0 for d in quiz) == int((BOARDS.quiz[i] > 0).sum())
    assert solver.singles_rounds(quiz) == solver.singles_rounds(BOARDS.quiz[i].tolist())


BOARDS = sdata.generate_set(4, (24, 36), seed=1, style="unique")
