"""Masks from synchrony: per-patch features -> L2 normalise -> PCA -> clustering -> pixel labels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def cluster_features(
    feats: torch.Tensor, k: int, method: str = "agglomerative", pca_dim: int = 128, seed: int = 0
) -> np.ndarray:
    """(C, h, w) features of one image -> (h, w) labels in 0..k-1."""
    C, h, w = feats.shape
    if k > h * w:
        raise ValueError(f"k={k} clusters is more than the {h * w} patches of the feature map")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    x = F.normalize(feats.reshape(C, h * w).T.double(), dim=1)
    x = x - x.mean(0, keepdim=True)
    if pca_dim and pca_dim < min(x.shape):
        _, _, V = torch.linalg.svd(x, full_matrices=False)
        x = x @ V[:pca_dim].T
    x = x.numpy()
    if method == "agglomerative":
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(n_clusters=k, linkage="average").fit_predict(x)
    elif method == "kmeans":
        from sklearn.cluster import KMeans

        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)
    else:
        raise ValueError(f"method must be 'agglomerative' or 'kmeans', got {method!r}")
    return labels.reshape(h, w)


UPTILE_NOISE = ("independent", "shared")
UPTILE_ALIGN = ("corner", "centre", "reference")


def upsample_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(labels.astype(np.int64))[None, None].float()
    return F.interpolate(t, size=size, mode="nearest")[0, 0].long().numpy()


@torch.no_grad()
def uptiled_features(
    model, images: torch.Tensor, factor: int, generator=None, noise: str = "independent", align: str = "reference"
):
    """Features on ``factor x factor`` shifted copies, interleaved into a map ``factor`` times denser.

    Each copy shifts the image by ``patch/factor`` pixels (edge pixels repeated), so patch
    centres of the copies fall between those of the original. ``noise``: ``"independent"``
    random initial oscillator states per copy (the reference code's default), or ``"shared"``:
    every copy starts from the same states, so the copies' phases are comparable.
    ``align``: ``"corner"`` puts each patch's feature in the map cell at the patch's top-left
    corner, which displaces the map by ``(patch - patch/factor) / 2`` pixels; ``"centre"`` shifts
    the copies back by that amount (rounded down) so cells sit under their patches' centres.
    ``"reference"`` is the reference code's construction: the image is resized (bicubic) to
    ``H + patch - patch/factor`` pixels and the copies are windows of that, so they are shifted
    and also magnified by ``(H + patch - patch/factor) / H``; the map's offset then runs from
    about +``(patch - s) / 2`` pixels at the top-left edge to about -``(patch - s) / 2`` at the
    bottom-right.
    """
    if noise not in UPTILE_NOISE:
        raise ValueError(f"noise must be one of {UPTILE_NOISE}, got {noise!r}")
    if align not in UPTILE_ALIGN:
        raise ValueError(f"align must be one of {UPTILE_ALIGN}, got {align!r}")
    if factor <= 1:
        return model.features(images, generator)
    p = model.patch
    if p % factor:
        raise ValueError(f"up-tiling factor {factor} must divide the patch size {p}")
    s = p // factor
    B, _, H, W = images.shape
    if align == "reference":
        padded = F.interpolate(images, (H + p - s, W + p - s), mode="bicubic")
    else:
        lead = (p - s) // 2 if align == "centre" else 0
        padded = F.pad(images, (lead, p, lead, p), mode="replicate")
    out = None
    start = generator.get_state() if generator is not None and noise == "shared" else None
    for dy in range(factor):
        for dx in range(factor):
            if start is not None:
                generator.set_state(start)
            shifted = padded[:, :, dy * s : dy * s + H, dx * s : dx * s + W]
            f = model.features(shifted, generator)  # (B, C, h, w)
            if out is None:
                out = f.new_zeros(B, f.shape[1], f.shape[2] * factor, f.shape[3] * factor)
            out[:, :, dy::factor, dx::factor] = f
    return out


def predict_masks(
    model,
    images: torch.Tensor,
    k: int,
    method: str = "agglomerative",
    uptile: int = 1,
    pca_dim: int = 128,
    seed: int = 0,
    uptile_noise: str = "independent",
    uptile_align: str = "reference",
) -> np.ndarray:
    """(B, 3, H, W) images -> (B, H, W) predicted segment labels."""
    g = torch.Generator(device=images.device if images.device.type == "cuda" else "cpu").manual_seed(seed)
    feats = uptiled_features(model, images, uptile, g, uptile_noise, uptile_align).float().cpu()
    H, W = images.shape[2:]
    return np.stack([upsample_labels(cluster_features(f, k, method, pca_dim, seed), (H, W)) for f in feats])
