"""The frozen backbone's outputs, computed once per training image, for training adapters on top of it.

On top of a frozen backbone (``placement="top"``) the adapters never change what the backbone
computes, so its outputs depend on its input alone. ``build`` runs the backbone once over
``copies`` augmented copies of every training image and keeps its outputs at every adapter point
in float16; a training step pairs two different copies of each image (``views``) and pays for the
adapters only. Two kinds of copy:

* ``"image"``: each copy is a whole image-space SimCLR view (random resized crop, colour jitter,
  grayscale), so every view is one the image-space recipe could draw; what differs is that an
  image has ``copies`` views for the whole training instead of fresh ones every epoch (the same
  number when ``copies`` is twice the epochs).
* ``"feature"``: each copy is colour-augmented only, and every step crops its two views at random
  in feature space: new crops every step, but a crop of the feature map is coarser than the
  backbone's features of a cropped, re-enlarged image.

docs/adapters.md measures what each costs in accuracy and what it buys in speed.
"""

from __future__ import annotations

import torch

from akorn.experiments.objects.augment import colour_jitter, random_grayscale, random_resized_crop, simclr_views

PREFIX = "backbone:"  # batch keys: PREFIX + point
KINDS = ("image", "feature")


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
def build(adapter, data, copies: int, to_input, seed: int, device, kind: str = "image", batch: int = 64,
          progress=True) -> FeatureCache:  # fmt: skip
    """Run ``adapter``'s backbone over every image of ``data`` (``len`` and ``batch(idx)`` giving
    ``{"images": uint8 (B, H, W, 3)}``), ``copies`` augmented copies of ``kind`` each.

    ``to_input`` turns a batch's uint8 images into the backbone's float input. The copies' random
    draws come from a generator seeded with ``seed``, so a resumed run rebuilds the same cache."""
    from tqdm import tqdm

    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    g = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {p: [] for p in adapter.points}
    starts = range(0, len(data), batch)
    for s in tqdm(starts, desc="backbone features", unit="batch", disable=not progress, leave=False):
        imgs = to_input(data.batch(torch.arange(s, min(len(data), s + batch)))["images"])
        per_copy = {p: [] for p in adapter.points}
        for _ in range(copies):
            x = simclr_views(imgs, g, "yiq", 0.2) if kind == "image" else random_grayscale(colour_jitter(imgs, g), g)
            for p, out in adapter.backbone_outputs(x.to(device)).items():
                per_copy[p].append(out.to("cpu", torch.float16))
        for p in adapter.points:
            parts[p].append(torch.stack(per_copy[p], 1))
    return FeatureCache({p: torch.cat(v) for p, v in parts.items()})


def views(batch: dict, points: list[str], generator: torch.Generator, grids: dict, prefix_tokens: int,
          crop: bool = False) -> dict:  # fmt: skip
    """Two views of every image, stacked ``(2B, ...)`` per point: two different copies (the same at
    every point of one image); with ``crop`` (``"feature"`` copies) each cropped at random, the same
    crop at every point."""
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
            view = t[rows.to(t.device), which.to(t.device)].float()
            pair[p].append(_crop(view, generator, grids[p], prefix_tokens) if crop else view)
    return {p: torch.cat(v, 0) for p, v in pair.items()}


def _crop(h: torch.Tensor, g: torch.Generator, grid, prefix_tokens: int) -> torch.Tensor:
    if h.ndim == 4:
        return random_resized_crop(h, g)
    head, tokens = h[:, :prefix_tokens], h[:, prefix_tokens:]
    B, L, C = tokens.shape
    m = random_resized_crop(tokens.transpose(1, 2).reshape(B, C, *grid), g)
    return torch.cat([head, m.flatten(2).transpose(1, 2)], 1)
