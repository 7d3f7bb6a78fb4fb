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
