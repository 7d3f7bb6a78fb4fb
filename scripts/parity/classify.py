"""CIFAR-10 classification training parity: the authors' ``train_classification.py`` and ``akorn classify train``.

    python scripts/parity/classify.py --authors PATH --train IMAGES --test IMAGES \
        [--train-size 6400 --channels 16 --epochs 1 --batch 128 --seeds 3 --threads 1 --time-limit 90 \
         --out runs/parity/classify]

Both train the conv AKOrN of the authors' defaults (N=2, T=3, three stages of C, 2C, 4C channels,
kernels 9/7/5, readout kernel 3, batch norm, group-norm c, learned global ω from 1; Adam 1e-4, batch
128, EMA 0.99 every 10 steps after step 200; flip, random resized crop 0.2-1, colour jitter 0.4/0.4/
0.4/0.1, AugMix) at width ``--channels`` for ``--epochs`` epochs, fp32, on the same images:
``--train-size`` class-balanced training images of ``--train`` and every image of ``--test``, each
given in the format its reader takes (theirs: ``cifar-10-batches-py`` pickles that torchvision's
``CIFAR10`` reads; ours: ``.npz``).

Both run through ``record.py`` (the loss of every backward pass, the time of every optimizer step,
peak memory). What is patched in their process, from outside, and nothing else:

* ``--cpu``: ``.cuda()`` and ``.to("cuda")`` stay on the CPU;
* ``--cifar-files-unchecked``: torchvision compares each batch file with the MD5 of the official
  archive, which these files cannot match; it accepts any that exist;
* ``--loader-workers 0``: their loaders' ``num_workers=4`` become 0, so that their augmentations run
  in the training process as ours do, on the one thread each side is given;
* ``--seed S``: their script seeds no generator; the global ones are seeded with the run's seed;
* ``--alias autoattack=pyautoattack``: their script imports fra31's ``autoattack``, which PyPI
  carries as ``pyautoattack`` (their attacks never run here: evaluation during training is off).

Their per-epoch evaluation is off (``--adveval_freq`` past the last epoch). Both EMA weights are
scored by the same evaluator, ``akorn classify eval`` (clean accuracy and 15-bin ECE on ``--test``);
theirs are converted by ``akorn classify import``. ``summary.json`` holds everything;
``scripts/parity/report.py`` draws it.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ParityError,
    check_budget,
    check_checkout,
    check_seeds,
    main_guard,
    mean_std,
    run_logged,
    run_recorded,
    thread_env,
    time_steps,
    training_step,
    training_summary,
    write_json,
)

NEEDED = ("train_classification.py", "source/models/classification/knet.py", "source/data/augs.py")
EVAL_SECONDS = 60.0  # a rough allowance per evaluation, for the budget check
AUGMENT_ALLOWANCE = 1.25  # the probe times model steps only; both sides also augment every image
PATCHES = ("--cifar-files-unchecked", "--loader-workers", "0", "--alias", "autoattack=pyautoattack")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--authors", required=True, help="a checkout of github.com/autonomousvision/akorn")
    p.add_argument("--train", required=True, help="training images, any data= of akorn classify train")
    p.add_argument("--test", required=True, help="test images (e.g. the exact-pixel .npz)")
    p.add_argument("--train-size", type=int, default=6400, help="class-balanced training images (0: all)")
    p.add_argument("--channels", type=int, default=16, help="width of the first stage (the recipe: 64)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--time-limit", type=float, default=0, help="minutes; refuse a plan estimated past it")
    p.add_argument("--assume-step-seconds", type=float, nargs=2, metavar=("OURS", "THEIRS"),
                   help="skip the timing probe and plan with these seconds per step")  # fmt: skip
    p.add_argument("--out", default="runs/parity/classify")
    a = p.parse_args(argv)
    for name in ("channels", "epochs", "batch", "threads"):
        if getattr(a, name) < 1:
            raise ParityError(f"--{name} must be at least 1")
    if a.train_size < 0 or a.train_size % 10:
        raise ParityError(f"--train-size {a.train_size} must be 0 (all) or a positive multiple of the 10 classes")
    if a.channels % 2:
        raise ParityError(f"--channels {a.channels} must be even (oscillators of N=2)")
    return a


def authors_model(a):
    from source.models.classification.knet import AKOrN

    return AKOrN(n=2, ch=a.channels, out_classes=10, L=3, T=3, J="conv", ksizes=[9, 7, 5], ro_ksize=3, ro_N=2,
                 norm="bn", c_norm="gn", gamma=1.0, use_omega=True, init_omg=1.0, global_omg=True, learn_omg=True,
                 ensemble=1)  # fmt: skip


def our_words(a) -> list[str]:
    return ["model=akorn", f"channels={a.channels}", "n=2", "steps=3", "stages=3", "kernel_sizes=9,7,5",
            "readout_kernel=3", "omega_init=1.0", "gamma=1.0", "lr=0.0001", "clip_grad=0", "ema_decay=0.99",
            "ema_every=10", "ema_start=200", "augment=flip,crop,jitter,augmix", "crop_scale_min=0.2"]  # fmt: skip


def probe(a, authors: Path) -> tuple[float, float]:
    """Seconds per cross-entropy training step of ours and theirs at ``--batch``, in this process."""
    import torch
    import torch.nn.functional as F

    from akorn.engine.config import resolve
    from akorn.experiments.classify.experiment import ClassifyConfig, build_model

    torch.set_num_threads(a.threads)
    images, labels = torch.rand(a.batch, 3, 32, 32), torch.randint(10, (a.batch,))
    cfg = resolve(ClassifyConfig, our_words(a), None, {})
    ours = build_model(cfg, 10, 3, 32)
    t_ours = time_steps(training_step(ours, lambda m: F.cross_entropy(m(images), labels)), 2)
    sys.path.insert(0, str(authors))
    theirs = authors_model(a)
    t_theirs = time_steps(training_step(theirs, lambda m: F.cross_entropy(m(images), labels)), 2)
    return t_ours, t_theirs


def balanced(labels, size: int):
    """The first ``size / classes`` images of every class, in their order."""
    import numpy as np

    if size == 0:
        return np.arange(len(labels))
    classes = int(labels.max()) + 1
    keep = np.concatenate([np.flatnonzero(labels == c)[: size // classes] for c in range(classes)])
    if len(keep) < size:
        raise ParityError(f"--train-size {size}: the training images hold only {len(keep)} class-balanced ones")
    return np.sort(keep)


def write_batches(folder: Path, train, test, class_names):
    """The layout torchvision's CIFAR10 reads: five training pickles, one test pickle, the meta file."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)

    def dump(name, images, labels):
        data = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": [int(v) for v in labels]}, f)

    for i, rows in enumerate(np.array_split(np.arange(len(train[0])), 5), 1):
        dump(f"data_batch_{i}", train[0][rows], train[1][rows])
    dump("test_batch", *test)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(class_names), "num_cases_per_batch": len(train[0]) // 5}, f)


def prepare_data(a, work: Path) -> dict:
    import numpy as np

    from akorn.experiments.classify.data import load

    paths = {"train": work / "data" / "train.npz", "test": work / "data" / "test.npz"}
    batches = work / "data" / "cifar-10-batches-py"
    if not all(p.exists() for p in paths.values()) or not (batches / "batches.meta").exists():
        train, test = load(a.train, "train"), load(a.test, "test")
        if len(train.class_names) != 10 or len(test.class_names) != 10:
            raise ParityError("the training and test images must both be CIFAR-10's 10 classes")
        keep = balanced(train.labels.numpy(), a.train_size)
        tr = (train.images.numpy()[keep], train.labels.numpy()[keep])
        te = (test.images.numpy(), test.labels.numpy())
        write_batches(batches, tr, te, train.class_names)
        for split, (images, labels) in (("train", tr), ("test", te)):
            np.savez(paths[split], images=images, labels=labels, class_names=np.array(train.class_names))
    n = {split: len(np.load(p)["labels"]) for split, p in paths.items()}
    if n["train"] < a.batch:
        raise ParityError(f"--batch {a.batch} is more than the {n['train']} training images")
    return {"paths": paths, "images": n}


def train_theirs(a, authors: Path, run: Path, seed: int, env: dict) -> Path:
    done = run / "runs" / "run" / f"ema_{a.epochs - 1}.pth"
    if done.exists() and (run / "record.json").exists():  # a rerun keeps finished trainings
        return done
    run.mkdir(parents=True, exist_ok=True)
    link = run / "data"  # their script reads ./data/cifar-10-batches-py from its working folder
    if not link.exists():
        link.symlink_to((run.parent.parent / "data").resolve())
    target = [authors / "train_classification.py", "run", "--epochs", a.epochs, "--checkpoint_every", a.epochs,
              "--adveval_freq", a.epochs + 1, "--pgdeval_freq", a.epochs + 1, "--batchsize", a.batch,
              "--ch", a.channels]  # fmt: skip
    flags = (*PATCHES, "--seed", str(seed))
    run_recorded(run / "record.json", target, env, cpu=True, cwd=run, path=authors, flags=flags)
    return done


def train_ours(a, work: Path, name: str, seed: int, env: dict, data: dict, steps: int) -> Path:
    run = work / name
    if (run / "checkpoints" / f"step-{steps:08d}").exists() and (work / f"{name}.record.json").exists():
        return run
    if run.exists():  # an unfinished run of ours starts again, so that its record covers every step
        import shutil

        shutil.rmtree(run)
    target = ["-m", "akorn", "classify", "train", f"data={data['train']}", f"test_data={data['test']}",
              f"out_dir={work}", f"name={name}", f"seed={seed}", f"epochs={a.epochs}", f"batch_size={a.batch}",
              "precision=fp32", "compile=false", f"threads={a.threads}", f"checkpoint_every={steps}",
              "log_every=10", "eval_every=0", "eval_size=100", *our_words(a)]  # fmt: skip
    run_recorded(work / f"{name}.record.json", target, env)
    return run


def evaluate(source, out: Path, test: Path, env: dict) -> dict:
    """Clean accuracy and ECE of ``source`` on every test image, by ``akorn classify eval``."""
    cmd = [sys.executable, "-m", "akorn", "classify", "eval", source, "--data", test, "--attacks", "none",
           "--corruptions", "none", "--out", out, "--threads", 1, "--quiet"]  # fmt: skip
    if not (out / "report.json").exists() and run_logged(cmd, out.with_suffix(".log"), env) != 0:
        raise RuntimeError(f"evaluation failed; see {out.with_suffix('.log')}")
    rep = json.loads((out / "report.json").read_text())
    return {"accuracy": rep["clean"]["accuracy"], "ece": rep["ece"]}


def import_theirs(ema: Path, out: Path, env: dict) -> Path:
    weights = out.with_suffix(".safetensors")
    cmd = [sys.executable, "-m", "akorn", "classify", "import", ema, "--out", out]
    if not weights.exists() and run_logged(cmd, out.with_suffix(".import.log"), env) != 0:
        raise RuntimeError(f"import failed; see {out.with_suffix('.import.log')}")
    return weights


def main(argv=None):
    a = parse_args(argv)
    authors = check_checkout(a.authors, NEEDED)
    check_seeds(a.seeds)
    for what, spec in (("--train", a.train), ("--test", a.test)):
        if not Path(spec.partition(":")[2] or spec).exists():
            raise ParityError(f"{what} {spec}: no such file or folder")
    t_ours, t_theirs = a.assume_step_seconds or probe(a, authors)
    n_train = a.train_size or 50000
    steps = a.epochs * (n_train // a.batch)
    estimate = a.seeds * (steps * (t_ours + t_theirs) * AUGMENT_ALLOWANCE + 2 * EVAL_SECONDS)
    print(f"plan: {a.seeds} seeds x {steps} steps at batch {a.batch}, C={a.channels}; probe {t_ours:.3f} s/step "
          f"ours, {t_theirs:.3f} theirs; about {estimate / 60:.0f} min", flush=True)  # fmt: skip
    check_budget(estimate, a.time_limit, "this plan")
    work = Path(a.out).resolve()
    env = thread_env(a.threads)
    data = prepare_data(a, work)
    steps = a.epochs * (data["images"]["train"] // a.batch)  # ours drops a last partial batch
    train, results = {}, {}
    for seed in range(1, a.seeds + 1):
        ema = train_theirs(a, authors, work / "authors" / f"seed{seed}", seed, env)
        train[f"authors-{seed}"] = training_summary(json.loads((ema.parents[2] / "record.json").read_text()))
        theirs = import_theirs(ema, work / f"authors-seed{seed}", env)
        results[f"authors-{seed}"] = {"side": "authors", **evaluate(theirs, work / "eval" / f"authors-{seed}",
                                                                     data["paths"]["test"], env)}  # fmt: skip
        our_run = train_ours(a, work, f"ours-seed{seed}", seed, env, data["paths"], steps)
        train[f"ours-{seed}"] = training_summary(json.loads((work / f"ours-seed{seed}.record.json").read_text()))
        results[f"ours-{seed}"] = {"side": "ours", **evaluate(our_run, work / "eval" / f"ours-{seed}",
                                                               data["paths"]["test"], env)}  # fmt: skip
        print(f"seed {seed}: clean accuracy theirs {results[f'authors-{seed}']['accuracy']:.3f}, ours "
              f"{results[f'ours-{seed}']['accuracy']:.3f}", flush=True)  # fmt: skip
    write_json(work / "summary.json", summarise(a, data, train, results, t_ours, t_theirs))
    print(f"wrote {work / 'summary.json'}")


def summarise(a, data, train, results, t_ours, t_theirs) -> dict:
    sides = {}
    for side in ("authors", "ours"):
        tr = [v for k, v in train.items() if k.startswith(side)]
        ev = [v for v in results.values() if v["side"] == side]
        tail = max(1, min(len(t["loss"]) for t in tr) // 10)
        sides[side] = {
            "sec_per_step": mean_std([t["sec_per_step"] for t in tr]),
            "max_rss_mb": mean_std([t["max_rss_mb"] for t in tr]),
            "final_loss": mean_std([sum(t["loss"][-tail:]) / tail for t in tr]),
            "metrics": {k: mean_std([e[k] for e in ev]) for k in ("accuracy", "ece")},
        }
    config = {k: v for k, v in vars(a).items() if k not in ("authors", "out")}
    return {"experiment": "classify", "config": config, "images": data["images"], "probe_sec_per_step":
            {"ours": t_ours, "authors": t_theirs}, "sides": sides, "runs": train, "evaluations": results}  # fmt: skip


if __name__ == "__main__":
    main_guard(main)
