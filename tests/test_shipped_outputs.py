"""The shipped Sudoku models' outputs, pinned: digits and energies on fixed boards and seeds.

``tests/data/shipped_outputs.json`` was written by the code before the package took its present
shape; any change to the maths or to how the loop is driven shows up here.
"""

import json
from pathlib import Path

import pytest
import torch

from akorn.experiments.model_files import load_model
from akorn.experiments.sudoku import data as sdata
from akorn.experiments.sudoku.inference import run_akorn

PINNED = json.loads((Path(__file__).parent / "data" / "shipped_outputs.json").read_text())


def _grids(strings):
    return ["".join(map(str, d)) for d in strings]


@pytest.mark.parametrize("name", ["sudoku-akorn", "sudoku-akorn-c128"])
def test_shipped_model_outputs_are_pinned(name):
    ds = sdata.generate_set(4, (25, 34), seed=11, style="unique")
    assert _grids(ds.quiz.tolist()) == PINNED["quiz"]
    want = PINNED["models"][name]
    model = load_model(f"pretrained:{name}", "sudoku", compile=False).model
    model = model.double()
    torch.manual_seed(0)
    noise = torch.randn(4, 81, model.channels, dtype=torch.float64)
    with torch.no_grad():
        logits, energy = model(ds.quiz, steps=12, noise=noise, return_energy=True)
        tr = run_akorn(model, ds.quiz.repeat_interleave(2, 0), steps=12, generator=torch.Generator().manual_seed(5))
    assert _grids((logits.argmax(-1) + 1).tolist()) == want["forward_digits"]
    torch.testing.assert_close(energy, torch.tensor(want["forward_energy"], dtype=torch.float64), rtol=1e-9, atol=1e-7)
    assert _grids(tr.digits.tolist()) == want["voting_digits"]
    torch.testing.assert_close(tr.score, torch.tensor(want["voting_score"]), rtol=1e-6, atol=1e-3)
    torch.testing.assert_close(tr.confidence, torch.tensor(want["voting_confidence"]), rtol=1e-6, atol=1e-6)
