"""The frozen backbone's outputs, computed once per training image, for training adapters on top of it.

On top of a frozen backbone (``placement="top"``) the adapters never change what the backbone
computes, so its outputs depend on its input alone. ``build`` runs the backbone once over the
training images, on ``copies`` colour-augmented copies of each (colour jitter and grayscale, as in
the image-space SimCLR views), and keeps the outputs at every adapter point in float16. A training
step then takes two different copies of each image and crops each at random in feature space
(``views``): the step pays for the adapters only.

This is not the image-space recipe: the colour draws are fixed per copy for the whole training,
and a crop of the feature map is coarser than the backbone's features of a cropped, re-enlarged
image. docs/adapters.md measures what it costs in accuracy and what it buys in speed.
"""

from __future__ import annotations

import torch

from akorn.experiments.objects.augment import colour_jitter, random_grayscale, random_resized_crop

PREFIX = "backbone:"  # batch keys: PREFIX + point


class FeatureCache:
    """``point -> (N, copies, ...)`` backbone outputs, served by index like the engine's other datasets."""

    streams = False

    def __init__(self, outputs: dict[str, torch.Tensor]):
        sizes = {len(t) for t in outputs.values()}
        if len(sizes) != 1:
            raise ValueError(f"every point needs one output per image, got counts {sorted(sizes)}")
        self.outputs = outputs

    def __len__(self) -> int:
        return len(next(iter(self.outputs.values())))

    @property
    def copies(self) -> int:
        return next(iter(self.outputs.values())).shape[1]

    def batch(self, idx: torch.Tensor) -> dict:
        return {PREFIX + p: t[idx] for p, t in self.outputs.items()}


@torch.no_grad()
def build(adapter, data, copies: int, to_input, seed: int, device, batch: int = 64, progress=True) -> FeatureCache:
    """Run ``adapter``'s backbone over every image of ``data`` (``len`` and ``batch(idx)`` giving
    ``{"images": uint8 (B, H, W, 3)}``), ``copies`` colour-augmented copies each.

    ``to_input`` turns a batch's uint8 images into the backbone's float input. The copies' colour
    draws come from a generator seeded with ``seed``, so a resumed run rebuilds the same cache."""
    from tqdm import tqdm

    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    g = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {p: [] for p in adapter.points}
    starts = range(0, len(data), batch)
    for s in tqdm(starts, desc="backbone features", unit="batch", disable=not progress, leave=False):
        imgs = to_input(data.batch(torch.arange(s, min(len(data), s + batch)))["images"])
        per_copy = {p: [] for p in adapter.points}
        for _ in range(copies):
            x = random_grayscale(colour_jitter(imgs, g), g)
            for p, out in adapter.backbone_outputs(x.to(device)).items():
                per_copy[p].append(out.to("cpu", torch.float16))
        for p in adapter.points:
            parts[p].append(torch.stack(per_copy[p], 1))
    return FeatureCache({p: torch.cat(v) for p, v in parts.items()})


def views(batch: dict, points: list[str], generator: torch.Generator, grids: dict, prefix_tokens: int) -> dict:
    """Two views of every image, stacked ``(2B, ...)`` per point: different copies, each cropped at
    random (the same copy and crop at every point of one image)."""
    first = batch[PREFIX + points[0]]
    B, K = first.shape[:2]
    dev = generator.device
    a = torch.randint(K, (B,), generator=generator, device=dev)
    b = (a + 1 + torch.randint(max(K - 1, 1), (B,), generator=generator, device=dev)) % K if K > 1 else a
    rows = torch.arange(B, device=dev)
    pair: dict[str, list[torch.Tensor]] = {p: [] for p in points}
    for which in (a, b):
        start = generator.get_state()
        for p in points:
            generator.set_state(start)  # one crop per image and view, the same at every point
            t = batch[PREFIX + p]
            pair[p].append(_crop(t[rows.to(t.device), which.to(t.device)].float(), generator, grids[p], prefix_tokens))
    return {p: torch.cat(v, 0) for p, v in pair.items()}


def _crop(h: torch.Tensor, g: torch.Generator, grid, prefix_tokens: int) -> torch.Tensor:
    if h.ndim == 4:
        return random_resized_crop(h, g)
    head, tokens = h[:, :prefix_tokens], h[:, prefix_tokens:]
    B, L, C = tokens.shape
    m = random_resized_crop(tokens.transpose(1, 2).reshape(B, C, *grid), g)
    return torch.cat([head, m.flatten(2).transpose(1, 2)], 1)
