"""Segmentation metrics: FG-ARI (background excluded) and MBO (mean best overlap)."""

from __future__ import annotations

import numpy as np


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """ARI of two labelings of the same items (contingency-table formula, as scikit-learn)."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.size != b.size:
        raise ValueError(f"labelings differ in size: {a.size} vs {b.size}")
    if a.size == 0:
        return 1.0
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), np.int64)
    np.add.at(table, (ai, bi), 1)

    def comb2(x):
        x = x.astype(np.float64)
        return (x * (x - 1) / 2).sum()

    sum_ij = comb2(table)
    sum_a, sum_b = comb2(table.sum(1)), comb2(table.sum(0))
    total = a.size * (a.size - 1) / 2
    expected = sum_a * sum_b / total if total else 0.0
    maximum = (sum_a + sum_b) / 2
    if maximum == expected:  # both labelings trivial (one cluster, or all singletons): sklearn returns 1
        return 1.0
    return float((sum_ij - expected) / (maximum - expected))


def fg_ari(gt: np.ndarray, pred: np.ndarray) -> float:
    """ARI over the pixels whose ground truth is a foreground object (label > 0)."""
    fg = gt > 0
    return adjusted_rand_index(gt[fg], pred[fg])


def mbo(gt: np.ndarray, pred: np.ndarray) -> float:
    """Mean over ground-truth objects (label > 0) of the best IoU with any predicted segment."""
    scores = []
    for obj in np.unique(gt):
        if obj == 0:
            continue
        g = gt == obj
        best = 0.0
        for seg in np.unique(pred[g]):
            p = pred == seg
            best = max(best, (g & p).sum() / (g | p).sum())
        scores.append(best)
    return float(np.mean(scores)) if scores else float("nan")


def contact(gt: np.ndarray, image: np.ndarray) -> str:
    """How the objects of one image meet: ``apart`` (no two share a pixel edge), ``touching``, or
    ``touching_same_colour`` (two that share an edge also have the same mean colour, so colour alone
    cannot separate them). Masks are ``(H, W)`` labels, 0 background; images ``(H, W, 3)``."""
    gt = np.asarray(gt)
    pairs = set()
    for a, b in ((gt[1:], gt[:-1]), (gt[:, 1:], gt[:, :-1])):
        edge = (a != b) & (a > 0) & (b > 0)
        pairs |= set(zip(a[edge].tolist(), b[edge].tolist()))
    if not pairs:
        return "apart"
    image = np.asarray(image, np.float64)
    colour = {label: image[gt == label].mean(0) for label in {l for p in pairs for l in p}}
    scale = 255.0 if image.max() > 1.0 else 1.0
    if any(np.abs(colour[a] - colour[b]).max() * (255.0 / scale) < 1.0 for a, b in pairs):
        return "touching_same_colour"
    return "touching"


def scores_by_contact(gts, images, scores) -> dict:
    """Mean score per :func:`contact` group, with the number of images in it."""
    groups = np.array([contact(g, im) for g, im in zip(gts, images)])
    scores = np.asarray(scores, np.float64)
    out = {}
    for name in ("apart", "touching", "touching_same_colour"):
        sel = groups == name
        out[name] = {"images": int(sel.sum()), "fg_ari_mean": float(np.nanmean(scores[sel])) if sel.any() else None}
    return out
