"""The engine's guarantees: configs, checkpoints, exact resume after SIGKILL, torchrun equivalence."""

import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from akorn.engine import checkpoint as ck
from akorn.engine.config import resolve
from akorn.errors import UserError
from akorn.experiments.sudoku.experiment import PRESETS, SudokuConfig
from tests.conftest import ROOT, run_cli

TINY = ["preset=tiny", "threads=1"]


def _train_args(data, out, name, *extra):
    return ["sudoku", "train", *TINY, f"data={data}", f"eval_data={data}", f"out_dir={out}", f"name={name}", *extra]


def _final_weights(run: Path):
    last = ck.list_checkpoints(run / "checkpoints")[-1]
    return load_file(last / "model.safetensors"), load_file(last / "ema.safetensors"), last.name


def test_config_layers_and_errors(tmp_path):
    cfg = resolve(SudokuConfig, ["preset=cpu", "lr=5e-4", "compile=false"], presets=PRESETS)
    assert cfg.channels == 64 and cfg.lr == 5e-4 and cfg.compile is False
    yml = tmp_path / "c.yaml"
    yml.write_text("epochs: 7\nsteps: 8\n")
    cfg = resolve(SudokuConfig, ["steps=12"], str(yml))
    assert cfg.epochs == 7 and cfg.steps == 12  # command line wins over the file
    with pytest.raises(UserError, match="did you mean 'epochs'"):
        resolve(SudokuConfig, ["epoch=3"])
    with pytest.raises(UserError, match="expects an integer"):
        resolve(SudokuConfig, ["epochs=three"])
    with pytest.raises(UserError, match="true/false"):
        resolve(SudokuConfig, ["compile=maybe"])
    with pytest.raises(UserError, match="unknown preset"):
        resolve(SudokuConfig, ["preset=huge"], presets=PRESETS)
    with pytest.raises(UserError, match="model must be"):
        resolve(SudokuConfig, ["model=lstm"])


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, puzzle_csv):
    r = run_cli("sudoku", "train", "bacth_size=5")
    assert r.returncode == 2 and "did you mean 'batch_size'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = run_cli(*_train_args(puzzle_csv, blocker, "x"))
    assert r.returncode == 2 and "cannot be written" in r.stderr
    r = run_cli("sudoku", "eval", tmp_path / "nope", "--data", puzzle_csv)
    assert r.returncode == 2 and "run folder not found" in r.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"experiment": "objects", "config": {}}))
    r = run_cli("sudoku", "eval", other, "--data", puzzle_csv)
    assert r.returncode == 2 and "from experiment 'objects'" in r.stderr
    r = run_cli("sudoku", "train", "data=/no/such/file.csv", f"out_dir={tmp_path / 'o'}", "name=x")
    assert r.returncode == 2 and "data not found" in r.stderr
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_corrupt_and_missing_checkpoints(tmp_path, puzzle_csv):
    r = run_cli(*_train_args(puzzle_csv, tmp_path, "run", "max_steps=2"))
    assert r.returncode == 0, r.stderr
    run = tmp_path / "run"
    last = ck.list_checkpoints(run / "checkpoints")[-1]
    (last / "model.safetensors").write_bytes(b"not a safetensors file")
    r = run_cli("sudoku", "eval", run, "--data", puzzle_csv, "--limit", "2")
    assert r.returncode == 2 and "corrupt weights file" in r.stderr
    r = run_cli("sudoku", "train", "--resume", run)
    assert r.returncode == 2 and "corrupt weights file" in r.stderr
    for p in (run / "checkpoints").iterdir():
        shutil.rmtree(p)
    r = run_cli("sudoku", "eval", run, "--data", puzzle_csv)
    assert r.returncode == 2 and "has no checkpoint" in r.stderr


def test_ema_follows_the_warmup_schedule_of_the_reference_code(tmp_path, puzzle_csv):
    """Replays the EMA from the raw weights saved after every step: first update copies, then the
    decay 1 - (1 + t)^(-2/3) (t = steps since ema_start) until it reaches ema_decay."""
    from akorn.engine.trainer import ema_decay_at

    cfg = resolve(SudokuConfig, [*TINY, "ema_start=2", "ema_every=2", "ema_decay=0.7"], presets=PRESETS)
    assert [round(ema_decay_at(cfg, d), 6) for d in (2, 4, 6, 30)] == [
        0.0,
        round(1 - 3 ** (-2 / 3), 6),
        round(1 - 5 ** (-2 / 3), 6),
        0.7,
    ]
    off = resolve(SudokuConfig, [*TINY, "ema_decay=0.7", "ema_warmup=false"], presets=PRESETS)
    assert ema_decay_at(off, 2) == ema_decay_at(off, 50) == 0.7

    r = run_cli(
        *_train_args(
            puzzle_csv,
            tmp_path,
            "w",
            "max_steps=8",
            "checkpoint_every=1",
            "keep_checkpoints=100",
            "ema_start=2",
            "ema_every=2",
            "ema_decay=0.7",
            "clip_grad=0",
        )
    )
    assert r.returncode == 0, r.stderr
    expected, seen = None, 0
    for path in ck.list_checkpoints(tmp_path / "w" / "checkpoints"):
        done = int(path.name.split("-")[-1])
        raw, ema = load_file(path / "model.safetensors"), load_file(path / "ema.safetensors")
        if done >= 2 and done % 2 == 0:
            d = ema_decay_at(cfg, done)
            expected = (
                {k: v.clone() for k, v in raw.items()}
                if expected is None
                else {k: expected[k] * d + raw[k] * (1 - d) for k in raw}
            )
        if expected is not None:
            seen += 1
            for k in raw:
                torch.testing.assert_close(ema[k], expected[k], rtol=1e-5, atol=1e-6, msg=k)
    assert seen == 7
    # A run folder saved before ema_warmup existed resumes and evaluates with the fixed decay it ran with.
    from akorn.engine.trainer import load_run
    from akorn.experiments.sudoku.experiment import SudokuExperiment

    saved = json.loads((tmp_path / "w" / "config.json").read_text())
    assert saved["config"].pop("ema_warmup") is True
    (tmp_path / "w" / "config.json").write_text(json.dumps(saved))
    assert load_run(SudokuExperiment(), str(tmp_path / "w"))[1].ema_warmup is False
    # Without clipping the gradient norm is still logged.
    logs = [json.loads(l) for l in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines() if '"train"' in l]
    assert logs and all(l["grad_norm"] > 0 for l in logs)


def ema_pytorch_events(beta: float, update_every: int, update_after_step: int, steps: int) -> dict:
    """What ema_pytorch's ``EMA.update()`` does after each optimizer step ``done`` (1-based), as its
    source reads: ``{done: decay}`` for an average, ``0.0`` for a copy. Its counter is the number of
    earlier calls; it acts when the counter is a multiple of ``update_every``, copies while the
    counter is at most ``update_after_step``, and averages with
    ``1 - (1 + (counter + 1 - update_after_step - 1))^(-2/3)`` capped at ``beta``."""
    events = {}
    for done in range(1, steps + 1):
        counter = done - 1
        if counter % update_every:
            continue
        if counter <= update_after_step:
            events[done] = 0.0
            continue
        epoch = max(counter + 1 - update_after_step - 1, 0)
        events[done] = 0.0 if epoch <= 0 else min(beta, 1 - (1 + epoch) ** (-2 / 3))
    return events


def test_ema_offset_replays_the_ema_of_the_authors_scripts():
    """train_sudoku.py: EMA(beta=0.995, update_every=10, update_after_step=100). The default
    schedule updates one step earlier; ema_offset=1 ema_start=101 gives their updates and decays."""
    from akorn.engine.trainer import ema_decay_at, ema_updates_at

    theirs = ema_pytorch_events(0.995, 10, 100, 700)
    first_average = min(d for d, v in theirs.items() if v > 0)
    cfg = resolve(SudokuConfig, [*TINY, "ema_every=10", "ema_offset=1", "ema_start=101"], presets=PRESETS)
    ours = {d: ema_decay_at(cfg, d) for d in range(1, 701) if ema_updates_at(cfg, d)}
    assert first_average == 111
    assert {d: round(v, 12) for d, v in ours.items()} == {d: round(v, 12) for d, v in theirs.items() if d >= 101}
    default = resolve(SudokuConfig, [*TINY, "ema_every=10", "ema_start=100"], presets=PRESETS)
    shifted = [d for d in range(1, 701) if ema_updates_at(default, d)]
    assert shifted[:3] == [100, 110, 120]  # the default: the same decays, one step earlier
    theirs_decays = [round(v, 12) for d, v in theirs.items() if d >= 101]
    assert [round(ema_decay_at(default, d), 12) for d in shifted][: len(theirs_decays)] == theirs_decays


def test_objects_defaults_are_the_authors_recipe():
    """train_obj.py: batch 256, Adam 1e-3, no clipping, ema_pytorch EMA(beta=0.998, update_every=10,
    update_after_step=200); Tetrominoes 50 epochs. train_sudoku.py: batch 100, clip 1.0, EMA 0.995 / 10 / 100."""
    from akorn.experiments.objects.experiment import ObjectsConfig

    o = ObjectsConfig()
    assert (o.batch_size, o.epochs, o.lr, o.optimizer, o.clip_grad) == (256, 50, 1e-3, "adam", 0.0)
    assert (o.ema_decay, o.ema_every, o.ema_start, o.ema_warmup) == (0.998, 10, 200, True)
    assert (o.channels, o.patch, o.steps, o.n, o.heads, o.temperature) == (128, 4, 8, 4, 8, 0.1)
    s = SudokuConfig()
    assert (s.batch_size, s.clip_grad, s.ema_decay, s.ema_every, s.ema_start, s.ema_warmup) == (
        100,
        1.0,
        0.995,
        10,
        100,
        True,
    )


def test_init_starts_from_a_runs_ema_weights(tmp_path, puzzle_csv):
    from akorn.engine.trainer import load_init_weights
    from akorn.experiments.sudoku.experiment import SudokuExperiment

    r = run_cli(*_train_args(puzzle_csv, tmp_path, "base", "max_steps=3"))
    assert r.returncode == 0, r.stderr
    _, ema, _ = _final_weights(tmp_path / "base")
    cfg = resolve(SudokuConfig, TINY, presets=PRESETS)
    model = SudokuExperiment().build_model(cfg)
    load_init_weights(model, str(tmp_path / "base"))
    for k, v in model.state_dict().items():
        assert torch.equal(v, ema[k]), k  # the EMA, not the raw weights, and every tensor
    # A fine-tuning run starts at step 0 with those weights and its own folder.
    r = run_cli(*_train_args(puzzle_csv, tmp_path, "tuned", "max_steps=2", f"init={tmp_path / 'base'}"))
    assert r.returncode == 0, r.stderr
    assert ck.list_checkpoints(tmp_path / "tuned" / "checkpoints")[-1].name.endswith("2")
    r = run_cli("sudoku", "export", tmp_path / "tuned", "--out", tmp_path / "shipped" / "model")
    assert r.returncode == 0, r.stderr
    record = json.loads((tmp_path / "shipped" / "model.json").read_text())
    (base,) = record["initialised_from"]
    assert base["init"] == str(tmp_path / "base") and "name=base" in base["training_commands"][0]
    assert "init=" in record["training_commands"][0]
    # Half-precision storage: the file holds fp16, and the weights load back within fp16 rounding.
    assert record["eval_steps"] == cfg.steps  # without --eval-steps: the training T
    r = run_cli(
        "sudoku",
        "export",
        tmp_path / "tuned",
        "--out",
        tmp_path / "shipped" / "half",
        "--dtype",
        "fp16",
        "--eval-steps",
        "6",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "shipped" / "half.json").read_text())["eval_steps"] == 6
    r = run_cli("sudoku", "export", tmp_path / "tuned", "--out", tmp_path / "shipped" / "bad", "--eval-steps", "-2")
    assert r.returncode == 2 and "--eval-steps must be positive" in r.stderr
    full, half = (
        ck.load_weights(tmp_path / "shipped" / "model.safetensors"),
        ck.load_weights(tmp_path / "shipped" / "half.safetensors"),
    )
    for k, v in full.items():
        assert half[k].dtype == (torch.float16 if v.is_floating_point() else v.dtype), k
        assert torch.equal(half[k], v.to(half[k].dtype)), k
    model.load_state_dict(half)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert json.loads((tmp_path / "shipped" / "half.json").read_text())["stored_dtype"] == "fp16"
    r = run_cli(*_train_args(puzzle_csv, tmp_path, "wide", "max_steps=1", "channels=32", f"init={tmp_path / 'base'}"))
    assert r.returncode == 2 and "weights do not fit this model" in r.stderr
    assert not (tmp_path / "wide").exists()  # refused before anything is written
    r = run_cli(*_train_args(puzzle_csv, tmp_path, "nowhere", "max_steps=1", f"init={tmp_path / 'missing'}"))
    assert r.returncode == 2 and "init=" in r.stderr


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    d = tmp_path / "satnet"
    d.mkdir()
    with open(d / "features.pt", "wb") as f:
        pickle.dump(Evil(), f)
    torch.save(torch.zeros(1, 9, 9, 9), d / "labels.pt")
    from akorn.experiments.sudoku.data import read_satnet

    with pytest.raises(UserError, match="refusing to load"):
        read_satnet(d)
    assert not marker.exists()


def test_checkpoint_roundtrip_keeps_last_n(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    for step in range(1, 6):
        ck.save_checkpoint(tmp_path, step, model.state_dict(), None, opt.state_dict(), {"experiment": "t"}, keep=2)
    kept = ck.list_checkpoints(tmp_path)
    assert [p.name for p in kept] == ["step-00000004", "step-00000005"]
    loaded = ck.load_checkpoint(kept[-1])
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    opt2.load_state_dict(loaded["optimizer"])
    a, b = opt.state_dict()["state"][0], opt2.state_dict()["state"][0]
    assert torch.equal(a["exp_avg"], b["exp_avg"]) and float(a["step"]) == float(b["step"])
    (tmp_path / "step-00000009.tmp").mkdir()  # a killed write is never picked up
    assert ck.list_checkpoints(tmp_path)[-1].name == "step-00000005"


def test_sigkill_and_resume_is_bitwise_identical(tmp_path, puzzle_csv):
    extra = ["epochs=6", "checkpoint_every=1"]
    ref = run_cli(*_train_args(puzzle_csv, tmp_path, "ref", *extra))
    assert ref.returncode == 0, ref.stderr
    rng = random.Random()
    cmd = [sys.executable, "-m", "akorn", *_train_args(puzzle_csv, tmp_path, "killed", *extra)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckdir = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 120
    while not ck.list_checkpoints(ckdir) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.5))  # somewhere in the middle of training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = ck.list_checkpoints(ckdir)[-1].name
    res = run_cli("sudoku", "train", "--resume", tmp_path / "killed")
    assert res.returncode == 0, res.stderr
    m1, e1, n1 = _final_weights(tmp_path / "ref")
    m2, e2, n2 = _final_weights(tmp_path / "killed")
    assert n1 == n2
    for k in m1:
        assert torch.equal(m1[k], m2[k]), (k, killed_at)
    for k in e1:
        assert torch.equal(e1[k], e2[k]), (k, killed_at)
    steps = [
        json.loads(l)["step"]
        for l in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
        if '"train"' in l
    ]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # redone steps are not logged twice


def test_torchrun_two_gloo_processes_match_single_process(tmp_path, puzzle_csv):
    extra = ["max_steps=3", "batch_size=10", "ema_decay=0"]
    single = run_cli(*_train_args(puzzle_csv, tmp_path, "single", *extra))
    assert single.returncode == 0, single.stderr
    env = dict(os.environ, OMP_NUM_THREADS="1")
    port = str(29500 + random.randint(0, 2000))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={port}",
        "-m",
        "akorn",
        *_train_args(puzzle_csv, tmp_path, "ddp", *extra),
    ]
    ddp = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a = load_file(ck.list_checkpoints(tmp_path / "single" / "checkpoints")[-1] / "model.safetensors")
    b = load_file(ck.list_checkpoints(tmp_path / "ddp" / "checkpoints")[-1] / "model.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=0), k
    la = [json.loads(l) for l in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines() if '"train"' in l]
    lb = [json.loads(l) for l in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines() if '"train"' in l]
    assert len(la) == len(lb) == 3
    for x, y in zip(la, lb):
        assert abs(x["loss"] - y["loss"]) < 1e-5


def test_rng_state_roundtrip():
    import random as pyrandom

    from akorn.engine.trainer import rng_state, set_rng_state

    torch.manual_seed(3)
    pyrandom.seed(3)
    state = json.loads(json.dumps(rng_state()))
    a, b = torch.rand(3), pyrandom.random()
    set_rng_state(state)
    assert torch.equal(torch.rand(3), a) and pyrandom.random() == b
