"""Cityscapes gtFine instance annotations -> COCO-format JSON.

Input layout (the official one)::

    ROOT/gtFine/SPLIT/CITY/*_gtFine_instanceIds.png
    ROOT/leftImg8bit/SPLIT/CITY/*_leftImg8bit.png

In ``*_instanceIds.png`` a pixel value >= 1000 is an instance, ``value // 1000`` its label id; a
value < 1000 is a label id alone, which for instance classes marks a crowd / group region (one
``iscrowd=1`` annotation per class and image, as the mmdetection and detectron2 converters do).
Label ids of the instance classes: person 24, rider 25, car 26, truck 27, bus 28, caravan 29,
trailer 30, train 31, motorcycle 32, bicycle 33 (caravan and trailer are not evaluated, so not
converted).

``classes``:

* ``thing8``: person, rider, car, truck, bus, train, motorcycle, bicycle (category ids 1..8 in
  this order; the classes of the official instance-level benchmark);
* ``street5``: car, pedestrian (= person), truck, bus, rider (ids 1..5; the classes and order of
  the synthetic ``shapes-street`` preset).

The JSON's ``file_name`` is relative to ``ROOT/leftImg8bit/SPLIT``, so the dataset spec is
``coco:OUT.json:ROOT/leftImg8bit/SPLIT``.  The official benchmark also ignores GT instances under
100 px; that is an evaluation rule, not applied here (``area`` is the mask area).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from harness.data.coco import DatasetError

LABEL_IDS = {"person": 24, "rider": 25, "car": 26, "truck": 27, "bus": 28, "train": 31,
             "motorcycle": 32, "bicycle": 33}
CLASS_SETS: dict[str, tuple[tuple[str, int], ...]] = {
    "thing8": tuple((n, LABEL_IDS[n]) for n in ("person", "rider", "car", "truck", "bus", "train",
                                                 "motorcycle", "bicycle")),
    "street5": (("car", 26), ("pedestrian", 24), ("truck", 27), ("bus", 28), ("rider", 25)),
}
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
IMAGE_SUFFIX = "_leftImg8bit.png"


def _annotations(ids: np.ndarray, cat_of_label: dict[int, int], image_id: int, first_ann_id: int
                 ) -> list[dict]:
    anns = []
    for value in np.unique(ids):
        value = int(value)
        label_id, iscrowd = (value // 1000, 0) if value >= 1000 else (value, 1)
        if label_id not in cat_of_label:
            continue
        m = np.asfortranarray((ids == value).astype(np.uint8))
        rle = mask_utils.encode(m)
        anns.append({
            "id": first_ann_id + len(anns), "image_id": image_id, "category_id": cat_of_label[label_id],
            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
            "area": int(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "iscrowd": iscrowd,
        })
    return anns


def convert_cityscapes(root: str | Path, split: str, out_json: str | Path,
                       classes: Literal["thing8", "street5"] = "thing8") -> Path:
    """Convert ``ROOT/gtFine/SPLIT`` instance PNGs to one COCO-format JSON (written atomically).

    Args:
        root: Cityscapes root (holding ``gtFine/`` and ``leftImg8bit/``).
        split: "train", "val" or "test" (any folder name under ``gtFine/``).
        out_json: output path.
        classes: "thing8" or "street5" (see the module docstring).

    Returns:
        ``out_json`` as a Path.

    Raises:
        ValueError: unknown ``classes``.
        DatasetError: no ``*_gtFine_instanceIds.png`` under ``ROOT/gtFine/SPLIT``, or an image
            ``*_leftImg8bit.png`` missing (the message names the file).
    """
    if classes not in CLASS_SETS:
        raise ValueError(f"unknown class set {classes!r}; valid: {', '.join(CLASS_SETS)}")
    root, out_json = Path(root), Path(out_json)
    gt_dir, img_dir = root / "gtFine" / split, root / "leftImg8bit" / split
    files = sorted(gt_dir.glob(f"*/*{INSTANCE_SUFFIX}"))
    if not files:
        raise DatasetError(f"no *{INSTANCE_SUFFIX} files under {gt_dir}")
    cat_of_label = {label_id: i + 1 for i, (_, label_id) in enumerate(CLASS_SETS[classes])}
    images, anns = [], []
    for image_id, gt_path in enumerate(files, start=1):
        stem = gt_path.name[: -len(INSTANCE_SUFFIX)]
        rel = f"{gt_path.parent.name}/{stem}{IMAGE_SUFFIX}"
        if not (img_dir / rel).is_file():
            raise DatasetError(f"image {img_dir / rel} for {gt_path} not found")
        with Image.open(gt_path) as pil:
            ids = np.asarray(pil, dtype=np.int32)  # (H, W), 16-bit PNG
        images.append({"id": image_id, "file_name": rel, "height": int(ids.shape[0]),
                       "width": int(ids.shape[1])})
        anns += _annotations(ids, cat_of_label, image_id, len(anns) + 1)
    data = {
        "info": {"description": f"Cityscapes gtFine {split} instances ({classes})", "split": split,
                 "classes": classes},
        "images": images, "annotations": anns,
        "categories": [{"id": i + 1, "name": n, "supercategory": "cityscapes"}
                       for i, (n, _) in enumerate(CLASS_SETS[classes])],
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_json.with_name(f".{out_json.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, out_json)
    return out_json
