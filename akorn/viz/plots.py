"""Line plots: energy and order parameter against step, board accuracy against T_eval."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    curves: dict[str, np.ndarray],
    path: Path,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    x=None,
    logy: bool = False,
):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for label, y in curves.items():
        xs = np.arange(len(y)) if x is None else x
        ax.plot(xs, y, marker="o" if x is not None else None, ms=3, label=label)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_accuracy_vs_steps(results: dict[str, dict], path: Path, ylabel: str = "board accuracy (%)"):
    """``{model: {T: accuracy}}`` -> accuracy (%) against T_eval on a log axis."""
    ts = sorted({int(t) for r in results.values() for t in r})
    curves = {m: np.array([100 * r.get(t, r.get(str(t), np.nan)) for t in ts]) for m, r in results.items()}
    plot_curves(curves, path, "T_eval (Kuramoto steps / iterations)", ylabel, logx=True, x=np.array(ts))
