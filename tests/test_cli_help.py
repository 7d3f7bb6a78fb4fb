"""Every ``--help`` shows the help of the command it follows, at every depth; unknown words get the
usage of the command they follow and one line, exit 2."""

from __future__ import annotations

import argparse

import pytest

from akorn.cli.main import COMMANDS, build_parser, main


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _all_paths() -> list[tuple[str, ...]]:
    paths = []
    for name in COMMANDS:
        top = _children(build_parser([name]))[name]
        stack = [((name,), top)]
        while stack:
            path, parser = stack.pop()
            paths.append(path)
            stack += [(path + (child,), p) for child, p in _children(parser).items()]
    return sorted(paths)


PATHS = _all_paths()


def test_the_walk_finds_nested_commands():
    assert ("sudoku", "eval") in PATHS and ("viz", "waves") in PATHS and ("classify", "train") in PATHS
    assert len(PATHS) > len(COMMANDS) + 10


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_is_the_help_of_the_command_it_follows(path, flag, capsys):
    with pytest.raises(SystemExit) as e:
        main([*path, flag])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: akorn " + " ".join(path)), out[:200]


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_unknown_option_gets_that_commands_usage(path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*path, "--no-such-option-here", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    lines = [line for line in err.splitlines() if line.startswith("akorn")]
    assert lines[-1].startswith("akorn " + " ".join(path) + ": error:") or lines[-1].startswith("akorn: error:")
    assert "usage: akorn " + " ".join(path) in err or "unknown config key" in err


@pytest.mark.parametrize("path", [("sudoku",), ("classify",), ("viz",), ("objects",), ("adapters",)], ids=" ".join)
def test_unknown_subcommand_gets_that_commands_usage(path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*path, "no-such-subcommand"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("usage: akorn " + " ".join(path))
    assert err.strip().splitlines()[-1].startswith("akorn " + " ".join(path) + ": error: argument")
