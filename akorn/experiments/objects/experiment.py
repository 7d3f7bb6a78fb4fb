"""The object-discovery experiment for the engine: SimCLR training, FG-ARI / MBO evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from akorn.engine.config import apply_overrides, check_choice, check_ranges, from_dict, parse_words, require
from akorn.engine.trainer import Experiment, TrainConfig
from akorn.errors import UserError
from akorn.experiments.objects import datasets
from akorn.experiments.objects.augment import VIEW_STYLES, simclr_views
from akorn.experiments.objects.masks import predict_masks
from akorn.experiments.objects.metrics import fg_ari, mbo
from akorn.experiments.objects.models import ImageAKOrN, ImageIterated


@dataclass
class ObjectsConfig(TrainConfig):
    """Defaults: the authors' Tetrominoes AKOrN-attn recipe (C=128, patch 4, T=8, batch 256, 50 epochs, Adam 1e-3
    without gradient clipping, EMA 0.998 every 10 steps from step 200 with warm-up)."""

    epochs: int = 50
    batch_size: int = 256
    clip_grad: float = 0.0
    ema_decay: float = 0.998
    ema_every: int = 10
    ema_start: int = 200

    data: str = "tetrominoes"  # tetrominoes | dsprites | clevr-like | file.npz | CLEVRTex folder
    tetromino_layout: str = "crop35"  # crop35: 35x35 then centre crop, as specified; dense32: the older generator
    train_size: int = 60000
    test_size: int = 320
    image_size: int = 0  # 0: the dataset's own size
    model: str = "akorn"  # akorn | itrsa | itrconv
    coupling: str = "attn"  # akorn: attn | conv
    channels: int = 128
    n: int = 4
    patch: int = 4
    layers: int = 1
    steps: int = 8
    heads: int = 8
    kernel_size: int = 5
    omega: str = "identity"  # reference code: no Ω, identity in its place
    omega_init: float = 1.0
    gamma: float = 1.0
    c_norm: str = "none"
    temperature: float = 0.1
    views: str = "torchvision"  # SimCLR views: torchvision (the authors' pipeline) | yiq (milder, see objects.augment)
    crop_scale_min: float = 0.08  # smallest crop area; torchvision's default, which the authors keep
    clusters: int = 0  # 0: the dataset's default (Tetrominoes 4, dSprites 7, CLEVR 11)
    cluster_method: str = "agglomerative"
    activation_checkpoint: bool = False

    def validate(self):
        super().validate()
        check_choice(self, "model", ("akorn", "itrsa", "itrconv"))
        check_choice(self, "coupling", ("attn", "conv"))
        check_choice(self, "cluster_method", ("agglomerative", "kmeans"))
        check_choice(self, "views", VIEW_STYLES)
        check_choice(self, "omega", ("global", "per_pair", "none", "identity"))
        check_choice(self, "c_norm", ("gn", "none"))
        datasets.check_tetromino_layout(self.tetromino_layout)
        check_ranges(
            self,
            train_size=(1, None),
            test_size=(1, None),
            image_size=(0, None),
            channels=(1, None),
            n=(1, None),
            patch=(1, None),
            layers=(1, None),
            steps=(1, None),
            heads=(1, None),
            kernel_size=(1, None),
            omega_init=(None, None),
            gamma=(None, None),
            temperature=(0, None),
            crop_scale_min=(0, 1),
            clusters=(0, None),
        )
        require(self.temperature > 0, f"temperature must be positive, got {self.temperature}")
        require(self.crop_scale_min > 0, f"crop_scale_min must be in (0, 1], got {self.crop_scale_min}")
        require(self.kernel_size % 2 == 1, f"kernel_size must be odd, got {self.kernel_size}")
        require(self.channels % self.n == 0, f"channels ({self.channels}) must be divisible by n ({self.n})")
        require(
            self.image_size % self.patch == 0,
            f"image_size ({self.image_size}) must be a multiple of patch ({self.patch})",
        )
        if self.omega in ("global", "per_pair"):
            require(self.n % 2 == 0, f"omega={self.omega} rotates channel pairs and needs an even n, got {self.n}")
        if self.model != "akorn":
            require(self.channels % 4 == 0, f"channels must be divisible by 4 (2-D sinusoids), got {self.channels}")
        if self.coupling == "attn" or self.model == "itrsa":
            require(
                self.channels % self.heads == 0, f"channels ({self.channels}) must be divisible by heads ({self.heads})"
            )
            require(
                (self.channels // self.heads) % 2 == 0,
                f"channels/heads must be even for GTA's 2x2 blocks, got {self.channels}/{self.heads}",
            )


PRESETS = {
    "tetrominoes": dict(data="tetrominoes", channels=128, patch=4, epochs=50),
    "dsprites": dict(data="dsprites", channels=128, patch=4, epochs=50, kernel_size=7),
    "clevr-like": dict(data="clevr-like", channels=256, patch=8, epochs=300, kernel_size=7),
    # Minutes on 2 CPU cores. Its EMA (0.995 every step from step 20, no warm-up) and clipping at 1.0
    # are what the tables of docs/objects.md were trained with; the recipe's slow EMA would lag on runs this short.
    "cpu": dict(
        train_size=6000,
        batch_size=64,
        epochs=3,
        channels=64,
        heads=4,
        test_size=320,
        compile=True,
        checkpoint_every=100,
        ema_start=20,
        ema_every=1,
        ema_decay=0.995,
        ema_warmup=False,
        clip_grad=1.0,
    ),
    "tiny": dict(
        train_size=40,
        test_size=8,
        batch_size=8,
        epochs=2,
        channels=16,
        heads=2,
        steps=2,
        checkpoint_every=2,
        log_every=1,
        ema_start=1,
        ema_every=1,
    ),
}


def build_model(cfg: ObjectsConfig, image_size: int):
    if cfg.model == "akorn":
        return ImageAKOrN(
            image_size,
            cfg.patch,
            cfg.channels,
            cfg.n,
            cfg.layers,
            cfg.steps,
            cfg.coupling,
            cfg.kernel_size,
            cfg.heads,
            cfg.omega,
            cfg.omega_init,
            cfg.gamma,
            None if cfg.c_norm == "none" else cfg.c_norm,
            cfg.activation_checkpoint,
            cfg.compile,
        )
    return ImageIterated(
        image_size,
        cfg.patch,
        cfg.channels,
        cfg.layers,
        cfg.steps,
        "attn" if cfg.model == "itrsa" else "conv",
        cfg.kernel_size,
        cfg.heads,
    )


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR loss: each view's positive is the other view of the same image, negatives all others."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from torch.distributed.nn.functional import all_gather

        z1, z2 = torch.cat(all_gather(z1), 0), torch.cat(all_gather(z2), 0)
    z = F.normalize(torch.cat([z1, z2], 0).float(), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 3, 1, 2).float() / 255.0


def evaluate_masks(
    model,
    ds,
    k: int,
    method: str,
    uptile: int = 1,
    batch: int = 32,
    seed: int = 0,
    uptile_noise: str = "independent",
    uptile_align: str = "reference",
    on_batch=None,
):
    """Per-image FG-ARI and MBO over ``ds``; also returns the predicted label maps.

    ``on_batch(first, aris, mbos)``: called after every batch with its images' scores (progress, records)."""
    device = next(model.parameters()).device
    aris, mbos, preds = [], [], []
    for s in range(0, len(ds), batch):
        imgs = to_float_images(ds.images[s : s + batch]).to(device)
        p = predict_masks(
            model, imgs, k, method, uptile, seed=seed, uptile_noise=uptile_noise, uptile_align=uptile_align
        )
        gt = ds.masks[s : s + batch].numpy()
        for g, q in zip(gt, p):
            aris.append(fg_ari(g, q))
            mbos.append(mbo(g, q))
        preds.append(p)
        if on_batch is not None:
            on_batch(s, aris[s:], mbos[s:])
    return np.array(aris), np.array(mbos), np.concatenate(preds)


class ObjectsExperiment(Experiment):
    name = "objects"
    config_cls = ObjectsConfig
    presets = PRESETS
    handles_compile = True
    fields_of_older_runs = {"tetromino_layout": "dense32", "views": "yiq", "crop_scale_min": 0.2}
    pretrained = {"": "tetrominoes-akorn", "tetrominoes": "tetrominoes-akorn"}

    def from_authors_checkpoint(self, path: str, words: list[str]):
        """``image_size=`` among ``words`` sizes a conv-coupled model (an attention one reads it off)."""
        from akorn.experiments.objects.authors import load_authors_checkpoint

        given = apply_overrides(ObjectsConfig(), parse_words(words)) if words else ObjectsConfig()
        weights, fields = load_authors_checkpoint(path, given.image_size)
        cfg = from_dict(ObjectsConfig, dict(fields, ema_decay=0.0), path)
        return weights, apply_overrides(cfg, parse_words(words)) if words else cfg

    def image_size(self, cfg):
        if cfg.image_size:
            return cfg.image_size
        if cfg.data in datasets.IMAGE_SIZE:
            return datasets.IMAGE_SIZE[cfg.data]
        return int(datasets.load(cfg.data, 1, cfg.seed, 128).images.shape[1])

    def build_model(self, cfg):
        return build_model(cfg, self.image_size(cfg))

    def train_data(self, cfg):
        ds = datasets.load(cfg.data, cfg.train_size, cfg.seed, cfg.image_size or None, cfg.tetromino_layout)
        size = self.image_size(cfg)
        if ds.images.shape[1:3] != (size, size):
            raise UserError(f"{cfg.data}: images are {tuple(ds.images.shape[1:3])}, the model expects {size}x{size}")
        return ds

    def test_data(self, cfg):
        return datasets.load(cfg.data, cfg.test_size, 10_000 + cfg.seed, cfg.image_size or None, cfg.tetromino_layout)

    def clusters(self, cfg):
        return cfg.clusters or datasets.NUM_CLUSTERS.get(cfg.data, 7)

    def loss(self, model, batch, generator, cfg, shard=(0, None)):
        imgs = to_float_images(batch["images"])
        v1, v2 = (simclr_views(imgs, generator, cfg.views, cfg.crop_scale_min) for _ in range(2))
        z = model(torch.cat([v1, v2], 0), generator)
        z1, z2 = z.chunk(2)
        return nt_xent(z1, z2, cfg.temperature), {}

    def evaluate(self, model, cfg, device):
        ds = self.test_data(cfg)
        aris, mbos, _ = evaluate_masks(model, ds, self.clusters(cfg), cfg.cluster_method, seed=cfg.seed)
        return {"fg_ari": float(np.nanmean(aris)), "mbo": float(np.nanmean(mbos))}
