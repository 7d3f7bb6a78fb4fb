"""The robustness audit: batched EoT, the radius sweep's sanity check, fixed states, the command, its
resume and its bad input."""

from __future__ import annotations

import json

import pytest
import torch

from akorn.cli.main import main
from akorn.experiments.classify import audit
from akorn.experiments.classify.models import AttentionAKOrN, ResNet18
from tests.test_classify import trained, write_npz  # noqa: F401  (the module-scoped tiny run)


def _tiny_akorn():
    torch.manual_seed(0)
    return AttentionAKOrN(image_size=16, patch=4, channels=16, layers=1, heads=2, steps=2, classes=4)


def test_batched_copies_are_independent_draws_and_fixed_states_repeat():
    s = audit.Sampler(_tiny_akorn(), torch.device("cpu"), seed=0, max_rows=5)
    x = torch.rand(3, 3, 16, 16)
    many = s.logits(x, copies=4)  # (4, 3, K), in parts of 5 rows
    assert many.shape == (4, 3, 4) and not torch.allclose(many[0], many[1])
    assert torch.equal(s.logits(x, 2, fixed_seed=7), s.logits(x, 2, fixed_seed=7))
    # a deterministic model gives one pass whatever the number of copies asked
    d = audit.Sampler(ResNet18(classes=4), torch.device("cpu"), seed=0, max_rows=8)
    assert d.logits(x, copies=16).shape[0] == 1


def test_pgd_raises_the_loss_and_the_sweep_reaches_zero():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    s = audit.Sampler(model, torch.device("cpu"), seed=0, max_rows=64)
    x, y = torch.rand(16, 3, 8, 8), torch.arange(16) % 4
    adv, losses = audit.pgd(audit.cross_entropy_of(s, y, 1), x, 8 / 255, 5)
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6 and losses[-1] > losses[0]
    plan = audit.AuditPlan(sweep=(1.0,), sections=("sweep",), steps=10)
    out = audit.run_setting("sweep", ["pgd eps=255/255"], s, x, y, plan, 0)
    assert sum(out["pgd eps=255/255"][0]) == 0  # an unbounded attack on a linear model always succeeds


def test_summary_flags_an_attack_that_fails_and_checks_the_loss():
    plan = audit.AuditPlan(sweep=(8 / 255, 1.0), eot=(1,), means=(1,))
    recs = [{"setting": "clean", "correct": True}] * 10
    recs += [{"setting": "pgd eps=255/255", "correct": i < 4} for i in range(10)]
    recs += [{"setting": "pgd E=1", "correct": i < 5} for i in range(10)]
    recs += [{"setting": "pgd E=1", "losses": [1.0, 0.5, 2.0]}]
    summary = audit.summarize(recs, plan)
    assert summary["sweep_sanity"]["passed"] is False and "WARNING" in summary["verdict"]
    assert "rose in only 50% of the steps" in summary["verdict"]
    assert summary["loss_check"]["pgd E=1"]["steps_with_loss_increase"] == 0.5
    assert summary["settings"]["pgd E=1"] == {"accuracy": 0.5, "se": pytest.approx(0.1581, abs=1e-4), "n": 10}


AUDIT = ["--limit", "6", "--eot", "1,2", "--apgd-eot", "1", "--sweep", "8/255,1", "--means", "1,2",
         "--square-queries", "5", "--steps", "2", "--batch-size", "4", "--quiet"]  # fmt: skip


def test_audit_command_writes_and_resumes(trained, tmp_path):  # noqa: F811
    tmp, npz, run = trained
    out = tmp_path / "audit"
    words = ["classify", "audit", str(run), "--data", str(npz), "--out", str(out), "--surrogate", str(run)] + AUDIT
    assert main(words) == 0
    report = json.loads((out / "report.json").read_text())
    names = set(report["settings"])
    assert {"clean", "pgd E=2", "apgd E=1", "noise eps=255/255", "fixed states: fresh states", "mean M=2: attacked",
            "transfer from surrogate", "square q=5"} <= names  # fmt: skip
    assert all(v["n"] == 6 for v in report["settings"].values())
    assert report["verdict"].startswith("Clean accuracy") and (out / "audit.png").stat().st_size > 1000
    lines = (out / "records.jsonl").read_text().splitlines()
    (out / "records.jsonl").write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    assert main(words + ["--resume"]) == 0
    assert json.loads((out / "report.json").read_text())["settings"].keys() == report["settings"].keys()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--eps", "0"], "every radius must be in (0, 1]"),
        (["--sweep", "8/255,2"], "every radius must be in (0, 1]"),
        (["--eot", "0,4"], "--eot: every value must be at least 1"),
        (["--means", "0"], "--means: every value must be at least 1"),
        (["--square-queries", "0"], "--square-queries must be at least 1"),
        (["--sections", "eot,magic"], "unknown audit section 'magic'"),
        (["--surrogate", "other"], "--surrogate"),
    ],
)
def test_audit_bad_input_writes_nothing(trained, tmp_path, capsys, extra, message):  # noqa: F811
    tmp, npz, run = trained
    if extra[0] == "--surrogate":
        other = tmp_path / "other.npz"
        write_npz(other, n=16, classes=3, size=32)
        assert main(["classify", "train", "preset=tiny", f"data={other}", f"out_dir={tmp_path}", "name=other"]) == 0
        extra = ["--surrogate", str(tmp_path / "other")]
        message = "classes"
        capsys.readouterr()
    out = tmp_path / "out"
    assert main(["classify", "audit", str(run), "--data", str(npz), "--out", str(out), "--quiet"] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_audit_of_a_run_without_weights(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["classify", "audit", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
