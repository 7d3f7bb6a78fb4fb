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
