"""scripts/parity: what they refuse before running anything, and the measuring hooks of record.py."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARITY = ROOT / "scripts" / "parity"
SUDOKU_FILES = (
    "train_sudoku.py",
    "eval_sudoku.py",
    "source/models/sudoku/knet.py",
    "source/data/datasets/sudoku/sudoku.py",
)


def record(out: Path, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(PARITY / "record.py"), "--out", str(out), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def run(script: str, *args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PARITY / script), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def fake_checkout(root: Path, files) -> Path:
    """A folder with empty files at the paths a script checks for."""
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    return root


@pytest.fixture
def checkout(tmp_path) -> Path:
    root = fake_checkout(tmp_path / "akorn-authors", SUDOKU_FILES)
    (tmp_path / "train.csv").write_text("")
    (tmp_path / "ood.csv").write_text("")
    return root


def sudoku_args(checkout: Path, *more) -> list:
    d = checkout.parent
    return ["--authors", checkout, "--train", d / "train.csv", "--ood", d / "ood.csv", "--out", d / "out", *more]


def one_line_refusal(p: subprocess.CompletedProcess, *words):
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0]
    return lines[0]


def test_a_checkout_that_is_not_the_authors_names_the_missing_file(checkout):
    (checkout / "eval_sudoku.py").unlink()
    p = run("sudoku.py", *sudoku_args(checkout, "--assume-step-seconds", "0.1", "0.1"))
    one_line_refusal(p, "not a checkout", "eval_sudoku.py")
    assert not (checkout.parent / "out").exists()
    p = run("sudoku.py", *sudoku_args(checkout.parent / "nowhere"))
    one_line_refusal(p, "no such folder")


def test_fewer_than_two_seeds_is_refused(checkout):
    p = run("sudoku.py", *sudoku_args(checkout, "--seeds", "1", "--assume-step-seconds", "0.1", "0.1"))
    one_line_refusal(p, "--seeds 1", "at least 2")
    assert not (checkout.parent / "out").exists()


def test_a_plan_past_the_time_limit_is_refused_before_it_starts(checkout):
    p = run(
        "sudoku.py",
        *sudoku_args(checkout, "--epochs", "11", "--time-limit", "5", "--assume-step-seconds", "1.0", "2.0"),
    )
    line = one_line_refusal(p, "past --time-limit 5 min")
    assert "about 183 min" in line  # 3 seeds x (990 steps x 3 s x 1.15 + 16 evaluations x 15 s)
    assert "plan: 3 seeds x 990 steps" in p.stdout
    assert not (checkout.parent / "out").exists()


def test_missing_data_and_bad_sizes_are_one_line(checkout):
    d = checkout.parent
    p = run("sudoku.py", "--authors", checkout, "--train", d / "none.csv", "--ood", d / "ood.csv")
    one_line_refusal(p, "--train", "no such file")
    p = run("sudoku.py", *sudoku_args(checkout, "--channels", "30", "--heads", "8"))
    one_line_refusal(p, "divisible")


def test_record_measures_a_cuda_only_script_on_the_cpu(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, torch, pandas
            torch.manual_seed(0)
            tied = torch.nn.Module()
            shared = torch.zeros(2, 2)
            tied.a, tied.b = torch.nn.Parameter(shared), torch.nn.Parameter(shared.t())
            assert tied.a.data_ptr() == tied.b.data_ptr()
            tied.cuda()  # on a GPU every parameter is its own copy
            assert tied.a.data_ptr() != tied.b.data_ptr()
            moved = torch.nn.Module()
            moved.a, moved.b = torch.nn.Parameter(shared), torch.nn.Parameter(shared.t())
            assert moved.to("cuda") is moved and moved.a.data_ptr() != moved.b.data_ptr()
            assert moved.to(torch.float64).a.dtype == torch.float64  # other moves are torch's own
            net = torch.nn.Linear(3, 1).cuda()
            opt = torch.optim.Adam(net.parameters(), lr=0.01)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            x = torch.ones(8, 3).cuda()
            for _ in range(4):
                loss = (net(x) - 10).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            end.record()
            torch.cuda.synchronize()
            assert start.elapsed_time(end) >= 0
            df = pandas.read_csv(sys.argv[1], header=None)
            assert isinstance(df.iloc[0][0], str), type(df.iloc[0][0])
            print("done", sys.argv[1:])
            """
        )
    )
    (tmp_path / "boards.csv").write_text("0" * 40 + "1" * 41 + ",5\n")
    out = tmp_path / "rec.json"
    p = record(out, "--cpu", "--csv-as-text", "--cwd", tmp_path, "--", script, "boards.csv")
    assert p.returncode == 0, p.stderr
    assert "done ['boards.csv']" in p.stdout
    rec = json.loads(out.read_text())
    assert len(rec["loss"]) == 4 and rec["loss"][-1] < rec["loss"][0]
    assert len(rec["step_end"]) == 4 and rec["step_end"] == sorted(rec["step_end"])
    assert rec["max_rss_mb"] > 10 and rec["wall_s"] > 0


def test_record_runs_a_module_and_keeps_its_exit_status(tmp_path):
    out = tmp_path / "rec.json"
    p = record(out, "--", "-m", "akorn", "sudoku", "train", "channels=7", "heads=2")
    assert p.returncode == 2 and "divisible" in p.stderr
    assert json.loads(out.read_text())["loss"] == []


def test_malformed_boards_are_one_line(checkout):
    d = checkout.parent
    (d / "train.csv").write_text("12345,67890\n")
    p = run(
        "sudoku.py", *sudoku_args(checkout, "--assume-step-seconds", "0.01", "0.01", "--epochs", "1", "--seeds", "2")
    )
    one_line_refusal(p, "train.csv")
    assert not (d / "out").exists()


OBJECTS_FILES = ("train_obj.py", "source/models/objs/knet.py", "source/data/datasets/objs/tetrominoes.py")


@pytest.fixture
def objects_checkout(tmp_path) -> Path:
    return fake_checkout(tmp_path / "akorn-authors", OBJECTS_FILES)


@pytest.mark.parametrize(
    "args,words",
    [
        (["--seeds", "1"], ("--seeds 1", "at least 2")),
        (["--channels", "20"], ("--channels 20", "8 heads")),
        (["--steps", "0"], ("--steps", "at least 1")),
        (["--our-words", "views=pil"], ("views",)),
        (["--steps", "1000", "--time-limit", "5"], ("past --time-limit 5 min", "about 121 min")),
    ],
)
def test_the_objects_script_refuses_before_it_starts(objects_checkout, args, words):
    out = objects_checkout.parent / "out"
    p = run("objects.py", "--authors", objects_checkout, "--out", out, "--assume-step-seconds", "1.0", "1.0", *args)
    one_line_refusal(p, *words)  # 3 seeds x (1000 steps x 2 s x 1.15 + 2 evaluations x 60 s) = 121 min
    assert not out.exists()


def test_the_objects_script_names_the_file_a_checkout_lacks(objects_checkout):
    (objects_checkout / "train_obj.py").unlink()
    p = run("objects.py", "--authors", objects_checkout, "--assume-step-seconds", "0.1", "0.1")
    one_line_refusal(p, "not a checkout", "train_obj.py")


CLASSIFY_FILES = ("train_classification.py", "source/models/classification/knet.py", "source/data/augs.py")


@pytest.fixture
def classify_checkout(tmp_path) -> Path:
    (tmp_path / "train").mkdir()
    (tmp_path / "test.npz").write_text("")
    return fake_checkout(tmp_path / "akorn-authors", CLASSIFY_FILES)


@pytest.mark.parametrize(
    "args,words",
    [
        (["--seeds", "1"], ("--seeds 1", "at least 2")),
        (["--channels", "15"], ("--channels 15", "even")),
        (["--train-size", "105"], ("--train-size 105", "multiple of the 10 classes")),
        (["--epochs", "0"], ("--epochs", "at least 1")),
        (["--epochs", "4", "--time-limit", "5"], ("past --time-limit 5 min", "about 31 min")),
    ],
)
def test_the_classify_script_refuses_before_it_starts(classify_checkout, args, words):
    d = classify_checkout.parent
    p = run("classify.py", "--authors", classify_checkout, "--train", d / "train", "--test", d / "test.npz",
            "--out", d / "out", "--assume-step-seconds", "1.0", "1.0", *args)  # fmt: skip
    one_line_refusal(p, *words)  # 3 seeds x (4 x 50 steps x 2 s x 1.25 + 2 evaluations x 60 s) = 31 min
    assert not (d / "out").exists()


def test_the_classify_script_names_what_is_missing(classify_checkout):
    d = classify_checkout.parent
    common = ["--assume-step-seconds", "0.1", "0.1", "--out", d / "out"]
    p = run("classify.py", "--authors", classify_checkout, "--train", d / "none", "--test", d / "test.npz", *common)
    one_line_refusal(p, "--train", "no such file")
    (classify_checkout / "train_classification.py").unlink()
    p = run("classify.py", "--authors", classify_checkout, "--train", d / "train", "--test", d / "test.npz", *common)
    one_line_refusal(p, "not a checkout", "train_classification.py")
    assert not (d / "out").exists()


def test_record_patches_the_classifier_script_from_outside(tmp_path):
    """--alias, --loader-workers, --seed and --cifar-files-unchecked (on a stand-in torchvision)."""
    fake = tmp_path / "site" / "torchvision" / "datasets"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "cifar.py").write_text("def check_integrity(fpath, md5=None):\n    return False\n")
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, random, torch
            import torchvision.datasets.cifar as cifar
            import stand_in_name
            loader = torch.utils.data.DataLoader(list(range(4)), batch_size=2, num_workers=4)
            print(json.dumps({"workers": loader.num_workers, "alias": stand_in_name.__name__,
                              "draw": torch.rand(1).item(), "py": random.random(),
                              "exists": cifar.check_integrity(__file__, "0" * 32),
                              "absent": cifar.check_integrity(__file__ + ".none", "0" * 32)}))
            """
        )
    )
    env_path = str(tmp_path / "site")
    cmd = [sys.executable, str(PARITY / "record.py"), "--out", str(tmp_path / "rec.json"), "--cifar-files-unchecked",
           "--loader-workers", "0", "--alias", "stand_in_name=json", "--seed", "7", "--", str(script)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": env_path})
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    import random

    import torch

    random.seed(7)
    draw = torch.rand(1, generator=torch.Generator().manual_seed(7)).item()
    expected = {"workers": 0, "alias": "json", "draw": draw, "py": random.random(), "exists": True, "absent": False}
    assert seen == expected
    p = record(tmp_path / "rec2.json", "--alias", "nothing", "--", script)
    assert p.returncode != 0 and "NAME=MODULE" in p.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["--images-used", "0"], "--images-used must be at least 1"),
        (["--repeats", "0"], "--repeats must be at least 1"),
        (["--images", "missing.npz"], "no such file"),
    ],
)
def test_the_views_script_refuses_before_it_starts(tmp_path, args, words):
    authors = fake_checkout(tmp_path / "authors", ("source/data/augs.py", "train_obj.py"))
    (tmp_path / "imgs.npz").write_bytes(b"")
    base = {"--authors": authors, "--model": "pretrained:tetrominoes", "--images": tmp_path / "imgs.npz"}
    flags = dict(zip(args[::2], args[1::2]))
    words_in = [w for k, v in {**base, **flags}.items() for w in (k, v)]
    r = run("views.py", *words_in, cwd=tmp_path)
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1
    lacking = fake_checkout(tmp_path / "other", ("train_obj.py",))
    r = run("views.py", "--authors", lacking, "--model", "m", "--images", "x")
    assert r.returncode == 2 and "it has no source/data/augs.py" in r.stderr
