"""Vision Transformers in plain torch that load the official DINO and DINOv2 checkpoints.

Parameter names follow the official code (``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.i.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}``, ``norm``),
so a checkpoint loads without renaming; DINOv2's ``mask_token`` (used only in its training) is
dropped. The position embedding is resized (bicubic) to the image it is given, as the official
models do (DINOv2's own code offsets its scale factor by 0.1, so at other sizes than the trained
one its embeddings differ slightly; at the trained size nothing is resized). ``forward`` returns
the tokens ``(B, 1 + registers + patches, D)`` after the final norm; ``patch_features`` the patch
tokens as a map ``(B, D, H/p, W/p)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from akorn.backbones.mobilenet import IMAGENET_MEAN, IMAGENET_STD, load_state_dict_checked
from akorn.errors import UserError

# name -> (patch, width, depth, heads, layer scale, register tokens, url)
_DINO = "https://dl.fbaipublicfiles.com/dino"
_DINOV2 = "https://dl.fbaipublicfiles.com/dinov2"
MODELS = {
    "dino_vits16": (16, 384, 12, 6, False, 0, f"{_DINO}/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth"),
    "dino_vits8": (8, 384, 12, 6, False, 0, f"{_DINO}/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth"),
    "dino_vitb16": (16, 768, 12, 12, False, 0, f"{_DINO}/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth"),
    "dino_vitb8": (8, 768, 12, 12, False, 0, f"{_DINO}/dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth"),
    "dinov2_vits14": (14, 384, 12, 6, True, 0, f"{_DINOV2}/dinov2_vits14/dinov2_vits14_pretrain.pth"),
    "dinov2_vitb14": (14, 768, 12, 12, True, 0, f"{_DINOV2}/dinov2_vitb14/dinov2_vitb14_pretrain.pth"),
    "dinov2_vitl14": (14, 1024, 24, 16, True, 0, f"{_DINOV2}/dinov2_vitl14/dinov2_vitl14_pretrain.pth"),
    "dinov2_vits14_reg": (14, 384, 12, 6, True, 4, f"{_DINOV2}/dinov2_vits14/dinov2_vits14_reg4_pretrain.pth"),
    "dinov2_vitb14_reg": (14, 768, 12, 12, True, 4, f"{_DINOV2}/dinov2_vitb14/dinov2_vitb14_reg4_pretrain.pth"),
}
# the grid the position embeddings were trained on: DINO 224 px, DINOv2 518 px
TRAINED_IMAGE = {"dino": 224, "dinov2": 518}


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, width: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, width, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.proj(o.transpose(1, 2).reshape(B, L, D))


class LayerScale(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((width,), 1e-5))

    def forward(self, x):
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, layer_scale: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width, 4 * width)
        self.ls1 = LayerScale(width) if layer_scale else nn.Identity()
        self.ls2 = LayerScale(width) if layer_scale else nn.Identity()

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """A ViT with a class token (and optional register tokens); takes images in [0, 1]."""

    def __init__(self, patch=16, width=384, depth=12, heads=6, layer_scale=False, registers=0, trained_image=224):
        super().__init__()
        self.patch, self.width, self.registers = patch, width, registers
        self.patch_embed = PatchEmbed(patch, width)
        grid = trained_image // patch
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, width))
        if registers:
            self.register_tokens = nn.Parameter(torch.zeros(1, registers, width))
        self.blocks = nn.ModuleList(Block(width, heads, layer_scale) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def prefix_tokens(self) -> int:
        return 1 + self.registers

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        side = int(math.isqrt(grid.shape[1]))
        if (h, w) != (side, side):
            grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
            grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)
        return torch.cat([cls, grid], 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W) in [0, 1], got shape {tuple(img.shape)}")
        H, W = img.shape[2:]
        if H < self.patch or W < self.patch or H % self.patch or W % self.patch:
            raise ValueError(f"image sides must be positive multiples of the patch size {self.patch}, got {H}x{W}")
        t = self.patch_embed((img - self.mean) / self.std)
        t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], 1) + self.position_embedding(
            H // self.patch, W // self.patch
        )
        if self.registers:
            t = torch.cat([t[:, :1], self.register_tokens.expand(len(t), -1, -1), t[:, 1:]], 1)
        for block in self.blocks:
            t = block(t)
        return self.norm(t)

    def patch_features(self, img: torch.Tensor) -> torch.Tensor:
        t = self.forward(img)[:, self.prefix_tokens :]
        return t.transpose(1, 2).reshape(len(t), self.width, img.shape[2] // self.patch, img.shape[3] // self.patch)


def build(name: str) -> VisionTransformer:
    if name not in MODELS:
        raise UserError(f"unknown ViT {name!r}; choose from {', '.join(MODELS)}")
    patch, width, depth, heads, ls, reg, _ = MODELS[name]
    return VisionTransformer(patch, width, depth, heads, ls, reg, TRAINED_IMAGE[name.split("_")[0]])


def official_state_dict(sd: dict) -> dict:
    """A checkpoint as the official code saves it -> our names (the same, less training-only keys)."""
    if "teacher" in sd or "student" in sd:  # a DINO training checkpoint: take the teacher's backbone
        sd = sd.get("teacher", sd.get("student"))
        sd = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in sd.items() if "head" not in k}
    return {k: v for k, v in sd.items() if k != "mask_token" and not k.startswith("head.")}


def load(name: str, path: str | Path | None = None) -> VisionTransformer:
    """DINO / DINOv2 ``name`` with weights from ``path``, or downloaded through torch.hub when None."""
    model = build(name)
    if path is None:
        try:
            sd = torch.hub.load_state_dict_from_url(MODELS[name][-1], map_location="cpu")
        except Exception as e:  # no network, or a failed download
            raise UserError(f"cannot download {name} weights ({type(e).__name__}: {e}); give the file") from None
        source = MODELS[name][-1]
    else:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{name} weights file not found: {path}")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(f"{path}: not a readable state dict ({type(e).__name__}: {e})") from None
        source = str(path)
    load_state_dict_checked(model, official_state_dict(sd), source)
    return model.eval()
