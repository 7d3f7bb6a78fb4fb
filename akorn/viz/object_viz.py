"""A trained image AKOrN over its Kuramoto steps: oscillator colours and cluster masks per step."""

from __future__ import annotations

import numpy as np
import torch

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
def masks_over_steps(readout, traj: torch.Tensor, segment, image_size: int) -> np.ndarray:
    """The readout of the state at every step, segmented: ``(T+1, S, S, 3)`` mask frames.

    ``segment(features (C, h, w)) -> (S, S)`` integer labels (the experiment's clustering)."""
    frames = [label_colours(segment(readout(x[None])[0])) for x in traj]
    return upscale(np.stack(frames), max(1, 160 // image_size))
