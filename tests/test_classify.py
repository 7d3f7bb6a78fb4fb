"""Image classification: readers, augmentations, models, attacks, calibration, the commands and their bad input."""

from __future__ import annotations

import gzip
import json
import pickle
import struct

import numpy as np
import pytest
import torch

from akorn.cli.main import main
from akorn.errors import UserError
from akorn.experiments.classify import attacks, augment, augmix, calibration, corruptions, data
from akorn.experiments.classify.evaluation import binomial, spread
from akorn.experiments.classify.models import AKOrNClassifier, AttentionAKOrN, ResNet18, ViT

# -- data -----------------------------------------------------------------------------------------


def _images(n, size=8, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def write_npz(path, n=40, classes=4, size=8, seed=0):
    labels = np.arange(n) % classes
    names = np.array([f"c{i}" for i in range(classes)])
    np.savez(path, images=_images(n, size, seed=seed), labels=labels, class_names=names)
    return path


def test_cifar10_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    originals = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        raw = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        originals[name] = raw
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": raw, b"labels": [1, 2, 9]}, f)
    train = data.load(f"cifar10:{tmp_path}", "train")
    test = data.load(f"cifar10:{folder}", "test")
    assert train.images.shape == (15, 32, 32, 3) and len(test) == 3
    assert train.class_names[9] == "truck"
    # the batches hold rows of 1024 red, 1024 green, 1024 blue values
    first = originals["data_batch_1"][0]
    assert train.images[0, 0, 1, 0] == first[1] and train.images[0, 0, 1, 2] == first[2048 + 1]
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="test_batch"):
        data.load(f"cifar10:{folder}", "test")


def test_npz_layouts_and_label_range(tmp_path):
    ds = data.read_npz(write_npz(tmp_path / "a.npz"))
    assert ds.images.shape == (40, 8, 8, 3) and ds.class_names == ("c0", "c1", "c2", "c3")
    chw = np.random.default_rng(0).random((5, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "b.npz", images=chw, labels=np.zeros(5))
    assert data.read_npz(tmp_path / "b.npz").images.shape == (5, 8, 8, 3)
    three = np.array(["a", "b", "c"])
    np.savez(tmp_path / "c.npz", images=_images(4), labels=np.array([0, 1, 2, 7]), class_names=three)
    with pytest.raises(UserError, match="label 7 is outside 0..2"):
        data.read_npz(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", images=_images(4), labels=np.array([0, 1, -1, 0]), class_names=np.array(["a", "b"]))
    with pytest.raises(UserError, match="label -1"):
        data.read_npz(tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", images=np.zeros((4, 8, 8, 5), np.uint8), labels=np.zeros(4))
    with pytest.raises(UserError, match="images must be"):
        data.read_npz(tmp_path / "e.npz")


def test_fashion_mnist_idx(tmp_path):
    imgs = _images(6, 28, 1)[..., 0]
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">HBB3I", 0, 8, 3, 6, 28, 28) + imgs.tobytes())
    with open(tmp_path / "t10k-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">HBBI", 0, 8, 1, 6) + bytes([0, 1, 2, 3, 4, 9]))
    ds = data.load(f"fashion-mnist:{tmp_path}", "test")
    assert ds.images.shape == (6, 28, 28, 1) and ds.labels.tolist() == [0, 1, 2, 3, 4, 9]
    assert np.array_equal(ds.images[..., 0].numpy(), imgs)
    with pytest.raises(UserError, match="train-images"):
        data.load(f"fashion-mnist:{tmp_path}", "train")


def write_folder(root, classes=3, per_class=4, size=12):
    from PIL import Image

    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(_images(1, size, seed=10 * c + i)[0]).save(root / f"class{c}" / f"{i}.png")
    return root


def test_image_folder_in_memory_streamed_and_resized(tmp_path):
    root = write_folder(tmp_path / "imgs")
    mem = data.load(str(root), "train")
    assert mem.images.shape == (12, 12, 12, 3) and mem.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    streamed = data.load(str(root), "train", workers=2, in_memory=False)
    batch = streamed.batch(torch.tensor([0, 5, 11, 3, 7]))
    assert torch.equal(batch["images"], mem.images[[0, 5, 11, 3, 7]])
    assert data.load(str(root), "train", image_size=8).images.shape == (12, 8, 8, 3)


def test_image_folder_bad_input(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(UserError, match="no images"):
        data.load(str(tmp_path / "empty"), "train")
    with pytest.raises(UserError, match="no such image folder"):
        data.load(str(tmp_path / "missing"), "train")
    root = write_folder(tmp_path / "imgs")
    bad = root / "class1" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(UserError, match="broken.jpg"):
        data.load(str(root), "train")


# -- augmentations --------------------------------------------------------------------------------


def test_augmentations_are_seeded_and_stay_in_range():
    x = torch.rand(16, 3, 16, 16)
    names = augment.parse("flip,crop,jitter,augmix,noise")
    a = augment.augment(x, torch.Generator().manual_seed(3), names)
    b = augment.augment(x, torch.Generator().manual_seed(3), names)
    c = augment.augment(x, torch.Generator().manual_seed(4), names)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        augment.parse("flip,blur")


def test_flip_crop_and_noise_do_what_they_say():
    x = torch.rand(64, 3, 8, 8)
    f = augment.flip(x, torch.Generator().manual_seed(0))
    same = (f == x).flatten(1).all(1)
    mirrored = (f == x.flip(3)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()
    full = augment.resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(full, x, atol=1e-5)  # the whole image at its own size
    n = augment.linf_noise(torch.full((8, 3, 4, 4), 0.5), torch.Generator().manual_seed(0), eps=0.1)
    assert (n - 0.5).abs().max() <= 0.1 + 1e-6


def _pil_reference(op, img, *arg):
    from PIL import Image, ImageOps

    return np.asarray(getattr(ImageOps, op)(Image.fromarray(img), *arg))


def test_augmix_pixel_operations_match_pil():
    img = (np.random.default_rng(0).random((16, 16, 3)) ** 2 * 255).astype(np.uint8)
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255

    def back(y):
        return (y[0].permute(1, 2, 0) * 255).round().byte().numpy()

    assert np.array_equal(back(augmix.equalize(t)), _pil_reference("equalize", img))
    # PIL truncates its lookup table where this rounds
    assert np.abs(back(augmix.autocontrast(t)).astype(int) - _pil_reference("autocontrast", img)).max() <= 1
    assert np.array_equal(back(augmix.posterize(t, torch.tensor([3.0]))), _pil_reference("posterize", img, 3))
    ours = back(augmix.solarize(t, torch.tensor([128 / 255])))
    assert np.abs(ours.astype(int) - _pil_reference("solarize", img, 128)).max() <= 1


# -- models ---------------------------------------------------------------------------------------


def test_classifier_matches_the_authors_architecture():
    """The authors' knet.AKOrN (n=2, ch=64, ksizes 9/7/5, ro_N=2) has 7,023,760 trainable parameters."""
    m = AKOrNClassifier()
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == 7_023_760
    assert [layer.coupling.conv.kernel_size for layer in m.layers] == [(9, 9), (7, 7), (5, 5)]
    assert [layer.channels for layer in m.layers] == [64, 128, 256]
    assert all(layer.n == 2 and layer.steps == 3 and layer.omega_kind == "global" for layer in m.layers)
    assert all(abs(float(layer.omega().detach()) - 1.0) < 1e-6 for layer in m.layers)


@pytest.mark.parametrize(
    "model",
    [
        lambda: AKOrNClassifier(channels=8, stages=2, kernel_sizes=(3,), steps=1),
        lambda: AttentionAKOrN(image_size=16, patch=4, channels=16, layers=2, heads=2, steps=1),
        lambda: ResNet18(width=8),
        lambda: ViT(image_size=16, patch=4, channels=16, depth=1, heads=2),
    ],
)
def test_models_give_logits_and_reject_wrong_images(model):
    m = model()
    x = torch.rand(2, 3, 16, 16)
    assert m(x, torch.Generator().manual_seed(0)).shape == (2, 10)
    with pytest.raises(ValueError, match="images must be"):
        m(torch.rand(2, 1, 16, 16))


def test_akorn_forward_is_random_and_seeded():
    m = AKOrNClassifier(channels=8, stages=1, kernel_sizes=(3,), steps=2).eval()
    x = torch.rand(2, 3, 8, 8)
    a = m(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, m(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, m(x, torch.Generator().manual_seed(2)))


# -- attacks, corruptions, calibration ------------------------------------------------------------


def test_pgd_stays_in_the_ball_and_raises_the_loss():
    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    x, y = torch.rand(20, 3, 4, 4), torch.randint(0, 5, (20,))
    adv = attacks.pgd_linf(lin, x, y, eps=0.05, steps=10)
    assert (adv - x).abs().max() <= 0.05 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    ce = torch.nn.functional.cross_entropy
    assert ce(lin(adv), y) > ce(lin(x), y) + 0.01
    # EoT on a deterministic model averages identical gradients
    g1 = attacks.input_gradient(lin, x, y, eot=1)
    assert torch.allclose(attacks.input_gradient(lin, x, y, eot=3), g1, atol=1e-6)


def test_eps_attack_and_corruption_names():
    assert attacks.parse_eps("8/255") == pytest.approx(8 / 255)
    for bad in ("2", "-0.1", "abc", "1/0"):
        with pytest.raises(UserError, match="eps"):
            attacks.parse_eps(bad)
    with pytest.raises(UserError, match="unknown attack 'fgsm'"):
        attacks.parse_attacks("pgd,fgsm")
    assert len(corruptions.parse("all")) == 15
    with pytest.raises(UserError, match="unknown corruption 'rain'"):
        corruptions.parse("fog,rain")
    with pytest.raises(UserError, match="severities"):
        corruptions.parse_severities("0,6")


def test_corruptions_are_seeded_per_image():
    imgs = _images(3, 32)
    a = corruptions.corrupt_images(imgs, "gaussian_noise", 3, first_index=10)
    b = corruptions.corrupt_images(imgs[1:], "gaussian_noise", 3, first_index=11)
    assert a.shape == imgs.shape and a.dtype == np.uint8 and not np.array_equal(a, imgs)
    assert np.array_equal(a[1:], b)  # image 11 is the same whichever batch it is in


def test_expected_calibration_error_by_hand():
    # two bins used: confidence 0.9 (3 images, 2 right) and 0.6 (2 images, both right)
    probs = torch.tensor([[0.9, 0.1]] * 3 + [[0.4, 0.6]] * 2)
    labels = torch.tensor([0, 0, 1, 1, 1])
    expected = (3 * abs(2 / 3 - 0.9) + 2 * abs(1.0 - 0.6)) / 5
    assert calibration.expected_calibration_error(probs, labels, 15) == pytest.approx(expected, abs=1e-6)
    bins = calibration.reliability_bins(probs.max(1).values.numpy(), np.array([1, 1, 0, 1, 1]), 15)
    assert sum(b["count"] for b in bins) == 5


def test_binomial_error_and_spread():
    b = binomial([True] * 3 + [False])
    assert b["accuracy"] == 0.75 and b["n"] == 4 and b["se"] == pytest.approx((0.75 * 0.25 / 4) ** 0.5)
    assert spread(10, 0).tolist() == list(range(10)) and spread(1000, 5).tolist() == [0, 250, 500, 749, 999]


# -- the commands ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("classify")
    npz = write_npz(tmp / "train.npz", n=32, classes=4, size=32)
    run = tmp / "run"
    rc = main(["classify", "train", "preset=tiny", f"data={npz}", f"out_dir={tmp}", "name=run", "threads=1"])
    assert rc == 0
    return tmp, npz, run


def test_train_fills_in_the_data_shape_and_evaluates(trained):
    tmp, npz, run = trained
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert (cfg["classes"], cfg["in_channels"], cfg["image_size"]) == (4, 3, 32)
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert evals and 0 <= evals[-1]["accuracy"] <= 1


def test_eval_report_resume_and_export(trained, capsys):
    tmp, npz, run = trained
    out = tmp / "eval"
    words = ["classify", "eval", str(run), "--out", str(out), "--attacks", "pgd,autoattack", "--attack-limit", "4",
             "--eot", "2", "--pgd-steps", "2", "--corruptions", "fog,contrast", "--severities", "1,5",
             "--corruption-limit", "6", "--quiet", "--threads", "1"]  # fmt: skip
    assert main(words) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["clean"]["n"] == 32
    assert report["attacks"]["pgd"]["n"] == 4 and report["attacks"]["autoattack"]["n"] == 4
    assert set(report["corruptions"]) == {"fog", "contrast"} and 0 <= report["ece"] <= 1
    assert (out / "reliability.png").stat().st_size > 1000
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 32 + 4 + 4 + 2 * 2 * 6
    # an interrupted evaluation: drop the last records, resume, and the report is the same
    (out / "records.jsonl").write_text("\n".join(lines[:-10]) + "\n")
    assert main(words + ["--resume"]) == 0
    assert json.loads((out / "report.json").read_text())["corruption_mean"] == report["corruption_mean"]
    # the report of what is recorded so far, without new work
    (out / "records.jsonl").write_text("\n".join(lines[:-10]) + "\n")
    assert main(words + ["--resume", "--report-only"]) == 0
    partial = json.loads((out / "report.json").read_text())
    assert sum(v["n"] for c in partial["corruptions"].values() for v in c["by_severity"].values()) == 24 - 10
    assert main(words + ["--resume"]) == 0
    # another setting refuses to resume these records
    assert main(words[:-1] + ["1", "--resume", "--eps", "4/255"]) == 2
    assert "another evaluation" in capsys.readouterr().err
    # export and evaluate the exported model's weights
    assert main(["classify", "export", str(run), "--out", str(tmp / "m"), "--dtype", "fp16"]) == 0
    record = json.loads((tmp / "m.json").read_text())
    assert record["config"]["classes"] == 4 and record["stored_dtype"] == "fp16"


def test_eval_at_another_kuramoto_T_records_it(trained):
    from akorn.experiments.model_files import load_model

    tmp, npz, run = trained
    out = tmp / "eval-t3"
    words = ["classify", "eval", str(run), "--out", str(out), "--attacks", "none", "--corruptions", "none", "--quiet"]
    assert main(words + ["--kuramoto-steps", "3"]) == 0
    header = json.loads((out / "records.jsonl").read_text().splitlines()[0])["header"]
    assert header["kuramoto_steps"] == 3 and json.loads((out / "report.json").read_text())["clean"]["n"] == 32
    assert load_model(str(run), "classify", words=["steps=3"]).config.steps == 3
    assert load_model(str(run), "classify").config.steps == 1  # preset=tiny trains T=1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--eps", "1.5"], "eps must be in [0, 1]"),
        (["--attacks", "fgsm"], "unknown attack 'fgsm'"),
        (["--corruptions", "rain"], "unknown corruption 'rain'"),
        (["--limit", "-1"], "--limit must be 0"),
        (["--kuramoto-steps", "-1"], "--kuramoto-steps must be 0"),
        (["--data", "small.npz"], "images are 8x8, the config asks for 32x32"),
    ],
)
def test_eval_bad_options_write_nothing(trained, capsys, extra, message):
    tmp, npz, run = trained
    out = tmp / f"bad{abs(hash(message))}"
    write_npz(tmp / "small.npz", n=4, classes=4, size=8)
    extra = [str(tmp / w) if w.endswith(".npz") else w for w in extra]
    assert main(["classify", "eval", str(run), "--out", str(out), "--quiet"] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_eval_data_of_the_wrong_shape(trained, capsys, tmp_path):
    tmp, npz, run = trained
    np.savez(tmp_path / "gray.npz", images=_images(4, 32, 1), labels=np.zeros(4))
    gray, out = str(tmp_path / "gray.npz"), str(tmp_path / "o")
    rc = main(["classify", "eval", str(run), "--data", gray, "--out", out, "--quiet"])
    assert rc == 2 and "1-channel" in capsys.readouterr().err


def test_train_bad_labels_and_time_limit(tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", images=_images(8), labels=np.array([0, 1, 2, 3, 4, 5, 6, 99]),
             class_names=np.array([str(i) for i in range(10)]))  # fmt: skip
    rc = main(["classify", "train", "preset=tiny", f"data={tmp_path / 'bad.npz'}", f"out_dir={tmp_path}", "name=b"])
    assert rc == 2 and "label 99 is outside 0..9" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    npz = write_npz(tmp_path / "ok.npz", n=16)
    words = ["classify", "train", "preset=tiny", f"data={npz}", f"out_dir={tmp_path}", "name=t", "max_steps=50",
             "time_limit=0.000001", "threads=1"]  # fmt: skip
    assert main(words) == 0
    metrics = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("time_limit_reached") for m in metrics) and metrics[-1]["split"] == "eval"
    assert max(m["step"] for m in metrics) < 50


def test_attention_akorn_on_an_image_folder(tmp_path):
    """The seed's image network: attention AKOrN trained with cross-entropy on a folder in ImageNet's layout."""
    root = write_folder(tmp_path / "imagenet" / "train", classes=3, per_class=4, size=20)
    write_folder(tmp_path / "imagenet" / "val", classes=3, per_class=2, size=20)
    words = ["classify", "train", "preset=tiny", "model=akorn-attn", f"data={tmp_path / 'imagenet'}", "image_size=16",
             "patch=4", "channels=16", "heads=2", "layers=2", "in_memory=false", "workers=2", f"out_dir={tmp_path}",
             "name=attn", "threads=1"]  # fmt: skip
    assert main(words) == 0
    cfg = json.loads((tmp_path / "attn" / "config.json").read_text())["config"]
    assert (cfg["classes"], cfg["image_size"]) == (3, 16) and root.exists()
    evals = [json.loads(x) for x in (tmp_path / "attn" / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert evals[-1]["eval_images"] == 6  # the val split


def test_resume_is_exact(tmp_path):
    from safetensors.torch import load_file

    npz = write_npz(tmp_path / "d.npz", n=32, size=16)
    base = ["classify", "train", "preset=tiny", f"data={npz}", f"out_dir={tmp_path}", "threads=1", "checkpoint_every=2"]
    assert main(base + ["name=straight", "max_steps=4"]) == 0
    assert main(base + ["name=split", "max_steps=2"]) == 0
    assert main(["classify", "train", "--resume", str(tmp_path / "split"), "max_steps=4"]) == 0

    def weights(run):
        ckpt = sorted((tmp_path / run / "checkpoints").iterdir())[-1]
        return load_file(ckpt / "model.safetensors")

    a, b = weights("straight"), weights("split")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_eval_under_torchrun_splits_the_images(trained, tmp_path):
    import os
    import socket
    import subprocess
    import sys

    tmp, npz, run = trained
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ev"
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={port}",
        "-m",
        "akorn",
    ]
    words = ["classify", "eval", str(run), "--out", str(out), "--attacks", "pgd", "--attack-limit", "6", "--eot", "2",
             "--pgd-steps", "2", "--corruptions", "fog", "--severities", "1", "--corruption-limit", "5",
             "--quiet"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(launch + words, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    fog = report["corruptions"]["fog"]["by_severity"]["1"]["n"]
    assert (report["clean"]["n"], report["attacks"]["pgd"]["n"], fog) == (32, 6, 5)
    assert (out / "records.1.jsonl").exists()


def test_import_of_the_authors_checkpoint_bad_input(tmp_path, capsys):
    """(The numbers agree with the authors' model to 3e-14 in float64: scripts/check_import_against_authors.py.)"""
    torch.save({"model_state_dict": {"conv0.weight": torch.zeros(8, 3, 3, 3)}}, tmp_path / "partial.pth")
    rc = main(["classify", "import", str(tmp_path / "partial.pth"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "missing" in err and "gamma" in err and len(err.splitlines()) == 1
    (tmp_path / "torn.pth").write_bytes(b"PK\x03\x04")
    assert main(["classify", "import", str(tmp_path / "torn.pth"), "--out", str(tmp_path / "m")]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


def test_the_shipped_classifier_evaluates_right_after_install(tmp_path):
    from importlib import resources

    from akorn.experiments.model_files import shipped_names

    assert "cifar10-akorn" in shipped_names()
    size = (resources.files("akorn") / "weights" / "cifar10-akorn.safetensors").stat().st_size
    assert size <= 10 * 2**20
    npz = write_npz(tmp_path / "ten.npz", n=20, classes=10, size=32)
    out = tmp_path / "e"
    words = ["classify", "eval", "pretrained:cifar10", "--data", str(npz), "--attacks", "none", "--corruptions",
             "none", "--out", str(out), "--quiet", "--threads", "1"]  # fmt: skip
    assert main(words) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["clean"]["n"] == 20 and report["model"] == "pretrained:cifar10"


def test_a_streamed_folder_trains_as_the_same_folder_in_memory(tmp_path):
    """Streaming reads each next batch while a step computes; the run must not change."""
    from safetensors.torch import load_file

    root = write_folder(tmp_path / "imgs", classes=2, per_class=8, size=16)
    base = ["classify", "train", "preset=tiny", f"data={root}", f"out_dir={tmp_path}", "threads=1", "max_steps=3"]
    assert main(base + ["name=mem"]) == 0
    assert main(base + ["name=stream", "in_memory=false", "workers=2"]) == 0

    def weights(run):
        return load_file(sorted((tmp_path / run / "checkpoints").iterdir())[-1] / "model.safetensors")

    a, b = weights("mem"), weights("stream")
    assert all(torch.equal(a[k], b[k]) for k in a)
