"""Object discovery: datasets, augmentations, metrics against scikit-learn, masks, bad input."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from akorn.errors import UserError
from akorn.experiments.objects import datasets
from akorn.experiments.objects.augment import colour_jitter_random_order, crop_boxes, shift_hue, simclr_views
from akorn.experiments.objects.experiment import ObjectsConfig, ObjectsExperiment, nt_xent
from akorn.experiments.objects.masks import cluster_features, uptiled_features
from akorn.experiments.objects.metrics import adjusted_rand_index, contact, fg_ari, mbo, scores_by_contact
from akorn.experiments.objects.models import ImageAKOrN, ImageIterated
from tests.conftest import run_cli


@pytest.mark.parametrize(
    "name, size, kmin, kmax", [("tetrominoes", 32, 3, 3), ("dsprites", 64, 1, 5), ("clevr-like", 128, 1, 6)]
)
def test_generated_datasets_are_deterministic_with_consistent_masks(name, size, kmin, kmax):
    a, b = datasets.generate(name, 6, seed=3), datasets.generate(name, 6, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert a.images.shape == (6, size, size, 3) and a.masks.shape == (6, size, size)
    for img, m in zip(a.images.numpy(), a.masks.numpy()):
        ids = set(np.unique(m)) - {0}
        assert ids == set(range(1, len(ids) + 1)) and kmin <= len(ids) <= kmax
        if name == "tetrominoes":  # black background, coloured objects
            assert (img[m == 0] == 0).all() and (img[m > 0].max(-1) == 255).all()
    assert not torch.equal(datasets.generate(name, 2, seed=4).images, a.images[:2])


def test_tetromino_layouts():
    # crop35: 5x5 blocks on the grid of the 35x35 image, seen through the centre crop [1:33], so
    # blocks start one pixel before a multiple of 5 and border pieces lose rows or columns.
    crop = datasets.generate("tetrominoes", 60, seed=1)
    sizes = []
    for m in crop.masks.numpy():
        for i in range(1, 4):
            ys, xs = np.nonzero(m == i)
            blocks = set(zip((ys + 1) // 5, (xs + 1) // 5))
            assert len(blocks) == 4
            for by, bx in blocks:  # every visible pixel of a block belongs to its piece
                assert (m[max(5 * by - 1, 0) : 5 * by + 4, max(5 * bx - 1, 0) : 5 * bx + 4] == i).all()
            sizes.append(len(ys))
    assert 4 * 3 * 3 <= min(sizes) < 100 and max(sizes) == 100  # a corner block keeps at least 3x3 pixels
    assert max(max(np.nonzero(m)[0].max(), np.nonzero(m)[1].max()) for m in crop.masks.numpy()) == 31
    # dense32: the older generator, whole blocks on the 6x6 grid of the top-left 30x30 pixels.
    dense = datasets.generate("tetrominoes", 60, seed=1, tetromino_layout="dense32")
    for m in dense.masks.numpy():
        assert all((m == i).sum() == 100 for i in range(1, 4)) and not m[30:].any() and not m[:, 30:].any()
    with pytest.raises(UserError, match="tetromino_layout must be one of"):
        datasets.generate("tetrominoes", 1, tetromino_layout="sparse")


def test_runs_saved_before_tetromino_layout_evaluate_on_the_dense_layout(tmp_path):
    from akorn.engine.config import to_dict
    from akorn.engine.trainer import RunFolder

    cfg = to_dict(ObjectsConfig())
    assert cfg.pop("tetromino_layout") == "crop35"
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "objects", "config": cfg}))
    assert RunFolder(tmp_path).read_config(ObjectsExperiment())["tetromino_layout"] == "dense32"


def test_ari_matches_scikit_learn_and_fg_ari_ignores_background():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 4, 200), rng.integers(0, 5, 200)
        assert abs(adjusted_rand_index(a, b) - adjusted_rand_score(a, b)) < 1e-12
    a = np.array([0, 0, 1, 1, 2, 2])
    assert adjusted_rand_index(a, a + 7) == pytest.approx(1.0)
    assert adjusted_rand_index(np.zeros(5), np.zeros(5)) == adjusted_rand_score(np.zeros(5), np.zeros(5))
    gt = np.array([[0, 0, 1, 1], [0, 0, 2, 2]])
    pred = np.array([[5, 6, 3, 3], [7, 8, 4, 4]])  # background split arbitrarily: must not matter
    assert fg_ari(gt, pred) == pytest.approx(1.0)


def test_mbo_exact_ious():
    gt = np.array([[1, 1, 0, 0], [1, 1, 0, 2], [0, 0, 0, 2], [0, 0, 0, 2]])
    pred = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 2], [0, 0, 0, 2]])
    # object 1: best IoU with segment 1 = 4/6; object 2: with segment 2 = 2/3
    assert mbo(gt, pred) == pytest.approx((4 / 6 + 2 / 3) / 2)


def test_contact_groups_images_by_how_their_objects_meet():
    gt = np.zeros((6, 6), np.int64)
    gt[0:2, 0:2], gt[4:6, 4:6] = 1, 2  # apart (a diagonal gap)
    img = np.zeros((6, 6, 3), np.uint8)
    img[gt == 1], img[gt == 2] = (255, 0, 0), (255, 0, 0)
    assert contact(gt, img) == "apart"
    touching = gt.copy()
    touching[2, 0:2] = 2  # object 2 now shares an edge with object 1
    assert contact(touching, img) == "touching"  # pixel (2, 0) is still black: mean colours differ
    img2 = img.copy()
    img2[touching == 2] = (255, 0, 0)
    assert contact(touching, img2) == "touching_same_colour"
    img2[touching == 2] = (0, 0, 255)
    assert contact(touching, img2) == "touching"
    groups = scores_by_contact([gt, touching, touching], [img, img, img2], [1.0, 0.5, 0.7])
    assert groups["apart"] == {"images": 1, "fg_ari_mean": 1.0}
    assert groups["touching"] == {"images": 2, "fg_ari_mean": pytest.approx(0.6)}
    assert groups["touching_same_colour"] == {"images": 0, "fg_ari_mean": None}


def test_augmentations_deterministic_and_in_range():
    x = torch.rand(4, 3, 16, 16)
    a = simclr_views(x, torch.Generator().manual_seed(1))
    b = simclr_views(x, torch.Generator().manual_seed(1))
    c = simclr_views(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("style", ["torchvision", "yiq"])
def test_both_view_styles_deterministic_and_in_range(style):
    x = torch.rand(6, 3, 16, 16)
    a = simclr_views(x, torch.Generator().manual_seed(3), style)
    assert torch.equal(a, simclr_views(x, torch.Generator().manual_seed(3), style))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    with pytest.raises(ValueError, match="style must be one of"):
        simclr_views(x, torch.Generator(), "pil")


def test_crop_boxes_are_torchvisions_integer_boxes_inside_the_image():
    boxes = crop_boxes(4000, 32, 24, torch.Generator().manual_seed(0), scale=(0.08, 1.0))
    top, left, h, w = boxes.unbind(1)
    assert torch.equal(boxes, boxes.round()) and (h >= 1).all() and (w >= 1).all()
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 24).all()
    area = h * w / (32 * 24)
    # areas stay in the scale range (up to the rounding of h and w); the smallest crops do occur
    assert area.min() >= 0.06 and area.max() <= 1.0 and (area < 0.15).float().mean() > 0.05
    assert ((w / h) >= 3 / 4 * 0.85).all() and ((w / h) <= 4 / 3 * 1.15).all()
    # a scale no box can reach falls back to the centred whole image, aspect clamped (24/32 fits)
    whole = crop_boxes(5, 32, 24, torch.Generator().manual_seed(0), scale=(2.0, 3.0))
    assert whole.tolist() == [[0.0, 0.0, 32.0, 24.0]] * 5


def test_hsv_hue_shift_turns_primaries_and_composes():
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    assert torch.allclose(shift_hue(red, torch.tensor([1 / 3])), red.roll(1, 1), atol=1e-6)  # red -> green
    x = torch.rand(3, 3, 8, 8)
    assert torch.allclose(shift_hue(x, torch.zeros(3)), x, atol=1e-6)
    two = shift_hue(shift_hue(x, torch.full((3,), 0.05)), torch.full((3,), 0.04))
    assert torch.allclose(two, shift_hue(x, torch.full((3,), 0.09)), atol=1e-5)
    grey = torch.full((1, 3, 4, 4), 0.3)
    assert torch.allclose(shift_hue(grey, torch.tensor([0.2])), grey)  # no hue, nothing to turn


def test_random_order_jitter_clamps_each_step_and_skips_with_probability():
    x = torch.rand(8, 3, 8, 8)
    assert torch.equal(colour_jitter_random_order(x, torch.Generator().manual_seed(0), p=0.0), x)
    # brightness alone: each image scaled by one factor in [0.6, 1.4] and clamped
    y = colour_jitter_random_order(x, torch.Generator().manual_seed(0), contrast=0, saturation=0, hue=0, p=1.0)
    ratio = (y / x)[x < 0.5].view(-1)
    assert y.max() <= 1 and ratio.min() >= 0.6 - 1e-5 and ratio.max() <= 1.4 + 1e-5


def test_runs_saved_before_view_styles_keep_the_yiq_views(tmp_path):
    from akorn.engine.config import to_dict
    from akorn.engine.trainer import RunFolder

    cfg = to_dict(ObjectsConfig())
    assert (cfg.pop("views"), cfg.pop("crop_scale_min")) == ("torchvision", 0.08)
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "objects", "config": cfg}))
    old = RunFolder(tmp_path).read_config(ObjectsExperiment())
    assert (old["views"], old["crop_scale_min"]) == ("yiq", 0.2)
    with pytest.raises(UserError, match="views"):
        ObjectsConfig(views="pil").validate()
    with pytest.raises(UserError, match="crop_scale_min"):
        ObjectsConfig(crop_scale_min=0).validate()


def test_nt_xent_prefers_matching_views():
    z = torch.randn(8, 16)
    assert nt_xent(z, z, 0.1) < nt_xent(z, torch.randn(8, 16), 0.1)


@pytest.mark.parametrize(
    "model",
    [
        ImageAKOrN(16, 4, 16, coupling="attn", heads=2, steps=2),
        ImageAKOrN(16, 4, 16, coupling="conv", steps=2),
        ImageIterated(16, 4, 16, steps=2, heads=2),
        ImageIterated(16, 4, 16, steps=2, mixer="conv"),
    ],
)
def test_models_features_and_uptiling(model):
    img = torch.rand(2, 3, 16, 16)
    assert model.features(img).shape == (2, 16, 4, 4)
    assert model(img).shape == (2, 16)
    up = uptiled_features(model, img, 2, torch.Generator().manual_seed(0))
    assert up.shape == (2, 16, 8, 8)
    with pytest.raises(ValueError, match="16x16"):
        model.features(torch.rand(1, 3, 20, 20))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.features(torch.rand(1, 1, 16, 16))


def test_uptiling_shared_noise_starts_every_copy_from_the_same_states():
    torch.manual_seed(0)
    model = ImageAKOrN(16, 4, 16, coupling="conv", steps=2)
    img = torch.rand(2, 3, 16, 16)
    # corner alignment: its first copy is the image itself
    shared = uptiled_features(model, img, 2, torch.Generator().manual_seed(3), noise="shared", align="corner")
    plain = model.features(img, torch.Generator().manual_seed(3))
    assert torch.allclose(shared[:, :, ::2, ::2], plain)  # the unshifted copy, same initial states
    independent = uptiled_features(model, img, 2, torch.Generator().manual_seed(3), align="corner")
    assert torch.allclose(independent[:, :, ::2, ::2], plain)
    assert not torch.allclose(shared[:, :, 1::2, 1::2], independent[:, :, 1::2, 1::2])
    with pytest.raises(ValueError, match="noise"):
        uptiled_features(model, img, 2, torch.Generator(), noise="fresh")


def test_uptiling_centre_alignment_shifts_copies_back_by_the_half_patch_offset():
    """A model whose feature is its patch's mean pixel: with centre alignment the map is the image's
    local means centred on each cell; with corner alignment it is displaced by (p - s) / 2 pixels."""

    class PatchMean(torch.nn.Module):
        patch = 4

        def features(self, img, generator=None):
            return torch.nn.functional.avg_pool2d(img[:, :1], 4)

    img = torch.zeros(1, 3, 16, 16)
    img[:, :, 8:, :] = 1.0  # bottom half bright: the edge is at row 8
    for align, lead in (("corner", 0), ("centre", 1)):
        up = uptiled_features(PatchMean(), img, 4, align=align)[0, 0, :, 0]  # column profile, 16 rows
        # cell r holds the mean of rows [r - lead, r - lead + 4): it first reaches 1 at row 8 + lead
        assert up[8 + lead] == 1.0 and up[7 + lead] < 1.0
    with pytest.raises(ValueError, match="align"):
        uptiled_features(PatchMean(), img, 4, align="middle")


def test_uptiling_reference_alignment_magnifies_like_the_reference_code():
    """The reference code resizes the image to H + p - s pixels and takes windows of it: on a
    linear ramp the dense map then climbs 16/19 of a pixel per cell (16 px, p=4, s=1) where the
    pure shifts of corner alignment climb exactly one."""

    class PatchMean(torch.nn.Module):
        patch = 4

        def features(self, img, generator=None):
            return torch.nn.functional.avg_pool2d(img[:, :1], 4)

    ramp = torch.arange(16, dtype=torch.float64).view(1, 1, 16, 1).expand(1, 3, 16, 16).contiguous()
    corner = uptiled_features(PatchMean(), ramp, 4, align="corner")[0, 0, :, 5]
    reference = uptiled_features(PatchMean(), ramp, 4, align="reference")[0, 0, :, 5]
    inner = slice(3, 12)  # away from the borders; torch's bicubic (a = -0.75) follows a ramp to within 0.03
    torch.testing.assert_close(corner.diff()[inner], torch.ones(9, dtype=torch.float64))
    torch.testing.assert_close(
        reference.diff()[inner], torch.full((9,), 16 / 19, dtype=torch.float64), atol=0.03, rtol=0
    )
    # cell c averages resized rows [c, c + 4): centre c + 2 in resized pixels, (c + 2) * 16/19 - 1/2 in the image's
    c = torch.arange(16, dtype=torch.float64)
    torch.testing.assert_close(reference[inner], ((c + 2) * 16 / 19 - 0.5)[inner], atol=0.05, rtol=0)


def test_eval_cli_offers_every_uptiling_mode():
    """The CLI lists its choices without importing torch; they must stay those of masks.py."""
    from akorn.cli import objects as cli
    from akorn.cli.common import Parser, subcommands
    from akorn.experiments.objects.masks import UPTILE_ALIGN, UPTILE_NOISE

    parser = Parser()
    cli.add_parser(subcommands(parser), "objects", "objects")
    args = parser.parse_args(["objects", "eval", "RUN"])
    assert args.uptile_align == "reference" and args.uptile_noise == "independent"
    for mode in UPTILE_ALIGN:
        assert parser.parse_args(["objects", "eval", "RUN", "--uptile-align", mode]).uptile_align == mode
    for mode in UPTILE_NOISE:
        assert parser.parse_args(["objects", "eval", "RUN", "--uptile-noise", mode]).uptile_noise == mode


def test_identity_omega_model_equals_paper_form_with_half_step():
    torch.manual_seed(0)
    ref = ImageAKOrN(16, 4, 16, coupling="conv", steps=3, omega="identity", gamma=1.0)
    paper = ImageAKOrN(16, 4, 16, coupling="conv", steps=3, omega="none", gamma=0.5)
    paper.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.endswith("gamma")}, strict=False)
    img = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        a = ref.features(img, torch.Generator().manual_seed(0))
        b = paper.features(img, torch.Generator().manual_seed(0))
    assert torch.allclose(a, b, atol=1e-5)


def test_clustering_recovers_planted_groups_and_rejects_bad_k():
    feats = torch.zeros(8, 4, 4)
    feats[0, :2] = 1
    feats[1, 2:] = 1
    feats += 0.01 * torch.randn(8, 4, 4)
    labels = cluster_features(feats, 2)
    assert adjusted_rand_index(labels[:2].ravel().tolist() + labels[2:].ravel().tolist(), [0] * 8 + [1] * 8) == 1.0
    with pytest.raises(ValueError, match="more than the 16 patches"):
        cluster_features(feats, 17)


def test_npz_reader_and_bad_files(tmp_path):
    imgs = np.zeros((3, 8, 8, 3), np.uint8)
    masks = np.zeros((3, 4, 8, 8, 1), np.uint8)
    masks[:, 0] = 1
    masks[:, 0, 2:4, 2:4] = 0
    masks[:, 2, 2:4, 2:4] = 1
    np.savez(tmp_path / "d.npz", image=imgs, mask=masks)
    ds = datasets.read_npz(tmp_path / "d.npz")
    assert ds.masks.shape == (3, 8, 8) and set(np.unique(ds.masks)) == {0, 2}
    np.savez(tmp_path / "bad.npz", image=imgs, mask=np.zeros((3, 7, 7), np.uint8))
    with pytest.raises(UserError, match="do not match"):
        datasets.read_npz(tmp_path / "bad.npz")
    with pytest.raises(UserError, match="unknown dataset"):
        datasets.load("shapes3d", 5, 0)


def test_objects_cli_train_eval_and_errors(tmp_path):
    r = run_cli("objects", "train", "preset=tiny", "threads=1", f"out_dir={tmp_path}", "name=t")
    assert r.returncode == 0, r.stderr
    r = run_cli("objects", "eval", tmp_path / "t", "--limit", "4", "--uptile", "2")
    assert r.returncode == 0, r.stderr
    assert "FG-ARI" in r.stdout and (tmp_path / "t" / "masks-x2.png").exists()
    r = run_cli("objects", "eval", tmp_path / "t", "--limit", "2", "--step", "8", "--json", tmp_path / "s8.json")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "s8.json").read_text())
    assert rep["checkpoint"].endswith("step-00000008") and rep["weights"] == "ema"
    assert rep["data"] == "tetrominoes (crop35)"
    # a model trained on one layout evaluated on the other: an override after the run folder
    r = run_cli(
        "objects",
        "eval",
        tmp_path / "t",
        "tetromino_layout=dense32",
        "--limit",
        "2",
        "--weights",
        "raw",
        "--json",
        tmp_path / "raw.json",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "raw.json").read_text())
    assert rep["weights"] == "raw" and rep["data"] == "tetrominoes (dense32)"
    r = run_cli("objects", "eval", tmp_path / "t", "--step", "3")
    assert r.returncode == 2 and "no checkpoint at step 3; it has steps 6, 8, 10" in r.stderr
    # an exported fp16 model evaluates and animates like its run folder, in a working folder of its own
    r = run_cli("objects", "export", tmp_path / "t", "--out", tmp_path / "m", "--dtype", "fp16")
    assert r.returncode == 0, r.stderr
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["stored_dtype"] == "fp16" and record["training"]["steps"] == 10 and record["config"]["channels"] == 16
    r = run_cli("objects", "eval", tmp_path / "m.safetensors", "--limit", "2", "--json", tmp_path / "m-eval.json",
                cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "objects-eval" / "masks-x1.png").exists()
    assert json.loads((tmp_path / "m-eval.json").read_text())["images"] == 2
    r = run_cli("viz", "objects", tmp_path / "m.safetensors", "--out", tmp_path / "viz")
    assert r.returncode == 0, r.stderr and (tmp_path / "viz" / "index.html").exists()
    r = run_cli("objects", "eval", tmp_path / "m.safetensors", "--step", "8")
    assert r.returncode == 2 and "--step picks a checkpoint of a run folder" in r.stderr
    r = run_cli("objects", "eval", tmp_path / "m.safetensors", "--weights", "raw")
    assert r.returncode == 2 and "--weights raw needs a run folder" in r.stderr
    r = run_cli("objects", "eval", "pretrained:cifar10-akorn")
    assert r.returncode == 2 and "is a model of 'akorn classify', not of 'akorn objects'" in r.stderr
    assert not list(tmp_path.glob("*.tmp"))  # the export wrote through temporary files
    r = run_cli("objects", "eval", "pretrained:clevr")
    assert r.returncode == 2 and "pretrained model 'clevr' is not in this installation" in r.stderr
    r = run_cli("objects", "eval", tmp_path / "t", "--clusters", "100")
    assert r.returncode == 2 and "more than the 64 patches" in r.stderr
    r = run_cli("objects", "train", "preset=tiny", "data=mnist", f"out_dir={tmp_path}", "name=u")
    assert r.returncode == 2 and "unknown dataset 'mnist'" in r.stderr
    r = run_cli("objects", "train", "preset=tiny", "image_size=28", f"out_dir={tmp_path}", "name=v")
    assert r.returncode == 2 and "expects 28x28" in r.stderr
    r = run_cli("objects", "train", "preset=tiny", "image_size=30", f"out_dir={tmp_path}", "name=v")
    assert r.returncode == 2 and "image_size (30) must be a multiple of patch (4)" in r.stderr
    assert not (tmp_path / "v").exists()  # nothing written before the config is checked
    r = run_cli("objects", "train", "preset=tiny", "tetromino_layout=sparse", f"out_dir={tmp_path}", "name=w")
    assert r.returncode == 2 and "tetromino_layout must be one of" in r.stderr
