"""The image-classification experiment for the engine: cross-entropy training, clean accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from akorn.engine.config import check_choice, check_ranges, require, resolve
from akorn.engine.trainer import Experiment, TrainConfig
from akorn.errors import UserError
from akorn.experiments.classify import augment as aug
from akorn.experiments.classify import data as datasets
from akorn.experiments.classify.models import MODELS, AKOrNClassifier, AttentionAKOrN, ResNet18, ViT

DEFAULT_CHANNELS = {"akorn": 64, "akorn-attn": 256, "resnet18": 64, "vit": 192}


@dataclass
class ClassifyConfig(TrainConfig):
    """Defaults: the authors' CIFAR-10 recipe (AKOrN N=2, T=3, 64/128/256 channels, kernels 9/7/5;
    Adam 1e-4 without clipping, batch 128, 400 epochs, EMA 0.99 every 10 steps from step 200;
    flip, random resized crop 0.2-1, colour jitter, AugMix)."""

    epochs: int = 400
    batch_size: int = 128
    lr: float = 1e-4
    clip_grad: float = 0.0
    ema_decay: float = 0.99
    ema_every: int = 10
    ema_start: int = 200

    data: str = "cifar10"  # cifar10 | cifar10:FOLDER | fashion-mnist:FOLDER | FILE.npz | image folder
    test_data: str = ""  # empty: the test split of data
    image_size: int = 0  # 0: the data's own size (an image folder is resized to it when set)
    classes: int = 0  # 0: the training data's; filled in when training starts, so a run builds without its data
    in_channels: int = 0  # 0: the training data's (1 or 3); filled in likewise
    workers: int = 0  # processes decoding an image folder
    in_memory: bool = True  # decode an image folder once into memory (false: stream it)
    eval_size: int = 0  # test images the periodic evaluation uses (0: all)
    model: str = "akorn"  # akorn | akorn-attn | resnet18 | vit
    channels: int = 0  # 0: the model's default (akorn 64, akorn-attn 256, resnet18 64, vit 192)
    n: int = 2
    steps: int = 3
    stages: int = 3
    kernel_sizes: str = "9,7,5"
    readout_kernel: int = 3
    omega_init: float = 1.0
    gamma: float = 1.0
    patch: int = 4  # akorn-attn and vit
    layers: int = 4  # akorn-attn Kuramoto layers; vit blocks
    heads: int = 8
    augment: str = "flip,crop,jitter,augmix"  # any of flip, crop, jitter, augmix, noise ("mix" = + noise)
    crop_scale_min: float = 0.2
    noise_eps: float = 64 / 255
    label_smoothing: float = 0.0
    activation_checkpoint: bool = False

    def validate(self):
        super().validate()
        check_choice(self, "model", MODELS)
        check_ranges(
            self,
            image_size=(0, 4096),
            workers=(0, 256),
            eval_size=(0, None),
            channels=(0, None),
            n=(1, None),
            steps=(1, None),
            stages=(1, 8),
            readout_kernel=(1, None),
            patch=(1, None),
            layers=(1, None),
            heads=(1, None),
            crop_scale_min=(0, 1),
            noise_eps=(0, 1),
            label_smoothing=(0, 1),
        )
        require(self.crop_scale_min > 0, f"crop_scale_min must be in (0, 1], got {self.crop_scale_min}")
        try:
            aug.parse(self.augment)
            ks = kernel_sizes(self)
        except ValueError as e:
            raise UserError(str(e)) from None
        require(all(k % 2 == 1 and k > 0 for k in ks), f"kernel_sizes must be odd, got {self.kernel_sizes}")
        require(len(ks) in (1, self.stages), f"kernel_sizes needs 1 or {self.stages} sizes, got {self.kernel_sizes}")
        width = self.channels or DEFAULT_CHANNELS[self.model]
        if self.model in ("akorn", "akorn-attn"):
            require(width % self.n == 0, f"channels ({width}) must be divisible by n ({self.n})")
        if self.model == "akorn":
            require(self.n % 2 == 0, f"the global ω rotates channel pairs: n must be even, got {self.n}")
        if self.model in ("akorn-attn", "vit"):
            require(width % self.heads == 0, f"channels ({width}) must be divisible by heads ({self.heads})")
        if self.model == "akorn-attn":
            require((width // self.heads) % 2 == 0, f"channels/heads must be even for GTA, got {width}/{self.heads}")
        if self.model == "vit":
            require(width % 4 == 0, f"channels must be divisible by 4 (2-D sinusoids), got {width}")


def kernel_sizes(cfg) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in str(cfg.kernel_sizes).split(",") if k.strip())
    except ValueError:
        raise ValueError(f"kernel_sizes must be comma-separated integers, got {cfg.kernel_sizes!r}") from None


PRESETS = {
    # About an hour on 2 CPU cores, same for every model: short runs want a larger lr, a faster EMA
    # and milder augmentation than the 400-epoch recipe.
    "cpu": dict(
        channels=32,
        lr=1e-3,
        epochs=30,
        time_limit=60.0,
        augment="flip,crop",
        crop_scale_min=0.35,
        ema_decay=0.995,
        ema_every=1,
        ema_start=50,
        checkpoint_every=50,
        eval_size=2000,
        log_every=10,
    ),
    "tiny": dict(
        channels=8,
        batch_size=8,
        epochs=1,
        max_steps=4,
        steps=1,
        stages=2,
        kernel_sizes="3",
        augment="flip,crop,jitter,augmix,noise",
        checkpoint_every=2,
        log_every=1,
        ema_start=1,
        ema_every=1,
        eval_size=16,
    ),
}


def build_model(cfg: ClassifyConfig, classes: int, in_channels: int, image_size: int):
    width = cfg.channels or DEFAULT_CHANNELS[cfg.model]
    if cfg.model == "akorn":
        return AKOrNClassifier(
            classes,
            in_channels,
            width,
            cfg.stages,
            cfg.n,
            cfg.steps,
            kernel_sizes(cfg),
            cfg.readout_kernel,
            cfg.n,
            "bn",
            cfg.omega_init,
            cfg.gamma,
            cfg.activation_checkpoint,
            cfg.compile,
        )
    if cfg.model == "akorn-attn":
        return AttentionAKOrN(
            classes,
            in_channels,
            image_size,
            cfg.patch,
            width,
            cfg.layers,
            cfg.n,
            cfg.steps,
            cfg.heads,
            cfg.gamma,
            cfg.activation_checkpoint,
            cfg.compile,
        )
    if cfg.model == "resnet18":
        return ResNet18(classes, in_channels, width)
    return ViT(classes, in_channels, image_size, cfg.patch, width, cfg.layers, cfg.heads)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, H, W, C)`` -> float ``(B, C, H, W)`` in [0, 1]."""
    return images.permute(0, 3, 1, 2).float() / 255.0


class ClassifyExperiment(Experiment):
    name = "classify"
    config_cls = ClassifyConfig
    presets = PRESETS
    handles_compile = True  # the Kuramoto layers compile their own step; the baselines compile whole
    pretrained = {"": "cifar10-akorn", "cifar10": "cifar10-akorn"}

    def from_authors_checkpoint(self, path: str, words: list[str]):
        from akorn.experiments.classify.authors import load_authors_checkpoint

        sd, fields = load_authors_checkpoint(path)
        return sd, resolve(ClassifyConfig, [f"{k}={v}" for k, v in fields.items()] + list(words), None, {})

    def __init__(self):
        self._cache = {}

    def _load(self, cfg, split: str):
        spec = cfg.data if split == "train" or not cfg.test_data else cfg.test_data
        key = (spec, split, cfg.image_size, cfg.in_memory)
        if key not in self._cache:
            self._cache[key] = datasets.load(spec, split, cfg.image_size, cfg.workers, cfg.in_memory)
        return self._cache[key]

    def train_data(self, cfg):
        ds = self._load(cfg, "train")
        classes, channels, size = self.shape_of(ds, cfg)
        for key, value in (("classes", classes), ("in_channels", channels), ("image_size", size)):
            if getattr(cfg, key) not in (0, value):
                raise UserError(f"{cfg.data}: the data has {key}={value}, the config says {getattr(cfg, key)}")
            setattr(cfg, key, value)
        return ds

    def test_data(self, cfg):
        return self._load(cfg, "test")

    @staticmethod
    def shape_of(ds, cfg) -> tuple[int, int, int]:
        """(classes, channels, image size) of a set."""
        h, w = ds.size
        if h != w:
            raise UserError(f"{cfg.data}: images are {w}x{h}; the models take square images (set image_size)")
        return len(ds.class_names), ds.channels, h

    def build_model(self, cfg):
        if not (cfg.classes and cfg.in_channels and cfg.image_size):
            self.train_data(cfg)
        model = build_model(cfg, cfg.classes, cfg.in_channels, cfg.image_size)
        if cfg.compile and cfg.model in ("resnet18", "vit"):
            model.compile()
        return model

    def loss(self, model, batch, generator, cfg, shard=(0, None)):
        # Every rank gets the step's generator; its own stream, seeded by the offset of its shard,
        # gives its images their own augmentations and oscillator states.
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device)) + shard[0]
        g = torch.Generator(generator.device).manual_seed(seed)
        x = aug.augment(to_float(batch["images"]), g, aug.parse(cfg.augment), (cfg.crop_scale_min, 1.0), cfg.noise_eps)
        logits = model(x, g)
        loss = F.cross_entropy(logits.float(), batch["labels"], label_smoothing=cfg.label_smoothing)
        acc = (logits.argmax(1) == batch["labels"]).float().mean()
        return loss, {"accuracy": acc.detach()}

    def evaluate(self, model, cfg, device):
        ds = self.test_data(cfg)
        n = min(len(ds), cfg.eval_size) if cfg.eval_size else len(ds)
        # evenly spaced, so that a subset of a folder sorted by class still holds every class
        rows = torch.linspace(0, len(ds) - 1, n).round().long()
        correct = 0
        g = torch.Generator(device).manual_seed(cfg.seed)
        for s in range(0, n, 250):
            b = ds.batch(rows[s : s + 250])
            logits = model(to_float(b["images"]).to(device), g)
            correct += int((logits.argmax(1).cpu() == b["labels"]).sum())
        return {"accuracy": correct / max(n, 1), "eval_images": n}
