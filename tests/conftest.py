import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def puzzle_csv(tmp_path_factory) -> Path:
    """40 generated SATNet-like puzzles with unique solutions, made by the tests themselves."""
    from akorn.experiments.sudoku import data as sdata

    path = tmp_path_factory.mktemp("sudoku") / "puzzles.csv"
    sdata.write_csv(sdata.generate_set(40, (31, 42), seed=7), path)
    return path


def run_cli(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "akorn", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=kw.pop("cwd", ROOT),
        **kw,
    )


def cli(*argv) -> tuple[int, str, str]:
    """``akorn ARGV`` in this process: exit code, stdout, stderr (argparse's exits included)."""
    from akorn.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()
