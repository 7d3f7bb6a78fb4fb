"""A trained image AKOrN over its Kuramoto steps: oscillator colours and cluster masks per step."""

from __future__ import annotations

import numpy as np
import torch

from akorn.viz.dynamics import settling_step, speed_curve
from akorn.viz.media import upscale
from akorn.viz.projection import hsv_to_rgb, project_states


def state_frames(
    traj: torch.Tensor, n: int, image_size: int, method: str = "pca", seed: int = 0, say=None
) -> np.ndarray:
    """(T+1, C, h, w) states -> (T+1, S, S, 3) frames, colours from one projection (``pca``, ``tsne``
    or ``umap``) fitted over all steps of the layer."""
    T1, C, h, w = traj.shape
    colours = project_states(traj.flatten(2).transpose(1, 2), method, seed, say).reshape(T1, h, w, 3)
    return upscale(colours, max(1, 160 // h))


def layer_motion(traj: torch.Tensor, n: int) -> dict:
    """How fast a layer's ``(T+1, C, h, w)`` states turn: the mean angular speed (degrees per step)
    over all steps, the speed step by step, and the step from which it stays below a tenth of its
    largest value (None: it never settles)."""
    speed = speed_curve(traj.flatten(2).transpose(1, 2), n)
    return {
        "mean_speed_deg_per_step": float(speed.mean()),
        "settling_step": settling_step(speed),
        "speed_deg_per_step": [round(float(v), 4) for v in speed],
    }


def label_colours(labels: np.ndarray) -> np.ndarray:
    hue = (labels.astype(float) * 0.61803) % 1.0
    return hsv_to_rgb(hue, np.full_like(hue, 0.75), np.full_like(hue, 0.95))


@torch.no_grad()
def masks_over_steps(readout, traj: torch.Tensor, segment, image_size: int) -> np.ndarray:
    """The readout of the state at every step, segmented: ``(T+1, S, S, 3)`` mask frames.

    ``segment(features (C, h, w)) -> (S, S)`` integer labels (the experiment's clustering)."""
    frames = [label_colours(segment(readout(x[None])[0])) for x in traj]
    return upscale(np.stack(frames), max(1, 160 // image_size))
