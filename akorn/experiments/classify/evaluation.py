"""Robustness and calibration of a classifier, image by image, resumable.

Tasks: ``clean`` (accuracy, and the class probabilities behind the calibration error), each attack
(``pgd``, ``autoattack``, ``autoattack-rand``) and each corruption at each severity. Every image's
outcome is one record (``key`` = ``task:index``), so an interrupted evaluation resumes where it stopped
and a report can be rebuilt from the records alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from akorn.experiments.classify import attacks as atk
from akorn.experiments.classify import calibration
from akorn.experiments.classify import corruptions as corr
from akorn.experiments.classify.models import AKOrNClassifier, AttentionAKOrN


@dataclass
class Plan:
    eps: float = 8 / 255
    attacks: tuple[str, ...] = atk.ATTACKS
    attack_limit: int = 200  # images each attack runs on (0: the whole attack set)
    rand_limit: int = 20  # images AutoAttack-rand runs on
    pgd_steps: int = 20
    pgd_step_size: float = 0.0  # 0: eps / 3
    eot: int = 10  # forward passes per PGD gradient for a random model (1 for a deterministic one)
    corruptions: tuple[str, ...] = corr.COMMON
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    corruption_limit: int = 1000
    limit: int = 0  # clean images (0: all)
    batch_size: int = 100
    seed: int = 0
    bins: int = 15


def is_random(model: torch.nn.Module) -> bool:
    """Whether the forward pass draws randomness (initial oscillator states)."""
    return isinstance(model, (AKOrNClassifier, AttentionAKOrN))


def predictor(model: torch.nn.Module, device: torch.device, seed: int) -> Callable:
    """``images -> logits`` in eval mode; a random model draws fresh states from its own stream."""
    model.eval()
    g = torch.Generator(device).manual_seed(seed)

    def predict(x):
        return model(x.to(device), g).float()

    return predict


def spread(n_total: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over ``0 .. n_total - 1`` (all when ``n`` is 0 or too large)."""
    if n <= 0 or n >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(int))


def tasks(plan: Plan) -> list[tuple[str, str]]:
    """``(task, which set)`` in the order they run."""
    out = [("clean", "clean")]
    out += [(a, "attack") for a in plan.attacks]
    out += [(f"{c}:{s}", "corruption") for c in plan.corruptions for s in plan.severities]
    return out


def task_rows(task: str, plan: Plan, n_clean: int, n_attack: int) -> np.ndarray:
    if task == "clean":
        return spread(n_clean, plan.limit)
    if task == "autoattack-rand":
        return spread(n_attack, plan.rand_limit)
    if task in atk.ATTACKS:
        return spread(n_attack, plan.attack_limit)
    return spread(n_clean, plan.corruption_limit)


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 3, 1, 2).float().contiguous() / 255.0


def run_task(task: str, predict: Callable, images: torch.Tensor, labels: torch.Tensor, plan: Plan, random: bool,
             device, first_index: int = 0) -> list[dict]:  # fmt: skip
    """One batch of one task: a record per image (``correct``; for ``clean`` also its probabilities)."""
    y = labels.to(device)
    if task == "clean":
        with torch.no_grad():
            probs = predict(_to_float(images).to(device)).softmax(1).cpu()
        return [
            {"correct": bool(p.argmax() == t), "label": int(t), "probs": [round(float(v), 6) for v in p]}
            for p, t in zip(probs, labels)
        ]
    x = _to_float(images).to(device)
    if task == "pgd":
        step = plan.pgd_step_size or plan.eps / 3
        x = atk.pgd_linf(predict, x, y, plan.eps, plan.pgd_steps, step, plan.eot if random else 1)
    elif task in ("autoattack", "autoattack-rand"):
        version = "rand" if task == "autoattack-rand" else "standard"
        x = atk.autoattack(predict, x, y, plan.eps, version, plan.seed, batch_size=len(x))
    else:
        name, severity = task.split(":")
        x = _to_float(
            torch.from_numpy(corr.corrupt_images(images.numpy(), name, int(severity), first_index, plan.seed))
        ).to(device)
    with torch.no_grad():
        pred = predict(x).argmax(1)
    return [{"correct": bool(c)} for c in (pred == y).cpu()]


def binomial(correct: list[bool]) -> dict:
    n = len(correct)
    p = sum(correct) / n if n else float("nan")
    return {"accuracy": p, "n": n, "se": math.sqrt(p * (1 - p) / n) if n else float("nan")}


def summarize(done: dict, plan: Plan) -> dict:
    """The report from the records (``key -> record``)."""
    by_task: dict[str, list[dict]] = {}
    for key, rec in done.items():
        by_task.setdefault(key.rsplit(":", 1)[0], []).append(rec)
    report: dict = {"eps": plan.eps}
    clean = by_task.get("clean", [])
    if clean:
        report["clean"] = binomial([r["correct"] for r in clean])
        probs = torch.tensor([r["probs"] for r in clean])
        labels = torch.tensor([r["label"] for r in clean])
        conf, pred = probs.max(1)
        report["ece"] = calibration.expected_calibration_error(probs, labels, plan.bins)
        report["reliability"] = calibration.reliability_bins(conf.numpy(), (pred == labels).numpy(), plan.bins)
    report["attacks"] = {a: binomial([r["correct"] for r in by_task[a]]) for a in plan.attacks if a in by_task}
    per = {}
    for c in plan.corruptions:
        found = [s for s in plan.severities if f"{c}:{s}" in by_task]
        sev = {str(s): binomial([r["correct"] for r in by_task[f"{c}:{s}"]]) for s in found}
        if sev:
            per[c] = {"by_severity": sev, "accuracy": float(np.mean([v["accuracy"] for v in sev.values()]))}
    report["corruptions"] = per
    if per:
        report["corruption_mean"] = float(np.mean([v["accuracy"] for v in per.values()]))
    return report
