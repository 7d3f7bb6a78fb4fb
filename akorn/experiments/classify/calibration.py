"""Calibration: expected calibration error over equal-width confidence bins, and the reliability diagram."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> list[dict]:
    """Per bin ``(lo, hi]``: count, mean confidence, accuracy."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        out.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "count": int(m.sum()),
                "confidence": float(confidence[m].mean()) if m.any() else None,
                "accuracy": float(correct[m].mean()) if m.any() else None,
            }
        )
    return out


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE (L1, ``bins`` equal-width bins) of class probabilities ``(N, K)``, through torchmetrics."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    return float(multiclass_calibration_error(probs.float(), labels, probs.shape[1], n_bins=bins, norm="l1"))


def plot_reliability(bins: list[dict], ece: float, path: str | Path, title: str = ""):
    """Accuracy against confidence per bin, with the diagonal of perfect calibration, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    lo = np.array([b["lo"] for b in bins])
    width = bins[0]["hi"] - bins[0]["lo"]
    acc = np.array([b["accuracy"] if b["accuracy"] is not None else 0.0 for b in bins])
    conf = np.array([b["confidence"] if b["confidence"] is not None else 0.0 for b in bins])
    has = np.array([b["count"] > 0 for b in bins])
    ax.bar(lo[has], acc[has], width=width, align="edge", color="#4c72b0", edgecolor="white", label="accuracy")
    ax.bar(lo[has], (conf - acc)[has], bottom=acc[has], width=width, align="edge", color="#dd8452", alpha=0.5,
           edgecolor="white", label="gap to confidence")  # fmt: skip
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}  ECE {100 * ece:.1f}%".strip(), fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
