"""One convention for every command: --name value, --name=value and name=value, renamed options kept."""

import pytest

from akorn.cli import objects as objects_cli
from akorn.cli import sudoku as sudoku_cli
from akorn.cli import viz as viz_cli
from akorn.cli.common import Parser, subcommands


def parser(module, name):
    p = Parser(prog="akorn")
    sub = subcommands(p, dest="command")
    module.add_parser(sub, name, name)
    return p


@pytest.mark.parametrize(
    "words",
    [
        ["--steps", "128", "--candidates", "4", "--compile", "--check-every", "2"],
        ["--steps=128", "--candidates=4", "--compile", "--check_every=2"],
        ["steps=128", "candidates=4", "compile=true", "check_every=2"],
        ["steps=128", "--candidates", "4", "compile=yes", "check-every=2"],
    ],
)
def test_eval_options_are_spelled_three_ways(words):
    args = parser(sudoku_cli, "sudoku").parse_args(["sudoku", "eval", "RUN", "--data", "d.csv", *words])
    assert (args.steps, args.candidates, args.compile, args.check_every) == (128, 4, True, 2)
    assert args.overrides == []


def test_words_that_are_not_options_stay_run_config_overrides():
    args = parser(sudoku_cli, "sudoku").parse_args(["sudoku", "eval", "RUN", "data=d.csv", "heads=2"])
    assert args.data == "d.csv" and args.overrides == ["heads=2"]


def test_renamed_options_still_work_with_a_notice(capsys):
    p = parser(sudoku_cli, "sudoku")
    args = p.parse_args(["sudoku", "solve", "--T", "32", "--K", "3", "x" * 81])
    assert (args.steps, args.candidates) == (32, 3)
    err = capsys.readouterr().err
    assert "--T is deprecated, use --steps" in err and "--K is deprecated, use --candidates" in err
    args = p.parse_args(["sudoku", "export", "RUN", "--out", "o", "test_steps=8"])
    assert args.eval_steps == 8 and "--test-steps is deprecated" in capsys.readouterr().err
    args = parser(objects_cli, "objects").parse_args(["objects", "eval", "RUN", "--k", "5"])
    assert args.clusters == 5
    args = parser(viz_cli, "viz").parse_args(["viz", "waves", "--T", "7", "--N", "4"])
    assert (args.steps, args.n) == (7, 4)


def test_training_takes_config_fields_as_flags_and_config_anywhere():
    p = parser(sudoku_cli, "sudoku")
    args = p.parse_args(
        [
            "sudoku",
            "train",
            "preset=cpu",
            "--epochs",
            "3",
            "--lr=0.01",
            "--config",
            "c.yaml",
            "batch_size=20",
            "--resume",
            "RUN",
        ]
    )
    assert args.config == "c.yaml" and args.resume == "RUN"
    assert args.overrides == ["preset=cpu", "epochs=3", "lr=0.01", "batch_size=20"]


def test_a_switch_word_must_be_a_boolean():
    with pytest.raises(SystemExit, match="a switch takes true or false"):
        parser(sudoku_cli, "sudoku").parse_args(["sudoku", "eval", "RUN", "--data", "d", "compile=maybe"])
