"""Instance-id PNG datasets ("one instance-id PNG per image") -> COCO-format JSON, and Penn-Fudan.

A *mask dataset* is an image folder and a mask folder: for image ``IMGDIR/<stem>.<ext>`` the mask is
``MASKDIR/<stem>.png`` or ``MASKDIR/<stem>_mask.png`` (Penn-Fudan's naming), a single-channel PNG in which
0 is background and each value k > 0 one instance of the dataset's only class.  ``convert_masks`` writes
COCO instances JSON: compressed RLE masks, ``area`` = mask pixels, tight ``bbox`` (xywh from the RLE),
``iscrowd`` 0, one category (``person`` id 1 by default).  Image ids are 1.. in sorted file-name order.

Dataset specs (``harness.data.parse_spec``):

* ``pennfudan:ROOT``: the Penn-Fudan Pedestrian database in its original layout (``ROOT/PNGImages/*.png``,
  ``ROOT/PedMasks/*_mask.png``; ``ROOT/Annotation/`` is not needed: the masks carry everything);
* ``masks:IMGDIR:MASKDIR[:CLASSNAME]``: any such dataset (class name default ``object``).

The train / val split is a pure function of each file's stem, not of the file order or count:
``val`` iff ``crc32(stem) % SPLIT_MODULUS == 0`` (1 in 5; Penn-Fudan: 115 train / 35 val).  The rule is
written into the JSON ``info`` (``split_rule``) and every record (``data.stats.split_rule``).  The converted
JSON is cached under ``DataConfig.cache_dir`` keyed by (folders, split, converter version) and rebuilt
when a mask file is newer than it.

Bad input:

=====================================  ==========================  =======================================
Problem                                Outcome                     Message names
=====================================  ==========================  =======================================
image folder / mask folder missing     ``DatasetError``            the folder
no images                              ``DatasetError``            the folder
image without a mask file              ``DatasetError``            the image and the mask paths tried
mask size differs from its image       ``DatasetError``            both files and both sizes
mask not single-channel (RGB ...)      ``DatasetError``            the mask file
mask without an image (stray file)     ignored (images drive)      -
instance id listed in no pixel         impossible in a PNG: ids    -
                                       are read from the pixels
instance id with no pixels left        counted skip                ``info.skipped.empty_instance``
(``ignore_ids`` / a 0-pixel id)
=====================================  ==========================  =======================================

An instance id "with no pixels" arises when a dataset declares ids (e.g. Penn-Fudan's ``Annotation/``
lists objects) that the mask does not contain; ``convert_masks(..., expected_ids=...)`` counts those.
For Penn-Fudan the expected ids are ``1..N`` with N from the annotation file's "Objects with ground
truth : N" line when the file exists.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from harness.data.coco import DatasetError

CONVERTER_VERSION = 1
SPLIT_MODULUS = 5
SPLIT_RULE = f"val iff crc32(file stem) % {SPLIT_MODULUS} == 0, else train"
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
Split = Literal["train", "val", "all"]


def split_of(stem: str) -> str:
    """'val' or 'train' for a file stem (``SPLIT_RULE``)."""
    return "val" if zlib.crc32(stem.encode("utf-8")) % SPLIT_MODULUS == 0 else "train"


def find_mask(mask_dir: Path, stem: str) -> Path:
    """The mask file of image ``stem``: ``<stem>.png`` or ``<stem>_mask.png`` in ``mask_dir``.

    Raises:
        DatasetError: neither exists (names both paths).
    """
    tried = [mask_dir / f"{stem}.png", mask_dir / f"{stem}_mask.png"]
    for p in tried:
        if p.is_file():
            return p
    raise DatasetError(f"image {stem}: no mask file ({tried[0]} or {tried[1]} not found)")


def _pennfudan_expected(root: Path, stem: str) -> int | None:
    ann = root / "Annotation" / f"{stem}.txt"
    if not ann.is_file():
        return None
    m = re.search(r"Objects with ground truth\s*:\s*(\d+)", ann.read_text(errors="replace"))
    return int(m.group(1)) if m else None


def convert_masks(img_dir: str | Path, mask_dir: str | Path, out_json: str | Path, *, split: Split = "all",
                  class_name: str = "object", expected_ids=None, description: str = "") -> dict:
    """Convert an instance-id PNG dataset to COCO instances JSON (written atomically).

    Args:
        img_dir: folder of images (``IMAGE_EXTS``); ``file_name`` in the JSON is relative to it.
        mask_dir: folder of instance-id PNGs (see the module docstring for names and values).
        out_json: output path.
        split: "train", "val" (``SPLIT_RULE``) or "all".
        class_name: name of the single category (id 1).
        expected_ids: optional ``callable(stem) -> int | None``: the number of instances the dataset
            declares for an image; declared ids ``1..N`` absent from the mask are counted skips.
        description: ``info.description``.

    Returns:
        the JSON's ``info`` (split, rule, counts, skipped).

    Raises:
        DatasetError: see the module docstring's table.
    """
    img_dir, mask_dir, out_json = Path(img_dir), Path(mask_dir), Path(out_json)
    if split not in ("train", "val", "all"):
        raise ValueError(f"split must be train, val or all, got {split!r}")
    for d, what in ((img_dir, "image"), (mask_dir, "mask")):
        if not d.is_dir():
            raise DatasetError(f"{what} folder {d} not found")
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DatasetError(f"no images ({', '.join(IMAGE_EXTS)}) in {img_dir}")
    images, anns, empty = [], [], []
    for image_id, path in enumerate(files, start=1):
        stem = path.stem
        if split != "all" and split_of(stem) != split:
            continue
        mask_path = find_mask(mask_dir, stem)
        with Image.open(path) as pil:
            width, height = pil.size
        with Image.open(mask_path) as pil:
            if pil.mode not in ("L", "P", "I", "I;16", "1"):
                raise DatasetError(f"mask {mask_path}: expected a single-channel instance-id PNG, got mode {pil.mode}")
            ids = np.asarray(pil, dtype=np.int64)  # (H, W); P mode: palette indices are the ids
        if ids.shape != (height, width):
            raise DatasetError(f"mask {mask_path} is {ids.shape[1]}x{ids.shape[0]} (WxH) but image {path} is "
                               f"{width}x{height}")
        images.append({"id": image_id, "file_name": path.name, "height": height, "width": width})
        present = [int(v) for v in np.unique(ids) if v > 0]
        n_declared = expected_ids(stem) if expected_ids is not None else None
        if n_declared:
            empty += [f"{stem}#{k}" for k in range(1, n_declared + 1) if k not in present]
        for value in present:
            m = np.asfortranarray((ids == value).astype(np.uint8))
            rle = mask_utils.encode(m)
            area = int(mask_utils.area(rle))
            if area == 0:  # cannot happen for ids read from the pixels; kept for safety
                empty.append(f"{stem}#{value}")
                continue
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1,
                         "segmentation": {"size": [int(v) for v in rle["size"]],
                                          "counts": rle["counts"].decode("ascii")},
                         "area": area, "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0,
                         "instance_id": value})
    info = {"description": description or f"instance-id PNG masks {img_dir} / {mask_dir}",
            "split": split, "split_rule": SPLIT_RULE, "converter_version": CONVERTER_VERSION,
            "n_images": len(images), "n_instances": len(anns),
            "skipped": {"empty_instance": len(empty)}, "skipped_ids": empty[:20]}
    data = {"info": info, "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": class_name, "supercategory": class_name}]}
    out_json.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_json.with_name(f".{out_json.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, out_json)
    return info


def pennfudan_dirs(root: str | Path) -> tuple[Path, Path]:
    """(``ROOT/PNGImages``, ``ROOT/PedMasks``). Raises DatasetError when ROOT is not a Penn-Fudan folder."""
    root = Path(root)
    img_dir, mask_dir = root / "PNGImages", root / "PedMasks"
    if not img_dir.is_dir() or not mask_dir.is_dir():
        raise DatasetError(f"{root} is not a Penn-Fudan root (needs PNGImages/ and PedMasks/)")
    return img_dir, mask_dir


def convert_pennfudan(root: str | Path, out_json: str | Path, split: Split = "all") -> dict:
    """Penn-Fudan -> COCO JSON (category ``person`` id 1). See ``convert_masks``."""
    img_dir, mask_dir = pennfudan_dirs(root)
    return convert_masks(img_dir, mask_dir, out_json, split=split, class_name="person",
                         expected_ids=lambda stem: _pennfudan_expected(Path(root), stem),
                         description="Penn-Fudan Pedestrian database (instance masks)")


def cached_json(img_dir: Path, mask_dir: Path, split: str, class_name: str, cache_dir: str | Path,
                pennfudan_root: Path | None = None) -> Path:
    """The converted JSON of a mask dataset split in ``cache_dir`` (converted when missing or older than a mask)."""
    key = json.dumps([str(Path(img_dir).resolve()), str(Path(mask_dir).resolve()), split, class_name,
                      CONVERTER_VERSION, pennfudan_root is not None])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    out = Path(cache_dir) / "masks_png" / f"{'pennfudan' if pennfudan_root else 'masks'}-{split}-{digest}.json"
    if out.is_file():
        newest = max((p.stat().st_mtime for p in Path(mask_dir).iterdir()), default=0.0)
        if out.stat().st_mtime >= newest:
            return out
    if pennfudan_root is not None:
        convert_pennfudan(pennfudan_root, out, split)  # type: ignore[arg-type]
    else:
        convert_masks(img_dir, mask_dir, out, split=split, class_name=class_name)  # type: ignore[arg-type]
    return out


def build_mask_dataset(img_dir: Path, mask_dir: Path, split: str, class_name: str, data_cfg, *, name: str,
                       transform=None, pennfudan_root: Path | None = None):
    """An ``InstanceDataset`` on the cached COCO JSON of a mask dataset split; its ``info()`` adds the split
    and ``SPLIT_RULE`` (so every run record names them)."""
    from harness.data.coco import InstanceDataset

    ann = cached_json(img_dir, mask_dir, split, class_name, data_cfg.cache_dir, pennfudan_root)
    ds = InstanceDataset(ann, img_dir, name=name, transform=transform)
    base_info = ds.info

    def info() -> dict:
        out = base_info()
        meta = ds.coco.dataset.get("info", {}) if ds._coco is not None else json.loads(Path(ann).read_text())["info"]
        out.update({"split": split, "split_rule": SPLIT_RULE,
                    "empty_instance_skipped": meta.get("skipped", {}).get("empty_instance", 0)})
        return out

    ds.info = info  # type: ignore[method-assign]
    return ds
