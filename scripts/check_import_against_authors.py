"""The authors' Sudoku, object and CIFAR-10 AKOrNs with random weights against our imports of their
checkpoints, in float64.

    pip install einops pandas        # what their model code needs
    python scripts/check_import_against_authors.py PATH-TO-THEIR-CHECKOUT

Their models run from their checkout; their state dicts are saved as their training scripts save
an EMA checkpoint, read back by ``akorn.experiments.sudoku.authors`` and
``akorn.experiments.objects.authors`` and run by our models with the same noise (their
``fixed_noise`` / ``fixed_ptb``): Sudoku logits, digits and every step's energy, and the object
model's per-patch features and contrastive embedding, and the classifier's logits (both drawing
their initial states from torch's global generator, seeded alike) are compared.
"""

import sys
import tempfile
from pathlib import Path

import torch

from akorn.experiments.sudoku import data as sdata
from akorn.experiments.sudoku.authors import load_authors_checkpoint
from akorn.experiments.sudoku.models import SudokuAKOrN


def check_sudoku():
    from source.models.sudoku.knet import SudokuAKOrN as Theirs

    torch.manual_seed(0)
    C, heads, T, B = 64, 8, 16, 6
    theirs = Theirs(n=4, ch=C, L=1, T=T, gamma=1.0, J="attn", use_omega=True, global_omg=True, init_omg=0.5,
                    learn_omg=True, nl=True, heads=heads).double().eval()  # fmt: skip
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    theirs.fixed_noise = True
    weights = theirs.state_dict()
    ema = {f"ema_model.{k}": v for k, v in weights.items()}
    ema.update({f"online_model.{k}": v for k, v in weights.items()})
    ema.update(initted=torch.tensor(True), step=torch.tensor(7))
    path = Path(tempfile.mkdtemp()) / "ema_3.pth"
    torch.save({"epoch": 3, "model_state_dict": ema}, path)

    converted, arch = load_authors_checkpoint(path)
    ours = (
        SudokuAKOrN(arch["channels"], arch["n"], heads=arch["heads"], steps=T, energy_mode="reference").double().eval()
    )
    ours.load_state_dict(converted)

    quiz = sdata.generate_set(B, (26, 34), seed=1).quiz.long()
    onehot = torch.zeros(B, 81, 9, dtype=torch.float64)
    given = quiz > 0
    onehot[given, quiz[given] - 1] = 1
    with torch.no_grad():
        out, _, es = theirs(onehot.view(B, 9, 9, 9), given.view(B, 9, 9, 1).double(), return_xs=True, return_es=True)
        noise = torch.randn(B, C, 9, 9, generator=torch.Generator(device="cpu").manual_seed(42)).double()
        logits, energy = ours(quiz, noise=noise.permute(0, 2, 3, 1).reshape(B, 81, C), return_energy=True)
    their_logits, their_energy = out.reshape(B, 81, 9), torch.stack(es[0], 1)
    print(f"{B} boards, C={C}, {heads} heads, T={T}, float64")
    print(f"max |logits difference| {(logits - their_logits).abs().max().item():.3g} "
          f"(logits up to {their_logits.abs().max().item():.3g})")  # fmt: skip
    print(f"max |energy difference| {(energy - their_energy).abs().max().item():.3g} "
          f"(energies up to {their_energy.abs().max().item():.3g})")  # fmt: skip
    print("same digits:", torch.equal(logits.argmax(-1), their_logits.argmax(-1)))


def check_objects():
    from source.models.objs.knet import AKOrN as Theirs

    from akorn.experiments.objects.authors import load_authors_checkpoint as load_objects
    from akorn.experiments.objects.models import ImageAKOrN

    torch.manual_seed(1)
    torch.set_default_dtype(torch.float64)  # their noise and ours drawn in float64 alike
    try:
        theirs = Theirs(n=4, ch=64, L=2, T=4, psize=4, imsize=32, heads=8, J="attn", gta=True, c_norm="gn").eval()
        with torch.no_grad():
            for p in theirs.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        theirs.fixed_ptb = True
        path = Path(tempfile.mkdtemp()) / "ema_50.pth"
        torch.save({"epoch": 50, "model_state_dict": {f"ema_model.{k}": v for k, v in theirs.state_dict().items()}},
                   path)  # fmt: skip
        converted, f = load_objects(path)
        arch = {k: f[k] for k in ("patch", "channels", "n", "layers", "coupling", "kernel_size", "heads", "omega")}
        ours = ImageAKOrN(f["image_size"], steps=4, gamma=f["gamma"], c_norm=f["c_norm"], **arch).double().eval()
        ours.load_state_dict(converted)
        images = torch.rand(3, 3, 32, 32)
        with torch.no_grad():
            their_features = theirs.feature(images)[0]
            our_features = ours.features(images, torch.Generator().manual_seed(1234))
            their_embedding, our_embedding = theirs(images), ours.head(our_features)
    finally:
        torch.set_default_dtype(torch.float32)
    print("objects: 3 images, C=64, 2 attention layers with GTA, T=4, float64")
    print(f"max |feature difference| {(our_features - their_features).abs().max().item():.3g} "
          f"(features up to {their_features.abs().max().item():.3g})")  # fmt: skip
    print(f"max |embedding difference| {(our_embedding - their_embedding).abs().max().item():.3g}")


def check_classifier():
    from source.models.classification.knet import AKOrN as Theirs

    from akorn.experiments.classify.authors import load_authors_checkpoint as load_classifier
    from akorn.experiments.classify.models import AKOrNClassifier

    torch.manual_seed(2)
    torch.set_default_dtype(torch.float64)
    try:
        theirs = Theirs(n=2, ch=16, L=3, T=3, J="conv", ksizes=[9, 7, 5], ro_N=2, norm="bn", c_norm="gn").eval()
        with torch.no_grad():
            for p in theirs.parameters():
                p.add_(torch.randn_like(p) * 0.05)
            for name, b in theirs.named_buffers():
                if "running" in name:
                    b.copy_(torch.rand_like(b) + (0.5 if "var" in name else -0.5))
        path = Path(tempfile.mkdtemp()) / "model.pth"
        torch.save({"model_state_dict": theirs.state_dict()}, path)
        converted, f = load_classifier(path)
        kernels = tuple(int(k) for k in f["kernel_sizes"].split(","))
        ours = AKOrNClassifier(channels=f["channels"], stages=f["stages"], n=f["n"], steps=3, kernel_sizes=kernels)
        ours = ours.double().eval()
        ours.load_state_dict(converted)
        images = torch.rand(4, 3, 32, 32)
        with torch.no_grad():
            torch.manual_seed(7)
            their_logits = theirs(images)
            torch.manual_seed(7)
            our_logits = ours(images)
    finally:
        torch.set_default_dtype(torch.float32)
    print("classifier: 4 images, 16/32/64 channels, kernels 9/7/5, N=2, T=3, float64")
    print(f"max |logits difference| {(our_logits - their_logits).abs().max().item():.3g} "
          f"(logits up to {their_logits.abs().max().item():.3g})")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/check_import_against_authors.py PATH-TO-THEIR-CHECKOUT")
    sys.path.insert(0, sys.argv[1])
    check_sudoku()
    check_objects()
    check_classifier()
