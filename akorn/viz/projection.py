"""Oscillator states -> colours, jointly over all units and steps so colours compare across time."""

from __future__ import annotations

import math

import numpy as np
import torch

from akorn.errors import UserError
from akorn.extras import install_hint


def _minmax(z: np.ndarray) -> np.ndarray:
    lo, hi = z.min(0, keepdims=True), z.max(0, keepdims=True)
    return (z - lo) / np.maximum(hi - lo, 1e-8)


def _pca(flat: torch.Tensor, seed: int) -> np.ndarray:
    centred = flat - flat.mean(0, keepdim=True)
    k = min(3, flat.shape[1])
    _, _, V = torch.linalg.svd(centred, full_matrices=False)
    z = (centred @ V[:k].T).numpy()  # (T·U, k)
    if k < 3:
        z = np.concatenate([z, np.zeros((z.shape[0], 3 - k))], 1)
    return z


def _tsne(flat: torch.Tensor, seed: int) -> np.ndarray:
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise UserError(f"t-SNE needs scikit-learn: {install_hint('objects')}") from None
    perplexity = min(30.0, max(2.0, (flat.shape[0] - 1) / 3))
    return TSNE(3, init="pca", random_state=seed, perplexity=perplexity).fit_transform(flat.numpy())


def _umap(flat: torch.Tensor, seed: int) -> np.ndarray:
    try:
        import umap
    except ImportError:
        raise UserError(f"UMAP needs umap-learn: {install_hint('umap')}") from None
    return umap.UMAP(n_components=3, random_state=seed).fit_transform(flat.numpy())


PROJECTIONS = {"pca": _pca, "tsne": _tsne, "umap": _umap}


# t-SNE's cost grows with the square of the points: past this many, it is fitted on a sample
TSNE_MAX_POINTS = 3000


def _nearest(points: torch.Tensor, fitted: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """For every row of ``points``, the index of its nearest row in ``fitted``."""
    return torch.cat([torch.cdist(points[i : i + chunk], fitted).argmin(1) for i in range(0, len(points), chunk)])


def project_states(
    states: torch.Tensor, method: str = "pca", seed: int = 0, say=None, max_points: int = TSNE_MAX_POINTS
) -> np.ndarray:
    """``(T, U, D)`` states (T steps, U units, D features) -> ``(T, U, 3)`` colours in [0, 1].

    ``pca`` (default), ``tsne`` (scikit-learn) or ``umap`` (umap-learn), fitted once over every
    unit at every step. t-SNE over more than ``max_points`` states is fitted on a random sample of
    that many; every other state takes the position of its nearest sampled state, and ``say``
    (a function of one string) is told so.
    """
    if states.ndim != 3:
        raise UserError(f"states must be (T, U, D), got shape {tuple(states.shape)}")
    if method not in PROJECTIONS:
        raise UserError(f"unknown projection {method!r}; choose {', '.join(PROJECTIONS)}")
    T, U, D = states.shape
    flat = states.reshape(T * U, D).double()
    if method == "tsne" and len(flat) > max_points:
        pick = torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))[:max_points]
        fitted = PROJECTIONS[method](flat[pick], seed)
        z = fitted[_nearest(flat, flat[pick]).numpy()]
        if say is not None:
            say(f"t-SNE fitted on {max_points} of {len(flat)} states; the rest take their nearest fitted state's place")
    else:
        z = PROJECTIONS[method](flat, seed)
    return _minmax(z).reshape(T, U, 3).astype(np.float32)


def phase_colours(states: torch.Tensor, oscillator: int = 0) -> np.ndarray:
    """Phase-wheel colouring for N = 2: hue = angle of the chosen 2-D oscillator. ``(T, U, D)`` -> ``(T, U, 3)``."""
    a, b = states[..., 2 * oscillator].double(), states[..., 2 * oscillator + 1].double()
    hue = ((torch.atan2(b, a) / (2 * math.pi)) % 1.0).numpy()
    return hsv_to_rgb(hue, np.ones_like(hue), np.ones_like(hue))


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], -1).astype(np.float32)
