"""Bad input gets one clear line and a non-zero exit, and nothing half-written; training fails safe."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors import SafetensorError

from akorn.engine import checkpoint as ck
from akorn.engine.config import resolve
from akorn.engine.files import decode_lines
from akorn.engine.trainer import RunFolder
from akorn.errors import UserError
from akorn.experiments.sudoku import data as sdata
from akorn.experiments.sudoku.experiment import PRESETS, SudokuConfig
from tests.conftest import ROOT, cli, run_cli

TINY = ["preset=tiny", "threads=1"]
QUIZ = "000260701680070090190004500820100040004602900050003028009300074040050036703018000"


def _train(data, out, name, *extra):
    return ["sudoku", "train", *TINY, f"data={data}", f"eval_data={data}", f"out_dir={out}", f"name={name}", *extra]


def one_line_error(code: int, err: str, *words: str):
    lines = [
        line
        for line in err.replace("\r", "\n").splitlines()
        if line.strip() and not line.startswith("akorn: dropping") and "%|" not in line  # progress bars aside
    ]
    assert code != 0, err
    assert len(lines) == 1 and lines[0].startswith("akorn: error:"), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize(
    "word, named",
    [
        ("lr=inf", "lr"),
        ("lr=nan", "lr"),
        ("lr=-1", "lr"),
        ("lr=0", "lr"),
        ("n=0", "n"),
        ("heads=0", "heads"),
        ("channels=0", "channels"),
        ("epochs=0", "epochs"),
        ("epochs=-1", "epochs"),
        ("clip_grad=-1", "clip_grad"),
        ("warmup_steps=-5", "warmup_steps"),
        ("keep_checkpoints=0", "keep_checkpoints"),
        ("ema_decay=1", "ema_decay"),
        ("device=gpu7", "device"),
        ("nonfinite=ignore", "nonfinite"),
    ],
)
def test_every_config_field_is_checked_in_one_place(word, named):
    with pytest.raises(UserError, match=named):
        resolve(SudokuConfig, [*TINY, word], presets=PRESETS)


def test_relations_between_fields_are_checked():
    for words, message in (
        (["channels=18", "heads=4"], "heads"),
        (["channels=18", "heads=2", "n=3"], "n must be even"),
        (["channels=20", "heads=4", "n=4"], "GTA"),
        (["model=itrsa", "channels=18", "heads=2"], "divisible by 4"),
    ):
        with pytest.raises(UserError, match=message):
            resolve(SudokuConfig, [*TINY, *words], presets=PRESETS)


def test_a_bad_config_writes_nothing(tmp_path, puzzle_csv):
    code, _, err = cli(*_train(puzzle_csv, tmp_path, "x", "channels=18", "n=3", "heads=2"))
    one_line_error(code, err, "n must be even")
    assert not (tmp_path / "x").exists()


def test_training_stops_at_the_first_non_finite_step_and_keeps_good_checkpoints(tmp_path, puzzle_csv):
    r = run_cli(*_train(puzzle_csv, tmp_path, "blowup", "lr=1e30", "epochs=6", "checkpoint_every=1"))
    one_line_error(r.returncode, r.stderr, "training stopped at step", "not finite", "nonfinite=skip")
    saved = ck.list_checkpoints(tmp_path / "blowup" / "checkpoints")
    for path in saved:
        loaded = ck.load_checkpoint(path)
        assert all(torch.isfinite(t).all() for t in loaded["model"].values()), path
    r = run_cli(*_train(puzzle_csv, tmp_path, "skipping", "lr=1e30", "epochs=2", "nonfinite=skip"))
    assert r.returncode == 0, r.stderr
    records = RunFolder(tmp_path / "skipping").read_metrics()
    assert max(rec.get("skipped_steps", 0) for rec in records) > 0


def test_damaged_run_folders_give_one_line_and_rewrite_nothing(tmp_path, puzzle_csv):
    run = tmp_path / "r"
    r = run_cli(*_train(puzzle_csv, tmp_path, "r"))
    assert r.returncode == 0, r.stderr
    config, commands = (run / "config.json").read_text(), (run / "command.txt").read_text()
    latest = ck.list_checkpoints(run / "checkpoints")[-1]

    # a torn last line of metrics.jsonl is dropped on resume
    metrics = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(metrics + '{"step": 99, "split": "tr')
    assert RunFolder(run).read_metrics() == [json.loads(line) for line in metrics.splitlines()]
    # a corrupt line in the middle stops the resume before anything is rewritten
    (run / "metrics.jsonl").write_text("garbage\n" + metrics)
    code, _, err = cli("sudoku", "train", "--resume", run, "epochs=3")
    one_line_error(code, err, "metrics.jsonl", "line 1")
    assert (run / "config.json").read_text() == config and (run / "command.txt").read_text() == commands
    (run / "metrics.jsonl").write_text(metrics)

    # a checkpoint whose state.json has a step that is not an integer
    state = json.loads((latest / "state.json").read_text())
    (latest / "state.json").write_text(json.dumps(dict(state, step="four")))
    code, _, err = cli("sudoku", "train", "--resume", run, "epochs=3")
    one_line_error(code, err, "state.json", "non-negative integer")
    (latest / "state.json").write_text(json.dumps(state))

    # resuming with another architecture names the field
    code, _, err = cli("sudoku", "train", "--resume", run, "channels=32")
    one_line_error(code, err, "does not fit", "channels=16 there, 32 now")

    # a missing EMA is an error, for training and for evaluation (the EMA is what gets evaluated)
    (latest / "ema.safetensors").rename(tmp_path / "ema.safetensors")
    code, _, err = cli("sudoku", "train", "--resume", run, "epochs=3")
    one_line_error(code, err, "no ema.safetensors")
    code, _, err = cli("sudoku", "eval", run, "--data", puzzle_csv, "--limit", "2")
    one_line_error(code, err, "no ema.safetensors")
    (tmp_path / "ema.safetensors").rename(latest / "ema.safetensors")
    assert (run / "config.json").read_text() == config and (run / "command.txt").read_text() == commands


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_earlier_checkpoints(tmp_path, monkeypatch):
    sd = {"w": torch.ones(3)}
    ck.save_checkpoint(tmp_path, 1, sd, None, None, {}, keep=3)

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(ck, "save_file", full)
    with pytest.raises(UserError, match="cannot write the checkpoint of step 2.*earlier checkpoints are kept"):
        ck.save_checkpoint(tmp_path, 2, sd, None, None, {}, keep=3)
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000001"]


def test_sigterm_saves_and_says_how_to_resume_and_the_folder_is_locked(tmp_path, puzzle_csv):
    args = _train(puzzle_csv, tmp_path, "sig", "epochs=400", "checkpoint_every=1000", "eval_every=0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "akorn", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = tmp_path / "sig" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2) and time.time() < deadline:
        time.sleep(0.05)
    code, _, err = cli("sudoku", "train", "--resume", tmp_path / "sig")
    one_line_error(code, err, "in use by a training still running")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    last = err.strip().splitlines()[-1]
    assert "SIGTERM at step" in last and "resume with: akorn sudoku train --resume" in last, err
    step = int(last.split("SIGTERM at step ")[1].split(":")[0])
    saved = ck.list_checkpoints(tmp_path / "sig" / "checkpoints")
    assert ck.checkpoint_step(saved[-1]) == step and 0 < step < 400 * 4


def test_viz_waves_reads_16_bit_images_and_checks_sizes(tmp_path):
    from PIL import Image

    from akorn.viz import waves

    grey = (np.linspace(0, 40000, 32 * 32).reshape(32, 32)).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    img = waves.load_image(tmp_path / "g16.png", 0)
    assert img.shape == (32, 32, 3) and (img >= 0.999).mean() < 0.01 and abs(img.max() - 40000 / 65535) < 1e-3
    with pytest.raises(UserError, match="needs about .* GiB"):
        waves.check_run_size(5000, 5000, 8, 96, limit_bytes=1 << 30)
    for argv, words in (
        (["--size", "-3"], ["--size"]),
        (["--steps", "0"], ["--steps"]),
        ([tmp_path / "missing.png"], ["not found"]),
        ([tmp_path], ["folder"]),
    ):
        code, _, err = cli("viz", "waves", *argv, "--out", tmp_path / "out")
        one_line_error(code, err, *words)
        assert not (tmp_path / "out").exists()  # a failed run leaves no folder behind


def test_solve_refuses_unreadable_and_empty_input_with_one_line(tmp_path):
    files = {
        "blank.txt": b"\n\n  \n",
        "comments.txt": b"# a comment\n# another\n",
        "binary.bin": bytes(range(256)),
        "utf16.txt": QUIZ.encode("utf-16"),
        "latin1.txt": ("# caf\xe9\n" + QUIZ + "\n").encode("latin-1"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    expected = {
        "blank.txt": "no puzzles",
        "comments.txt": "no puzzles",
        "binary.bin": "binary",
        "utf16.txt": "UTF-16",
        "latin1.txt": "not UTF-8",
    }
    for name, words in expected.items():
        code, out, err = cli("sudoku", "solve", "--file", tmp_path / name)
        one_line_error(code, err, words)
        assert out == ""
    for path, words in ((tmp_path / "nope.txt", "not found"), (tmp_path, "folder")):
        code, _, err = cli("sudoku", "solve", "--file", path)
        one_line_error(code, err, words)
    code, _, err = cli("sudoku", "solve", "")
    one_line_error(code, err, "no puzzles")


def test_eval_checks_its_options_and_output_before_it_runs(tmp_path, puzzle_csv):
    (tmp_path / "folder.json").mkdir()
    for argv, words in (
        (["--limit", "-1"], ["--limit"]),
        (["--per-givens", "-2"], ["--per-givens"]),
        (["--json", tmp_path / "folder.json"], ["is a folder"]),
    ):
        code, _, err = cli("sudoku", "eval", "pretrained:sudoku-akorn-c128", "--data", puzzle_csv, *argv)
        one_line_error(code, err, *words)
    target = tmp_path / "new" / "sub" / "r.json"
    code, out, err = cli(
        "sudoku", "eval", "pretrained:sudoku-akorn-c128", "--data", puzzle_csv, "--limit", "2", "--steps", "2",
        "--json", target,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(target.read_text())["boards"] == 2


def test_line_numbers_are_those_an_editor_shows_and_messages_stay_short():
    text = "\n".join([QUIZ + "\x0c", "12\x1c3", QUIZ[:-1] + "\u2028", "11" + QUIZ[2:]]).encode()
    grids, errors = sdata.read_puzzles(decode_lines(text, "f"), "f")
    assert [e.split(":")[1] if e else None for e in errors] == [None, "2", "3", "4"]
    crowded = "1" * 81
    _, errors = sdata.read_puzzles([crowded], "f")
    assert len(errors[0]) < 200 and "more" in errors[0]
