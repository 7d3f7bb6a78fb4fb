"""A trained image AKOrN over its Kuramoto steps: oscillator colours and cluster masks per step."""
from __future__ import annotations

import numpy as np
import torch

from akorn.objects.masks import cluster_features, upsample_labels
from akorn.viz.media import upscale
from akorn.viz.projection import hsv_to_rgb, project_states


def state_frames(traj: torch.Tensor, n: int, image_size: int) -> np.ndarray:
    """(T+1, C, h, w) states -> (T+1, S, S, 3) frames, colours from one PCA over all steps."""
    T1, C, h, w = traj.shape
    colours = project_states(traj.flatten(2).transpose(1, 2)).reshape(T1, h, w, 3)
    return upscale(colours, max(1, 160 // h))


def label_colours(labels: np.ndarray) -> np.ndarray:
    hue = (labels.astype(float) * 0.61803) % 1.0
    return hsv_to_rgb(hue, np.full_like(hue, 0.75), np.full_like(hue, 0.95))


@torch.no_grad()
def masks_over_steps(model, layer: int, traj: torch.Tensor, k: int, image_size: int, seed: int = 0) -> np.ndarray:
    """Cluster the layer's readout of the state at every step: (T+1, S, S, 3) mask frames."""
    readout = model.readouts[layer]
    frames = []
    for x in traj:
        feats = readout(x[None])[0]
        labels = upsample_labels(cluster_features(feats, k, seed=seed), (image_size, image_size))
        frames.append(label_colours(labels))
    return upscale(np.stack(frames), max(1, 160 // image_size))
