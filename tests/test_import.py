"""``akorn sudoku import``: checkpoints of the authors' code, in their layout, become our models."""

import pickle

import torch

from akorn.experiments import authors_layout
from akorn.experiments.sudoku import authors
from akorn.experiments.sudoku.models import SudokuAKOrN
from tests.test_fail_safe import cli, one_line_error


def in_their_layout(model: SudokuAKOrN) -> dict:
    """Our model's weights as the authors' ``ema_<epoch>.pth`` holds them: an ema_pytorch state dict
    with 1x1 convolutions, ``(c nh)`` head channels, γ at the top, and GTA q, k, v sharing storage."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    C, heads = model.channels, model.kuramoto.coupling.heads
    theirs = authors.to_authors(sd, C, heads, x0=torch.randn(1, C, 9, 9))
    shared = theirs["layers.0.0.connectivity.mat_q"]
    for m in "kv":
        theirs[f"layers.0.0.connectivity.mat_{m}"] = shared  # one storage, as on a CPU
    ema = {f"ema_model.{k}": v for k, v in theirs.items()}
    ema.update(
        {f"online_model.{k}": v + 1 for k, v in theirs.items()}, initted=torch.tensor(True), step=torch.tensor(9)
    )
    return {"epoch": 12, "model_state_dict": ema}


def test_to_authors_is_the_inverse_of_convert():
    torch.manual_seed(0)
    model = SudokuAKOrN(channels=32, n=4, heads=4, steps=6)
    sd = model.state_dict()
    theirs = authors.to_authors(sd, 32, 4)
    assert theirs["layers.0.0.connectivity.W_qkv.weight"].shape == (96, 32, 1, 1)
    back, arch = authors.convert(theirs)
    assert arch == {"channels": 32, "n": 4, "heads": 4}
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    ema = authors.authors_ema_file(theirs)["model_state_dict"]
    assert torch.equal(ema["ema_model.gamma"], theirs["gamma"]) and bool(ema["initted"])


def test_import_gives_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = SudokuAKOrN(channels=32, n=4, heads=4, steps=6).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        gta = model.kuramoto.coupling.gta
        gta.mat_k.copy_(gta.mat_q)
        gta.mat_v.copy_(gta.mat_q)  # their q, k and v matrices are one tensor
    torch.save(in_their_layout(model), tmp_path / "ema_12.pth")
    code, out, err = cli("sudoku", "import", tmp_path / "ema_12.pth", "--out", tmp_path / "m", "--steps", "6")
    assert code == 0, err
    code, out, err = cli("sudoku", "eval", tmp_path / "m.safetensors", "--data", "generate:4:30-34:2", "--quiet")
    assert code == 0, err
    from akorn.experiments.model_files import load_model

    weights, arch = authors.load_authors_checkpoint(tmp_path / "ema_12.pth")  # the conversion: exact
    assert arch == {"channels": 32, "n": 4, "heads": 4}
    converted = SudokuAKOrN(channels=32, n=4, heads=4, steps=6).double().eval()
    converted.load_state_dict(weights)
    stored = load_model(str(tmp_path / "m.safetensors")).model  # the stored model: float32 weights
    quiz = torch.randint(0, 10, (3, 81))
    noise = torch.randn(3, 81, 32, dtype=torch.float64)
    with torch.no_grad():
        a, ea = model(quiz, noise=noise, return_energy=True)
        b, eb = converted(quiz, noise=noise, return_energy=True)
        c, ec = stored.double()(quiz, noise=noise, return_energy=True)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ea, eb, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)
    assert torch.equal(a.argmax(-1), c.argmax(-1))


def test_import_refuses_other_files_in_one_line(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("EXECUTED",))

    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"model_state_dict": Evil()}, f)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    model = SudokuAKOrN(channels=32, n=4, heads=4, steps=6)
    other = in_their_layout(model)["model_state_dict"]
    other["ema_model.layers.0.0.connectivity.W_o.weight"] = torch.zeros(16, 32, 1, 1)
    torch.save({"model_state_dict": other}, tmp_path / "shape.pth")
    del other["ema_model.out.1.bias"]
    other["ema_model.layers.1.0.omg.omg_param"] = torch.zeros(2)
    torch.save({"model_state_dict": other}, tmp_path / "keys.pth")
    for name, words in (
        ("evil.pth", ["refusing to load"]),
        ("list.pth", ["not a state dict"]),
        ("shape.pth", ["W_o.weight (16, 32, 1, 1)"]),
        ("keys.pth", ["missing out.1.bias", "unexpected layers.1.0.omg.omg_param"]),
        ("missing.pth", ["not found"]),
    ):
        code, out, err = cli("sudoku", "import", tmp_path / name, "--out", tmp_path / "m")
        one_line_error(code, err, *words)
        assert "EXECUTED" not in out + err
        assert not (tmp_path / "m.safetensors").exists()


def objects_in_their_layout(model) -> dict:
    """An ImageAKOrN's weights as the authors' object-discovery model holds them."""
    from akorn.experiments.objects.models import ImageAKOrN

    assert isinstance(model, ImageAKOrN)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    C = model.channels
    theirs = {"patchfy.1.weight": sd["embed.proj.weight"], "patchfy.1.bias": sd["embed.proj.bias"]}
    theirs["gamma"] = sd["layers.0.gamma"].reshape(1)
    for i, layer in enumerate(model.layers):
        heads = layer.coupling.heads
        to_theirs = torch.argsort(authors_layout.head_major(heads, C // heads))
        k, m = f"layers.{i}.0.connectivity", f"layers.{i}.coupling"
        rows = torch.cat([to_theirs + j * C for j in range(3)])
        theirs[f"{k}.W_qkv.weight"] = sd[f"{m}.qkv.weight"][rows][:, :, None, None]
        theirs[f"{k}.W_qkv.bias"] = sd[f"{m}.qkv.bias"][rows]
        theirs[f"{k}.W_o.weight"] = sd[f"{m}.out.weight"][:, to_theirs][:, :, None, None]
        theirs[f"{k}.W_o.bias"] = sd[f"{m}.out.bias"]
        for g in "qkvo":
            theirs[f"{k}.mat_{g}"] = sd[f"{m}.gta.mat_{g}"]
        theirs[f"layers.{i}.0.c_norm.weight"] = sd[f"layers.{i}.c_norm.weight"]
        theirs[f"layers.{i}.0.c_norm.bias"] = sd[f"layers.{i}.c_norm.bias"]
        theirs[f"layers.{i}.1.invconv.weight"] = sd[f"readouts.{i}.proj.weight"]
        theirs[f"layers.{i}.1.invconv.bias"] = sd[f"readouts.{i}.proj.bias"]
        theirs[f"layers.{i}.1.bias"] = sd[f"readouts.{i}.bias"]
    for t, o in (("out.3", "head.mlp.0"), ("out.5", "head.mlp.2")):
        theirs[f"{t}.weight"], theirs[f"{t}.bias"] = sd[f"{o}.weight"], sd[f"{o}.bias"]
    return {"epoch": 50, "model_state_dict": {f"ema_model.{k}": v for k, v in theirs.items()}}


def test_objects_import_makes_a_run_folder_that_evaluates(tmp_path):
    from akorn.experiments.objects.authors import load_authors_checkpoint
    from akorn.experiments.objects.models import ImageAKOrN

    torch.manual_seed(0)
    model = ImageAKOrN(32, 4, 32, 4, layers=2, steps=3, heads=4, c_norm="gn").double().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # γ is fixed, and theirs is one for every layer
                p.add_(torch.randn_like(p) * 0.05)
    torch.save(objects_in_their_layout(model), tmp_path / "ema_50.pth")
    weights, fields = load_authors_checkpoint(tmp_path / "ema_50.pth")
    assert fields == dict(channels=32, n=4, patch=4, layers=2, heads=4, kernel_size=1, image_size=32,
                          coupling="attn", omega="identity", c_norm="gn", gamma=1.0)  # fmt: skip
    twin = ImageAKOrN(32, 4, 32, 4, layers=2, steps=3, heads=4, c_norm="gn").double().eval()
    twin.load_state_dict(weights)
    images = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        a = model.features(images, torch.Generator().manual_seed(5))
        b = twin.features(images, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    code, _, err = cli("objects", "import", tmp_path / "ema_50.pth", "--out", tmp_path / "m", "--steps", "3")
    assert code == 0, err
    code, out, err = cli("objects", "eval", tmp_path / "m.safetensors", "--limit", "2", "--quiet", "test_size=8",
                         "--figure", tmp_path / "a.png")  # fmt: skip
    assert code == 0 and "FG-ARI" in out, err
    # their file itself, converted as it loads, gives the same scores
    code, out2, err = cli("objects", "eval", tmp_path / "ema_50.pth", "--limit", "2", "--quiet", "test_size=8",
                          "steps=3", "--figure", tmp_path / "b.png")  # fmt: skip
    assert code == 0 and out2.splitlines()[1] == out.splitlines()[1], err
    # a model with position embeddings, a conv model without its size
    ckpt = objects_in_their_layout(model)
    ckpt["model_state_dict"]["ema_model.pemb_x"] = torch.zeros(32, 8, 8)
    torch.save(ckpt, tmp_path / "pemb.pth")
    code, _, err = cli("objects", "import", tmp_path / "pemb.pth", "--out", tmp_path / "r2")
    one_line_error(code, err, "position embeddings")
    assert not (tmp_path / "r2").exists()
