"""``akorn adapters``: SimCLR training of Kuramoto adapters on a frozen backbone, and the mask comparison."""

from __future__ import annotations

import json

from safetensors.torch import load_file

from akorn.backbones.mobilenet import mobilenet_v2
from akorn.cli.main import main


def test_train_only_adapters_then_compare_masks(tmp_path):
    words = ["adapters", "train", "preset=tiny", "backbone_weights=imagenet", f"out_dir={tmp_path}", "name=a",
             "threads=1"]  # fmt: skip
    assert main(words) == 0
    ckpt = sorted((tmp_path / "a" / "checkpoints").iterdir())[-1]
    saved = load_file(ckpt / "model.safetensors")
    original = mobilenet_v2("imagenet").state_dict()
    backbone = {k.removeprefix("adapter.backbone."): v for k, v in saved.items() if k.startswith("adapter.backbone.")}
    assert backbone.keys() == original.keys() and all(backbone[k].equal(original[k]) for k in original)
    assert main(["adapters", "eval", str(tmp_path / "a"), "--out", str(tmp_path / "m")]) == 0
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    assert set(report["bundled photographs"]) == {"backbone", "backbone+adapters"}
    assert report["tetrominoes scenes"]["backbone"]["images"] == 4
    assert (tmp_path / "m" / "masks.png").stat().st_size > 1000
    # up-tiling: every method's features on 4x4 shifted copies (stride 16 at features.13)
    assert main(["adapters", "eval", str(tmp_path / "a"), "--out", str(tmp_path / "u"), "--uptile", "4"]) == 0
    tiled = json.loads((tmp_path / "u" / "report.json").read_text())
    assert tiled["uptile"] == 4 and tiled["tetrominoes scenes"]["backbone"]["images"] == 4
    assert tiled["tetrominoes scenes"] != report["tetrominoes scenes"]


def test_uptiling_must_divide_every_stride(tmp_path, capsys):
    assert main(["adapters", "train", "preset=tiny", f"out_dir={tmp_path}", "name=s", "threads=1"]) == 0
    capsys.readouterr()
    assert main(["adapters", "eval", str(tmp_path / "s"), "--uptile", "3", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--uptile 3 must divide every method's patch (stride); backbone: 16" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_point_the_backbone_lacks(tmp_path, capsys):
    rc = main(["adapters", "train", "preset=tiny", "points=features.99", f"out_dir={tmp_path}", "name=b"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no submodule 'features.99'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_viz_adapters_on_a_photograph(tmp_path):
    assert main(["adapters", "train", "preset=tiny", f"out_dir={tmp_path}", "name=v", "threads=1"]) == 0
    assert main(["viz", "adapters", str(tmp_path / "v"), "--out", str(tmp_path / "viz")]) == 0
    for f in ("states.gif", "masks.gif", "states-final.png", "masks-final.png", "index.html"):
        assert (tmp_path / "viz" / f).stat().st_size > 100


def test_images_smaller_than_a_patch(tmp_path, capsys):
    rc = main(["adapters", "train", "preset=tiny", "backbone=dino_vits16", "image_size=8", f"out_dir={tmp_path}",
               "name=p"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "multiples of the patch size 16, got 8x8" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p").exists()
