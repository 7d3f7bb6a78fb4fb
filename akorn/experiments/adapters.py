"""Kuramoto adapters on a pretrained backbone, trained self-supervised, and the masks their features give.

Training uses the object-discovery experiment's SimCLR objective (two augmented views of every
image; each view's positive is the other view, the rest of the batch its negatives): it needs no
teacher network beside the backbone, it is the objective the paper trains its object-discovery
AKOrNs with, and it makes the comparison with those models one of features, not of objectives.
Only the adapters and the projection head train; the backbone is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from akorn.core.adapter import KuramotoAdapter
from akorn.engine.config import check_choice, check_ranges, require
from akorn.engine.trainer import Experiment, TrainConfig
from akorn.errors import UserError
from akorn.experiments.objects import datasets as scenes
from akorn.experiments.objects.augment import simclr_views
from akorn.experiments.objects.experiment import nt_xent
from akorn.experiments.objects.models import ContrastiveHead

BACKBONES = ("mobilenet_v2", "dino_vits16", "dino_vits8", "dino_vitb16", "dino_vitb8", "dinov2_vits14", "dinov2_vitb14")
DEFAULT_POINTS = {"mobilenet_v2": "features.13"}  # a ViT: its last block


def build_backbone(name: str, weights: str = "") -> nn.Module:
    """``weights``: empty for the default source (MobileNetV2: the offline package; ViTs: torch.hub),
    ``none`` for random weights (drawn from seed 0, so every build is the same network), or a file."""
    from akorn.backbones import vit
    from akorn.backbones.mobilenet import mobilenet_v2

    if weights == "none":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return mobilenet_v2(None) if name == "mobilenet_v2" else vit.build(name).eval()
    if name == "mobilenet_v2":
        return mobilenet_v2(weights or "imagenet")
    return vit.load(name, weights or None)


class AdapterNet(nn.Module):
    """A frozen backbone, Kuramoto adapters at ``points``, a SimCLR head on the last adapter's features."""

    def __init__(self, backbone: nn.Module, points: list[str], image_size: int, channels: int = 128, n: int = 4,
                 steps: int = 4, coupling: str = "attn", heads: int = 4, placement: str = "top",
                 backbone_precision: str = "fp32"):  # fmt: skip
        super().__init__()
        self.image_size = image_size
        example = torch.zeros(1, 3, image_size, image_size)
        prefix = getattr(backbone, "prefix_tokens", 0)
        self.adapter = KuramotoAdapter(backbone, points, example, channels, n, steps, coupling, heads,
                                       placement=placement, prefix_tokens=prefix,
                                       backbone_precision=backbone_precision)  # fmt: skip
        self.last = points[-1]
        grid = self.adapter.grids[self.last]
        if grid is None:
            raise ValueError(f"{self.last}: its tokens do not form a square grid")
        self.grid = grid
        self.patch = image_size // grid[0]
        self.head = ContrastiveHead(channels)

    def _as_map(self, f: torch.Tensor) -> torch.Tensor:
        return f if f.ndim == 4 else f.transpose(1, 2).reshape(len(f), f.shape[2], *self.grid)

    def features(self, img: torch.Tensor, generator=None, stop_early: bool = True) -> torch.Tensor:
        """The last adapter's features as a map ``(B, C, h, w)`` (``stop_early``: see ``KuramotoAdapter.features``)."""
        return self._as_map(self.adapter.features(img, generator, stop_early)[self.last])

    @torch.no_grad()
    def backbone_features(self, img: torch.Tensor, generator=None) -> torch.Tensor:
        """The backbone's own output at the last point (patch tokens as a map), adapters not run."""
        out = self.adapter.backbone_outputs(img)[self.last]
        if out.ndim == 3:
            out = out[:, self.adapter.prefix_tokens :].transpose(1, 2).reshape(len(out), out.shape[2], *self.grid)
        return out

    def forward_from(self, outputs: dict[str, torch.Tensor], generator=None) -> torch.Tensor:
        """The SimCLR embedding from backbone outputs computed beforehand (``placement="top"``)."""
        return self.head(self._as_map(self.adapter.features_from(outputs, generator)[self.last]))

    def forward(self, img, generator=None, cached: bool = False) -> torch.Tensor:
        """The SimCLR embedding of images, or with ``cached`` of the backbone's outputs at every point
        (a dict, computed beforehand; ``placement="top"``)."""
        if cached:
            return self.forward_from(img, generator)
        return self.head(self.features(img, generator))


class BackboneOnly(nn.Module):
    """The backbone's own features, in the interface mask extraction takes (method (a) of the comparison)."""

    def __init__(self, net: AdapterNet):
        super().__init__()
        self.net, self.patch = net, net.patch

    def features(self, img, generator=None):
        return self.net.backbone_features(img)


@dataclass
class AdaptersConfig(TrainConfig):
    """SimCLR training of Kuramoto adapters on a frozen backbone (the objects experiment's optimiser)."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    clip_grad: float = 1.0

    backbone: str = "mobilenet_v2"
    backbone_weights: str = ""  # empty: the default source; none: random weights; or a file
    points: str = ""  # comma-separated submodule names (empty: the backbone's default)
    placement: str = "top"  # top | between
    backbone_precision: str = "fp32"  # bf16: the frozen backbone under bf16 autocast, the adapters as `precision`
    data: str = "tetrominoes"  # a procedural scene set, FILE.npz of scenes, or an image folder
    train_size: int = 6000  # images of a procedural set
    test_size: int = 64
    image_size: int = 64  # images are resized to this (a multiple of the backbone's stride)
    channels: int = 128
    n: int = 4
    steps: int = 4
    coupling: str = "attn"
    heads: int = 4
    temperature: float = 0.1
    clusters: int = 0  # 0: the data's default
    # 0: SimCLR views in image space, the backbone run on both every step. K > 0 (placement=top):
    # the backbone's outputs for K augmented copies of every training image, computed once; a step
    # pairs two of them (akorn/experiments/adapter_cache.py).
    feature_cache: int = 0
    cache_views: str = "image"  # image: copies are whole SimCLR views; feature: colour only, crops in feature space

    def validate(self):
        super().validate()
        check_choice(self, "backbone", BACKBONES)
        check_choice(self, "placement", ("top", "between"))
        check_choice(self, "backbone_precision", ("fp32", "bf16"))
        check_choice(self, "cache_views", ("image", "feature"))
        check_choice(self, "coupling", ("attn", "conv"))
        check_ranges(self, train_size=(1, None), test_size=(1, None), image_size=(8, 4096), channels=(1, None),
                     n=(1, None), steps=(1, None), heads=(1, None), temperature=(0, None),
                     clusters=(0, None), feature_cache=(0, 64))  # fmt: skip
        require(
            self.feature_cache == 0 or self.placement == "top",
            "feature_cache needs placement=top: between blocks, the adapters change the backbone's outputs",
        )
        require(self.temperature > 0, f"temperature must be positive, got {self.temperature}")
        require(self.channels % self.n == 0, f"channels ({self.channels}) must be divisible by n ({self.n})")
        if self.coupling == "attn":
            require(self.channels % self.heads == 0, f"channels ({self.channels}) must be divisible by heads")
            require((self.channels // self.heads) % 2 == 0, "channels/heads must be even for GTA")
        else:
            require(self.n % 2 == 0, f"conv adapters rotate channel pairs (global ω): n must be even, got {self.n}")

    def point_list(self) -> list[str]:
        if self.points:
            return [p.strip() for p in self.points.split(",") if p.strip()]
        if self.backbone in DEFAULT_POINTS:
            return [DEFAULT_POINTS[self.backbone]]
        from akorn.backbones.vit import MODELS

        return [f"blocks.{MODELS[self.backbone][2] - 1}"]


PRESETS = {
    "cpu": dict(
        epochs=2,
        train_size=4000,
        batch_size=32,
        image_size=64,
        channels=64,
        steps=4,
        checkpoint_every=50,
        ema_start=20,
        ema_every=1,
        ema_decay=0.99,
        ema_warmup=False,
    ),  # fmt: skip
    "tiny": dict(
        train_size=16,
        test_size=4,
        batch_size=4,
        epochs=1,
        channels=8,
        heads=2,
        n=2,
        steps=1,
        image_size=64,
        backbone_weights="none",
        checkpoint_every=2,
        log_every=1,
        ema_start=1,
        ema_every=1,
    ),  # fmt: skip
}


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` -> float ``(B, 3, size, size)`` in [0, 1] (bilinear, antialiased)."""
    x = images.permute(0, 3, 1, 2).float() / 255
    if x.shape[2:] != (size, size):
        x = torch.nn.functional.interpolate(x, (size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


class AdaptersExperiment(Experiment):
    name = "adapters"
    config_cls = AdaptersConfig
    presets = PRESETS

    def build_model(self, cfg):
        backbone = build_backbone(cfg.backbone, cfg.backbone_weights)
        try:
            return AdapterNet(backbone, cfg.point_list(), cfg.image_size, cfg.channels, cfg.n, cfg.steps,
                              cfg.coupling, cfg.heads, cfg.placement, cfg.backbone_precision)  # fmt: skip
        except ValueError as e:
            raise UserError(str(e)) from None

    def _scenes(self, cfg, n, seed):
        if cfg.data in scenes.IMAGE_SIZE or cfg.data.endswith(".npz"):
            return scenes.load(cfg.data, n, seed)
        return None

    def train_data(self, cfg):
        ds = self._scenes(cfg, cfg.train_size, cfg.seed)
        if ds is None:
            from akorn.experiments.classify import data as folders

            ds = folders.load(cfg.data, "train", 0, in_memory=False)
        if not cfg.feature_cache:
            return ds
        from akorn.engine.distributed import pick_device
        from akorn.experiments import adapter_cache

        device = pick_device(cfg.device)
        with torch.random.fork_rng(devices=[]):  # the run's own model is drawn as without a cache
            net = self.build_model(cfg).to(device)
        return adapter_cache.build(net.adapter, ds, cfg.feature_cache, lambda im: resize(im, cfg.image_size),
                                   cfg.seed, device, cfg.cache_views)  # fmt: skip

    def test_data(self, cfg):
        return self._scenes(cfg, cfg.test_size, 10_000 + cfg.seed)

    def clusters(self, cfg) -> int:
        return cfg.clusters or scenes.NUM_CLUSTERS.get(cfg.data, 4)

    def loss(self, model, batch, generator, cfg, shard=(0, None)):
        if cfg.feature_cache:
            from akorn.experiments import adapter_cache

            net = getattr(model, "module", model)  # DDP wraps the model
            adapter = net.adapter
            outputs = adapter_cache.views(batch, adapter.points, generator, adapter.grids, adapter.prefix_tokens,
                                          crop=cfg.cache_views == "feature")  # fmt: skip
            z1, z2 = model(outputs, generator, cached=True).chunk(2)
            return nt_xent(z1, z2, cfg.temperature), {}
        imgs = resize(batch["images"], cfg.image_size)
        v1, v2 = simclr_views(imgs, generator, "yiq", 0.2), simclr_views(imgs, generator, "yiq", 0.2)
        z1, z2 = model(torch.cat([v1, v2], 0), generator).chunk(2)
        return nt_xent(z1, z2, cfg.temperature), {}

    def evaluate(self, model, cfg, device):
        ds = self.test_data(cfg)
        if ds is None:
            return {}
        scores = compare_on_scenes({"adapter": (model, cfg.image_size)}, ds, self.clusters(cfg), cfg.seed)
        return {"fg_ari": scores["adapter"]["fg_ari"], "mbo": scores["adapter"]["mbo"]}


def masks_of(model, images: torch.Tensor, k: int, image_size: int, seed: int, uptile: int = 1,
             uptile_align: str = "reference") -> np.ndarray:  # fmt: skip
    """uint8 ``(B, H, W, 3)`` -> predicted segments ``(B, H, W)`` (features clustered, up-sampled).

    ``uptile`` > 1: features of ``uptile``² shifted copies interleaved into a denser map (the
    object-discovery evaluation's up-tiling; ``uptile_align`` as there)."""
    from akorn.experiments.objects.masks import predict_masks

    x = resize(images, image_size).to(next(model.parameters()).device)
    pred = predict_masks(model, x, k, "agglomerative", uptile=uptile, seed=seed, uptile_align=uptile_align)
    H, W = images.shape[1:3]
    if pred.shape[1:] != (H, W):
        t = torch.from_numpy(pred)[:, None].float()
        pred = torch.nn.functional.interpolate(t, (H, W), mode="nearest")[:, 0].long().numpy()
    return pred


def compare_on_scenes(models: dict, ds, k: int, seed: int = 0, uptile: int = 1, uptile_align="reference") -> dict:
    """FG-ARI and MBO of each model's masks on procedural scenes with ground truth.

    ``models``: name -> (model with ``features(images)``, the image size it takes)."""
    from akorn.experiments.objects.metrics import fg_ari, mbo

    out = {}
    for name, (model, image_size) in models.items():
        pred = masks_of(model, ds.images, k, image_size, seed, uptile, uptile_align)
        gt = ds.masks.numpy()
        out[name] = {
            "fg_ari": float(np.nanmean([fg_ari(g, p) for g, p in zip(gt, pred)])),
            "mbo": float(np.nanmean([mbo(g, p) for g, p in zip(gt, pred)])),
            "images": len(gt),
        }
    return out


def compare_on_photos(
    models: dict, photos, k: int, seed: int = 0, uptile: int = 1, uptile_align: str = "reference"
) -> tuple[dict, dict]:
    """MBO_i and MBO_c of each model's masks on photographs; also the masks themselves."""
    from akorn.experiments.photos import mbo_scores

    out, masks = {}, {}
    for name, (model, image_size) in models.items():
        scores, preds = [], []
        for photo in photos:
            pred = masks_of(model, torch.from_numpy(photo.image)[None], k, image_size, seed, uptile, uptile_align)[0]
            scores.append(mbo_scores(photo, pred))
            preds.append(pred)
        out[name] = {
            "mbo_i": float(np.nanmean([s["mbo_i"] for s in scores])),
            "mbo_c": float(np.nanmean([s["mbo_c"] for s in scores])),
            "images": len(photos),
        }
        masks[name] = preds
    return out, masks
