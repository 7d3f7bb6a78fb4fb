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
    """Training commands take ``--key value`` as config fields: an unknown one is the one-line
    config error that names the closest field; every other command prints its usage and one line."""
    try:
        code = main([*path, "--no-such-option-here", "1"])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    if path[-1] == "train":
        assert err.strip().splitlines() == ["akorn: error: unknown config key 'no_such_option_here' in command line"]
    else:
        assert err.startswith("usage: akorn " + " ".join(path) + " ")
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"akorn {' '.join(path)}: error: "), last
        # argparse names missing required arguments and bad positionals before unknown options
        assert any(w in last for w in ("--no-such-option-here", "required", "invalid choice")), last


@pytest.mark.parametrize("path", [("sudoku",), ("classify",), ("viz",), ("objects",), ("adapters",)], ids=" ".join)
def test_unknown_subcommand_gets_that_commands_usage(path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*path, "no-such-subcommand"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("usage: akorn " + " ".join(path))
    assert err.strip().splitlines()[-1].startswith("akorn " + " ".join(path) + ": error: argument")
