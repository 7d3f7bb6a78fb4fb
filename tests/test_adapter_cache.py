"""The feature cache of adapter training: the backbone run once per image, views cropped in feature space."""

from __future__ import annotations

import json

import pytest
import torch

from akorn.cli.main import main
from akorn.core.adapter import KuramotoAdapter
from akorn.experiments import adapter_cache
from akorn.experiments.adapters import resize
from akorn.experiments.objects.datasets import ObjectSet
from tests.test_adapter import TinyConvNet


def _scenes(n=6, size=16):
    g = torch.Generator().manual_seed(0)
    return ObjectSet(torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8),
                     torch.zeros(n, size, size, dtype=torch.uint8))  # fmt: skip


@pytest.mark.parametrize("kind", adapter_cache.KINDS)
def test_cache_holds_every_copy_and_is_rebuilt_identically(kind):
    x = torch.rand(1, 3, 16, 16)
    model = KuramotoAdapter(TinyConvNet(), ["blocks.0", "blocks.1"], x, channels=8, n=2, steps=1, heads=2)
    data = _scenes()

    def build():
        to_input = lambda im: resize(im, 16)  # noqa: E731
        return adapter_cache.build(model, data, 3, to_input, 7, torch.device("cpu"), kind, batch=4, progress=False)

    cache = build()
    assert len(cache) == 6 and cache.copies == 3
    assert cache.outputs["blocks.0"].shape == (6, 3, 8, 8, 8) and cache.outputs["blocks.1"].shape == (6, 3, 16, 4, 4)
    assert cache.outputs["blocks.0"].dtype == torch.float16
    # copies differ (their augmentations were drawn apart); a rebuild with the seed is the same cache
    assert not torch.equal(cache.outputs["blocks.1"][:, 0], cache.outputs["blocks.1"][:, 1])
    assert all(torch.equal(cache.outputs[p], build().outputs[p]) for p in cache.outputs)
    batch = cache.batch(torch.tensor([4, 1]))
    assert torch.equal(batch[adapter_cache.PREFIX + "blocks.1"], cache.outputs["blocks.1"][[4, 1]])


def test_views_pair_different_copies_with_one_crop_per_view_at_every_point():
    B, K = 5, 4
    # copy k of every image is the constant k: which copy a view took can be read off
    same = torch.arange(K, dtype=torch.float16).view(1, K, 1, 1, 1).expand(B, K, 2, 6, 6).clone()
    ramp = torch.linspace(0, 1, 6).view(1, 1, 1, 1, 6).expand(B, K, 2, 6, 6).to(torch.float16)
    batch = {adapter_cache.PREFIX + "a": same + ramp, adapter_cache.PREFIX + "b": same + ramp}
    grids = {"a": (6, 6), "b": (6, 6)}
    v = adapter_cache.views(batch, ["a", "b"], torch.Generator().manual_seed(0), grids, 0, crop=True)
    assert v["a"].shape == (2 * B, 2, 6, 6)
    assert torch.equal(v["a"], v["b"])  # the same copy and crop at both points
    first, second = v["a"][:B].floor().amin((1, 2, 3)), v["a"][B:].floor().amin((1, 2, 3))
    assert (first != second).all()  # the two views of an image come from different copies
    assert not torch.allclose(v["a"][:B] - first.view(B, 1, 1, 1), ramp[:, 0].float(), atol=1e-3)  # cropped
    # without crop, the views are the copies themselves
    plain = adapter_cache.views(batch, ["a", "b"], torch.Generator().manual_seed(0), grids, 0)
    copies = plain["a"][:B].floor().amin((1, 2, 3)).long()
    assert torch.equal(plain["a"][:B], batch[adapter_cache.PREFIX + "a"][torch.arange(B), copies].float())


@pytest.mark.parametrize("kind", adapter_cache.KINDS)
def test_training_with_a_feature_cache_resumes_exactly(tmp_path, capsys, kind):
    words = ["adapters", "train", "preset=tiny", "feature_cache=2", f"cache_views={kind}", f"out_dir={tmp_path}",
             "threads=1"]  # fmt: skip
    assert main(words + ["name=whole", "epochs=2"]) == 0
    assert main(words + ["name=half", "epochs=2", "max_steps=4"]) == 0
    assert main(["adapters", "train", "--resume", str(tmp_path / "half"), "max_steps=0"]) == 0
    from safetensors.torch import load_file

    def last(run):
        return load_file(sorted((tmp_path / run / "checkpoints").iterdir())[-1] / "model.safetensors")

    a, b = last("whole"), last("half")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    config = json.loads((tmp_path / "whole" / "config.json").read_text())
    assert config["config"]["feature_cache"] == 2
    capsys.readouterr()
    rc = main(["adapters", "train", "preset=tiny", "feature_cache=2", "placement=between", f"out_dir={tmp_path}",
               "name=bad"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "feature_cache needs placement=top" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad").exists()
