"""Dataset statistics from the ground-truth JSON (recorded with every run, printed by ``data stats``).

Definitions (all over the evaluation GT, ``dataset.coco``; crowd annotations only counted as crowd):

* size mix: fractions of non-crowd instances whose GT ``area`` field is small / medium / large by
  COCO's thresholds 32^2 and 96^2 px^2 times ``info["coco_area_scale"]`` (1 for real datasets;
  (image_size / 640)^2 for synthetic ones, see ``harness.data.synthetic``).  ``size_mix_coco``
  uses the unscaled thresholds, i.e. the buckets of COCOeval's AP_S / AP_M / AP_L.  An area exactly
  at a threshold (COCOeval counts it in both neighbours) is put in the upper bucket.
* mask shapes (``mask_shape_stats``, ``data stats --shapes``; decodes every mask, so not recorded with runs): the
  fractions of non-crowd GT whose visible mask is split in pieces (more than one 8-connected component: an object
  cut by a nearer one) or thin (GT box narrower than ``THIN_PX`` in x or y), over all GT and over the small ones:
  what a stride-4 mask representation cannot hold, whatever the method (``reports/validity.md``).
* overlap density: overlapped instance pairs per image, a pair = two non-crowd instances of the
  same image whose GT boxes have IoU > 0.5, whatever their classes (UniInst Table 2: COCO Person
  0.0204, OCHuman 0.6417).  ``overlap_density_same_class`` counts same-class pairs only.
"""
from __future__ import annotations

from collections import defaultdict

import torch
from tabulate import tabulate
from torchvision.ops import box_convert, box_iou

COCO_AREA_THRESHOLDS_PX2 = (32**2, 96**2)
OVERLAP_IOU_THR = 0.5
# a GT box narrower than THIN_PX (input px) holds no location of an FCOS-style assigner's finest level (P3, stride
# 8) when it falls between two rows or columns of locations: thin slivers of occluded or border-cut objects
THIN_PX = 8


def _size_mix(areas: list[float], t1: float, t2: float) -> dict[str, float]:
    n = max(len(areas), 1)
    small = sum(a < t1 for a in areas)
    medium = sum(t1 <= a < t2 for a in areas)
    return {"small": small / n, "medium": medium / n, "large": (len(areas) - small - medium) / n}


def overlap_pairs(boxes_xywh: list[list[float]], labels: list[int]) -> tuple[int, int]:
    """(pairs, same-class pairs) of boxes with IoU > 0.5 among one image's COCO ``bbox`` (x, y, w, h)."""
    if len(boxes_xywh) < 2:
        return 0, 0
    boxes = box_convert(torch.tensor(boxes_xywh, dtype=torch.float64), "xywh", "xyxy")
    over = torch.triu(box_iou(boxes, boxes) > OVERLAP_IOU_THR, diagonal=1)  # (N, N), pairs i < j
    lab = torch.tensor(labels)
    same = over & (lab[:, None] == lab[None, :])
    return int(over.sum()), int(same.sum())


def dataset_stats(ds) -> dict:
    """Statistics of an ``InstanceDataset``'s ground truth.

    Returns:
        dict with dataset, images, instances (crowd included), crowd, instances_per_image
        (non-crowd), per_class (name -> non-crowd count), area_scale, size_mix, size_mix_coco,
        overlap_density, overlap_density_same_class, skipped (reason -> count of annotations left
        out of training samples).
    """
    coco = ds.coco
    info = coco.dataset.get("info") or {}
    scale = float(info.get("coco_area_scale", 1.0)) if isinstance(info, dict) else 1.0
    name_of = dict(zip(ds.cat_ids, ds.class_names))
    per_class = {n: 0 for n in ds.class_names}
    per_image: dict[int, list[dict]] = defaultdict(list)
    areas, crowd = [], 0
    for a in coco.dataset.get("annotations", []):
        if a.get("iscrowd", 0):
            crowd += 1
            continue
        per_class[name_of[a["category_id"]]] += 1
        areas.append(float(a.get("area", 0.0)))
        per_image[a["image_id"]].append(a)
    pairs = same = 0
    for anns in per_image.values():
        with_box = [a for a in anns if len(a.get("bbox") or []) == 4]
        p, s = overlap_pairs([a["bbox"] for a in with_box], [a["category_id"] for a in with_box])
        pairs, same = pairs + p, same + s
    n_images = len(coco.dataset.get("images", []))
    t1, t2 = COCO_AREA_THRESHOLDS_PX2
    return {
        "dataset": ds.name,
        "images": n_images,
        "instances": len(areas) + crowd,
        "crowd": crowd,
        "instances_per_image": len(areas) / max(n_images, 1),
        "per_class": per_class,
        "area_scale": scale,
        "size_mix": _size_mix(areas, t1 * scale, t2 * scale),
        "size_mix_coco": _size_mix(areas, t1, t2),
        "overlap_density": pairs / max(n_images, 1),
        "overlap_density_same_class": same / max(n_images, 1),
        "skipped": {r: len(ids) for r, ids in ds.skipped.items()},
    }


def mask_shape_stats(ds, thin_px: float = THIN_PX) -> dict:
    """Split and thin GT masks of an ``InstanceDataset``'s evaluation ground truth (non-crowd).

    Returns:
        {"instances", "split_frac", "thin_frac", "small": {"instances", "split_frac", "thin_frac",
        "split_or_thin_frac"}}: fractions in [0, 1]; "split" = the decoded mask (``COCO.annToMask``, RLE or
        polygons) has more than one 8-connected component; "thin" = the ``bbox`` is narrower than ``thin_px``
        image px in x or y; "small" = the GT ``area`` under COCO's 32^2 px^2 times the file's ``coco_area_scale``.
    """
    import numpy as np
    from scipy import ndimage
    coco = ds.coco
    info = coco.dataset.get("info") or {}
    t1 = COCO_AREA_THRESHOLDS_PX2[0] * (float(info.get("coco_area_scale", 1.0)) if isinstance(info, dict) else 1.0)
    eight = np.ones((3, 3), dtype=bool)
    n = split = thin = n_small = small_split = small_thin = small_either = 0
    for a in coco.dataset.get("annotations", []):
        if a.get("iscrowd", 0) or not a.get("segmentation"):
            continue
        is_split = ndimage.label(coco.annToMask(a), structure=eight)[1] > 1
        bbox = a.get("bbox") or [0, 0, 0, 0]
        is_thin = min(bbox[2], bbox[3]) < thin_px
        n, split, thin = n + 1, split + is_split, thin + is_thin
        if float(a.get("area", 0.0)) < t1:
            n_small += 1
            small_split, small_thin = small_split + is_split, small_thin + is_thin
            small_either += is_split or is_thin
    return {"instances": n, "split_frac": split / max(n, 1), "thin_frac": thin / max(n, 1),
            "small": {"instances": n_small, "split_frac": small_split / max(n_small, 1),
                      "thin_frac": small_thin / max(n_small, 1), "split_or_thin_frac": small_either / max(n_small, 1)}}


def format_stats(stats: dict) -> str:
    """A plain-text summary table and a per-class table (tabulate)."""
    mix, mix_coco = stats["size_mix"], stats["size_mix_coco"]

    def fmt_mix(m: dict) -> str:
        return " / ".join(f"{m[k]:.1%}" for k in ("small", "medium", "large"))

    rows = [
        ("dataset", stats["dataset"]),
        ("images", stats["images"]),
        ("instances (crowd included)", stats["instances"]),
        ("crowd", stats["crowd"]),
        ("instances / image (non-crowd)", f"{stats['instances_per_image']:.2f}"),
        (f"size mix S/M/L (area scale {stats['area_scale']:.4g})", fmt_mix(mix)),
        ("size mix S/M/L (COCOeval thresholds)", fmt_mix(mix_coco)),
        ("overlap density (pairs IoU>0.5 / image)", f"{stats['overlap_density']:.4f}"),
        ("  same class", f"{stats['overlap_density_same_class']:.4f}"),
        ("skipped for training", ", ".join(f"{k}={v}" for k, v in stats["skipped"].items() if v) or "none"),
    ]
    if "mask_shapes" in stats:
        sh = stats["mask_shapes"]
        rows += [("GT split in pieces / thin (< 8 px)", f"{sh['split_frac']:.1%} / {sh['thin_frac']:.1%}"),
                 (f"  of the {sh['small']['instances']} small: split / thin / either",
                  f"{sh['small']['split_frac']:.1%} / {sh['small']['thin_frac']:.1%} / "
                  f"{sh['small']['split_or_thin_frac']:.1%}")]
    per_class = sorted(stats["per_class"].items(), key=lambda kv: -kv[1])
    return (tabulate(rows, tablefmt="simple", disable_numparse=True) + "\n\n"
            + tabulate(per_class, headers=["class", "instances"], tablefmt="simple"))
