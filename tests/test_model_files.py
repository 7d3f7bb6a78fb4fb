"""One loader for every spelling of a model, and one set of export flags for every experiment."""

import json

import pytest
import torch

from akorn.errors import UserError
from akorn.experiments.model_files import LoadedModel, load_model, shipped_names, write_model

SMALL = "pretrained:c128"  # the 0.8 MB shipped Sudoku model


@pytest.fixture(scope="module")
def small() -> LoadedModel:
    return load_model(SMALL, "sudoku")


def test_a_shipped_model_loads_by_alias_file_name_or_bare_pretrained(small):
    assert isinstance(small, LoadedModel) and not small.model.training
    assert small.experiment.name == "sudoku" and small.config.channels == 128
    assert small.steps == small.record["eval_steps"] == 24 and small.source == SMALL
    by_file = load_model("pretrained:sudoku-akorn-c128")  # the experiment read off the record
    assert by_file.experiment.name == "sudoku"
    for a, b in zip(small.model.state_dict().values(), by_file.model.state_dict().values()):
        assert torch.equal(a, b)
    assert load_model("pretrained", "sudoku").config.channels == 512
    assert {"sudoku-akorn", "sudoku-akorn-c128", "cifar10-akorn", "tetrominoes-akorn"} <= set(shipped_names())


def test_a_stored_model_loads_from_any_of_its_names(small, tmp_path):
    out = str(tmp_path / "m")
    write_model(small.model, small.config, "sudoku", out, {"eval_steps": 6, "summary": "test"}, dtype="fp16")
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["experiment"] == "sudoku" and record["stored_dtype"] == "fp16" and record["eval_steps"] == 6
    for spelling in (out + ".safetensors", out + ".json", out):
        loaded = load_model(spelling)
        assert loaded.experiment.name == "sudoku" and loaded.steps == 6
        # fp16 storage: the weights come back within half precision
        for a, b in zip(small.model.state_dict().values(), loaded.model.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    assert load_model(out, "sudoku", words=["steps=8"]).config.steps == 8


def test_what_a_model_cannot_be_gets_one_line(small, tmp_path):
    with pytest.raises(UserError, match="is a model of 'akorn sudoku', not of 'akorn objects'"):
        load_model("pretrained:sudoku-akorn-c128", "objects")
    with pytest.raises(UserError, match="--step picks a checkpoint of a run folder"):
        load_model(SMALL, "sudoku", step=10)
    with pytest.raises(UserError, match="--weights raw needs a run folder"):
        load_model(SMALL, "sudoku", weights="raw")
    with pytest.raises(UserError, match="not in this installation"):
        load_model("pretrained:nonesuch", "sudoku")
    with pytest.raises(UserError, match="needs an experiment"):
        load_model("pretrained")
    with pytest.raises(UserError, match="names no experiment"):
        load_model(str(tmp_path / "theirs.pth"))
    with pytest.raises(UserError, match="run folder not found"):
        load_model(str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="unknown experiment"):
        load_model(SMALL, "chess")
    (tmp_path / "x.json").write_text("{}")
    (tmp_path / "x.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="not a model record"):
        load_model(str(tmp_path / "x.safetensors"), "sudoku")


def test_every_experiment_exports_with_the_same_flags():
    from akorn.cli.main import build_parser

    flags = {}
    for experiment in ("sudoku", "objects", "classify"):
        argv = [experiment, "export", "RUN", "--out", "o", "--dtype", "fp16", "--eval", "a.json", "--eval", "b.json",
                "--summary", "s", "--eval-steps", "8"]  # fmt: skip
        args = build_parser(argv).parse_args(argv)
        assert args.experiment == experiment
        flags[experiment] = (args.dtype, tuple(args.eval), args.summary, args.eval_steps, args.func)
    assert len(set(flags.values())) == 1
