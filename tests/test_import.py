"""``akorn sudoku import``: checkpoints of the authors' code, in their layout, become our models."""

import pickle

import torch

from akorn.experiments.sudoku import authors
from akorn.experiments.sudoku.models import SudokuAKOrN
from tests.test_fail_safe import cli, one_line_error


def authors_layout(model: SudokuAKOrN) -> dict:
    """Our model's weights as the authors' ``ema_<epoch>.pth`` holds them: an ema_pytorch state dict
    with 1x1 convolutions, ``(c nh)`` head channels, γ at the top, and GTA q, k, v sharing storage."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    C, heads = model.channels, model.kuramoto.coupling.heads
    to_theirs = torch.argsort(authors.head_major(heads, C // heads))  # theirs[j] = ours[to_theirs[j]]
    theirs = {}
    for t, o in authors.SAME.items():
        theirs[t] = sd[o]
    for t, o in authors.CONV_TO_LINEAR.items():
        theirs[t] = sd[o][:, :, None, None]
    for t, o in authors.BIASES.items():
        theirs[t] = sd[o]
    rows = torch.cat([to_theirs + i * C for i in range(3)])
    theirs["layers.0.0.connectivity.W_qkv.weight"] = sd["kuramoto.coupling.qkv.weight"][rows][:, :, None, None]
    theirs["layers.0.0.connectivity.W_qkv.bias"] = sd["kuramoto.coupling.qkv.bias"][rows]
    theirs["layers.0.0.connectivity.W_o.weight"] = sd["kuramoto.coupling.out.weight"][:, to_theirs][:, :, None, None]
    theirs["layers.0.0.connectivity.W_o.bias"] = sd["kuramoto.coupling.out.bias"]
    theirs["gamma"] = sd["kuramoto.gamma"].reshape(1)
    theirs["x0"] = torch.randn(1, C, 9, 9)
    shared = theirs["layers.0.0.connectivity.mat_q"]
    for m in "kv":
        theirs[f"layers.0.0.connectivity.mat_{m}"] = shared  # one storage, as on a CPU
    ema = {f"ema_model.{k}": v for k, v in theirs.items()}
    ema.update(
        {f"online_model.{k}": v + 1 for k, v in theirs.items()}, initted=torch.tensor(True), step=torch.tensor(9)
    )
    return {"epoch": 12, "model_state_dict": ema}


def test_import_gives_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = SudokuAKOrN(channels=32, n=4, heads=4, steps=6).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        gta = model.kuramoto.coupling.gta
        gta.mat_k.copy_(gta.mat_q)
        gta.mat_v.copy_(gta.mat_q)  # their q, k and v matrices are one tensor
    torch.save(authors_layout(model), tmp_path / "ema_12.pth")
    code, out, err = cli("sudoku", "import", tmp_path / "ema_12.pth", "--out", tmp_path / "m", "--steps", "6")
    assert code == 0, err
    code, out, err = cli("sudoku", "eval", tmp_path / "m.safetensors", "--data", "generate:4:30-34:2", "--quiet")
    assert code == 0, err
    from akorn.experiments.sudoku.loading import load_model

    weights, arch = authors.load_authors_checkpoint(tmp_path / "ema_12.pth")  # the conversion: exact
    assert arch == {"channels": 32, "n": 4, "heads": 4}
    converted = SudokuAKOrN(channels=32, n=4, heads=4, steps=6).double().eval()
    converted.load_state_dict(weights)
    stored, _ = load_model(str(tmp_path / "m.safetensors"))  # the stored model: float32 weights
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
    other = authors_layout(model)["model_state_dict"]
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
