"""A core-only install: every command that needs an optional extra says which, in one line, before any work."""

from __future__ import annotations

import sys

import pytest

from akorn.cli.main import main
from akorn.extras import EXTRAS, MODULE_EXTRA
from tests.conftest import ROOT

# import name -> the distribution pyproject.toml lists for it
DISTRIBUTION = {
    "matplotlib": "matplotlib",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "pyautoattack": "pyautoattack",
    "imagecorruptions": "imagecorruptions-imaug",
    "torchmetrics": "torchmetrics",
    "pycocotools": "pycocotools",
    "imgviz": "imgviz",
    "umap": "umap-learn",
}


def test_the_table_of_extras_is_pyprojects():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and newer
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        names = {d.split("=")[0].split(">")[0].split("[")[0] for d in declared[extra]}
        for m in modules:
            assert DISTRIBUTION[m] in names, (extra, m)
    for module, extra in MODULE_EXTRA.items():
        assert module in EXTRAS[extra], module


CASES = [
    (["viz", "waves"], "matplotlib", "viz"),
    (["viz", "sudoku"], "PIL", "viz"),
    (["viz", "accuracy", "r.json"], "matplotlib", "viz"),
    (["viz", "objects", "pretrained:tetrominoes"], "sklearn", "objects"),
    (["viz", "adapters", "run"], "sklearn", "objects"),
    (["objects", "eval", "pretrained:tetrominoes"], "sklearn", "objects"),
    (["objects", "train", "preset=tiny"], "sklearn", "objects"),
    (["adapters", "eval", "run"], "sklearn", "objects"),
    (["classify", "eval", "pretrained:cifar10"], "pyautoattack", "classify"),
    (["classify", "eval", "pretrained:cifar10"], "torchmetrics", "classify"),
]


@pytest.mark.parametrize("words, module, extra", CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_missing_extra_is_one_line_and_nothing_written(words, module, extra, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: find_spec and import both fail
    assert main(words) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f'pip install "akorn[{extra}]"' in err[0] and module in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_an_undeclared_missing_module_is_still_one_line(monkeypatch, capsys):
    import akorn.cli.demo as demo

    def needs_imgviz(args):
        import imgviz  # noqa: F401

    monkeypatch.setitem(sys.modules, "imgviz", None)
    monkeypatch.setattr(demo, "cmd_demo", needs_imgviz)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['akorn: error: imgviz is not installed; it comes with the photos extra: pip install "akorn[photos]"']
