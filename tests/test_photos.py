"""Photographs with masks: VOC, COCO and bundled readers; MBO_i and MBO_c."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from akorn.errors import UserError
from akorn.experiments.photos import IGNORE, Photo, best_overlap, bundled, mbo_scores, read_coco, read_voc


def test_best_overlap_by_hand_and_ignored_pixels():
    gt = np.array([[1, 1, 0, 0], [1, 1, 0, 2], [IGNORE, IGNORE, 2, 2]])
    pred = np.array([[3, 3, 3, 0], [3, 3, 0, 0], [9, 9, 0, 0]])
    # object 1: best segment 3 (IoU 4/5); object 2: segment 0, which also covers two background
    # pixels (IoU 3/5); the ignored pixels, where segment 9 lies, count for neither
    assert best_overlap(gt, pred) == pytest.approx((4 / 5 + 3 / 5) / 2)
    assert np.isnan(best_overlap(np.zeros((2, 2), int), np.zeros((2, 2), int)))


def test_mbo_c_merges_instances_of_a_class():
    inst = np.array([[1, 1, 2, 2], [0, 0, 0, 0]])
    cls = np.array([[7, 7, 7, 7], [0, 0, 0, 0]])
    photo = Photo(np.zeros((2, 4, 3), np.uint8), inst, cls)
    s = mbo_scores(photo, np.array([[5, 5, 5, 5], [0, 0, 0, 0]]))
    assert s == {"mbo_i": pytest.approx(0.5), "mbo_c": pytest.approx(1.0)}
    with pytest.raises(UserError, match="instance mask is 3x2, its image 4x2"):
        Photo(np.zeros((2, 4, 3), np.uint8), np.zeros((2, 3), int), cls, "p")


def test_voc_folder(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationObject", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000033\n")
    Image.fromarray(np.full((6, 8, 3), 100, np.uint8)).save(root / "JPEGImages/2007_000033.jpg")
    obj = np.zeros((6, 8), np.uint8)
    obj[1:3, 1:3], obj[4, :] = 1, 255
    Image.fromarray(obj, mode="L").convert("P").save(root / "SegmentationObject/2007_000033.png")
    Image.fromarray(np.where(obj == 1, 15, obj).astype(np.uint8)).convert("P").save(
        root / "SegmentationClass/2007_000033.png"
    )
    (photo,) = read_voc(tmp_path / "VOCdevkit")
    assert photo.instances[1, 1] == 1 and photo.instances[4, 0] == IGNORE and photo.classes[1, 1] == 15
    with pytest.raises(UserError, match="ImageSets/Segmentation"):
        read_voc(tmp_path / "VOCdevkit", "train")


def test_coco_annotations(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "images" / "a.jpg")
    ann = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 10}],
        "annotations": [
            {"image_id": 1, "category_id": 3, "iscrowd": 0, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]},
            {"image_id": 1, "category_id": 3, "iscrowd": 1, "segmentation": [[6, 6, 9, 6, 9, 9, 6, 9]]},
        ],
        "categories": [{"id": 3, "name": "car"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    (photo,) = read_coco(tmp_path / "ann.json", tmp_path / "images")
    assert photo.instances[3, 3] == 1 and photo.classes[3, 3] == 3 and photo.instances[7, 7] == IGNORE
    ann["images"].append({"id": 2, "file_name": "missing.jpg", "height": 4, "width": 4})
    (tmp_path / "ann2.json").write_text(json.dumps(ann))
    with pytest.raises(UserError, match="names 1 images not in .* \\(first: missing.jpg\\)"):
        read_coco(tmp_path / "ann2.json", tmp_path / "images")


def test_bundled_photographs():
    voc, arc = bundled()
    assert voc.image.shape == (375, 500, 3) and voc.instances.max() == 19
    assert set(np.unique(voc.classes)) == {0, 5, 9, 11, 15}  # bottle, chair, dining table, person
    assert arc.instances.max() == 8
    perfect = mbo_scores(voc, voc.instances)
    assert perfect["mbo_i"] == pytest.approx(1.0)
