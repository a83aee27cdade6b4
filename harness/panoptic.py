"""Panoptic quality (PQ, SQ, RQ; things / stuff / per class) and semantic mIoU.

Definitions (Kirillov et al., "Panoptic Segmentation", CVPR 2019, Eq. 1; the COCO panoptic
evaluator ``panopticapi/evaluation.py``):

* A predicted segment ``p`` and a ground-truth segment ``g`` of the same category match when
  ``IoU(p, g) > 0.5`` (strictly); such a match is unique, so no assignment step is needed.  The
  union leaves out the pixels of ``p`` that fall on GT void:
  ``IoU = |p & g| / (|p| + |g| - |p & g| - |p & void|)``.
* Per category: ``PQ = sum_TP IoU / (TP + FP/2 + FN/2)``, ``SQ = sum_TP IoU / TP``,
  ``RQ = TP / (TP + FP/2 + FN/2)``; ``PQ = SQ * RQ``.  The summaries are unweighted means over the
  categories with ``TP + FP + FN > 0`` (all / things / stuff); with no such category they are NaN
  (panopticapi divides by zero there).
* Void: GT pixels with segment id 0.  GT crowd segments (``iscrowd=1``) are never matched and
  never FN.  An unmatched prediction is not an FP when more than half of its pixels lie on GT
  void plus the GT crowd region of its own category.  As in panopticapi, that region is the
  *last-listed* crowd segment of the category in the image (``crowd_labels_dict`` is overwritten
  segment by segment); panoptic PNGs have at most one per category.  A GT segment listed in the
  segments but absent from the map is a false negative (panopticapi iterates the listed segments).
* mIoU: the semantic maps are read off the panoptic maps (pixel -> category of its segment);
  GT void pixels are ignored; predicted void pixels count against the GT class (a miss).  Mean
  over the categories present in the GT or the prediction of some image.

Backends: ``"hotcoco"`` (the maintained Rust implementation, PyPI ``hotcoco``, verified by its
authors against panopticapi; our adapter turns each segment into a COCO RLE annotation) and
``"builtin"`` (the same definition in numpy, used when hotcoco is not installed; the tests check
that both give the same numbers).  ``"auto"`` picks hotcoco when it imports.  The mIoU is always
computed here (a confusion matrix by ``np.bincount``).

Inputs are in any common frame per image (usually the original image frame); ids are int64.
All metrics are fractions in [0, 1], not percentages.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

Backend = Literal["auto", "hotcoco", "builtin"]
VOID_ID = 0
IOU_MATCH_THR = 0.5
_OFFSET = 1 << 32  # pair key = gt_id * _OFFSET + pred_id


@dataclass
class _ClassStats:
    """Accumulated per-category counts: summed IoU of the TPs, TP, FP, FN."""

    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0


@dataclass
class _Image:
    """One validated image: numpy id maps and ``id -> segment dict``."""

    gt: np.ndarray
    gt_segments: dict[int, dict]
    pred: np.ndarray
    pred_segments: dict[int, dict]
    name: str


def _to_numpy(x, name: str) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected an integer id map of shape [H, W], got {arr.dtype} {arr.shape}")
    return arr.astype(np.int64, copy=False)


def _segment_table(segments: Sequence[dict], cat_ids: set[int], name: str) -> dict[int, dict]:
    table: dict[int, dict] = {}
    for s in segments:
        if "id" not in s or "category" not in s:
            raise ValueError(f"{name}: every segment needs 'id' and 'category', got {s}")
        sid, cat = int(s["id"]), int(s["category"])
        if sid == VOID_ID:
            raise ValueError(f"{name}: segment id {VOID_ID} is reserved for void")
        if sid in table:
            raise ValueError(f"{name}: segment id {sid} listed twice")
        if cat not in cat_ids:
            raise ValueError(f"{name}: segment {sid} has unknown category {cat}; known: {sorted(cat_ids)}")
        table[sid] = {"id": sid, "category": cat, "iscrowd": int(bool(s.get("iscrowd", 0)))}
    return table


def _validate(pairs: Iterable, cat_ids: set[int], image_ids: Sequence | None) -> list[_Image]:
    """Convert the inputs to numpy and check them.

    Raises:
        ValueError: shape mismatch, a segment id in a map that no segment lists (other than void
            in the GT), a predicted segment listed but absent from the map, an unknown category.
            The message names the image (``image_ids[i]`` when given, else the pair index).
    """
    out = []
    for i, pair in enumerate(pairs):
        name = f"image {image_ids[i] if image_ids is not None else f'#{i}'}"
        if len(pair) != 4:
            raise ValueError(f"{name}: expected (gt_pan, gt_segments, pred_pan, pred_segments)")
        gt = _to_numpy(pair[0], f"{name} gt_pan")
        pred = _to_numpy(pair[2], f"{name} pred_pan")
        if gt.shape != pred.shape:
            raise ValueError(f"{name}: gt_pan {gt.shape} and pred_pan {pred.shape} differ in size")
        gseg = _segment_table(pair[1], cat_ids, f"{name} gt")
        pseg = _segment_table(pair[3], cat_ids, f"{name} prediction")
        for kind, pan, seg in (("gt", gt, gseg), ("prediction", pred, pseg)):
            present = set(np.unique(pan).tolist()) - {VOID_ID}
            unlisted = present - set(seg)
            if unlisted:
                raise ValueError(f"{name}: {kind} map has segment ids {sorted(unlisted)} not in its segments")
            if kind == "prediction" and set(seg) - present:
                raise ValueError(f"{name}: predicted segments {sorted(set(seg) - present)} are listed "
                                 "but cover no pixel")
        out.append(_Image(gt, gseg, pred, pseg, name))
    return out


# ---------------------------------------------------------------------------------------------
# builtin backend
def _match_image(img: _Image, stats: dict[int, _ClassStats]) -> None:
    """Accumulate TP / FP / FN / IoU of one image into ``stats`` (panopticapi's single-core loop)."""
    gt_ids, gt_area = np.unique(img.gt, return_counts=True)
    pr_ids, pr_area = np.unique(img.pred, return_counts=True)
    gt_area_of = dict(zip(gt_ids.tolist(), gt_area.tolist()))
    pr_area_of = dict(zip(pr_ids.tolist(), pr_area.tolist()))
    keys, inter = np.unique(img.gt * _OFFSET + img.pred, return_counts=True)
    overlap = {(int(k // _OFFSET), int(k % _OFFSET)): int(n) for k, n in zip(keys, inter)}

    matched_gt, matched_pred = set(), set()
    for (g, p), n in overlap.items():
        if g == VOID_ID or p == VOID_ID:
            continue
        gs, ps = img.gt_segments[g], img.pred_segments[p]
        if gs["iscrowd"] or gs["category"] != ps["category"]:
            continue
        union = pr_area_of[p] + gt_area_of[g] - n - overlap.get((VOID_ID, p), 0)
        iou = n / union
        if iou > IOU_MATCH_THR:
            st = stats[gs["category"]]
            st.tp += 1
            st.iou += iou
            matched_gt.add(g)
            matched_pred.add(p)

    crowd_id: dict[int, int] = {}  # panopticapi: the last-listed crowd segment of each category
    for g, gs in img.gt_segments.items():
        if gs["iscrowd"]:
            crowd_id[gs["category"]] = g
        elif g not in matched_gt:
            stats[gs["category"]].fn += 1
    for p, ps in img.pred_segments.items():
        if p in matched_pred:
            continue
        ignored = overlap.get((VOID_ID, p), 0)
        if ps["category"] in crowd_id:
            ignored += overlap.get((crowd_id[ps["category"]], p), 0)
        if ignored / pr_area_of[p] > 0.5:
            continue
        stats[ps["category"]].fp += 1


def _builtin_stats(images: list[_Image], cat_ids: Sequence[int]) -> dict[int, _ClassStats]:
    stats = {c: _ClassStats() for c in cat_ids}
    for img in images:
        _match_image(img, stats)
    return stats


# ---------------------------------------------------------------------------------------------
# hotcoco backend
def _hotcoco_available() -> bool:
    try:
        import hotcoco.panoptic  # noqa: F401
    except ImportError:
        return False
    return True


def _rle_annotations(pan: np.ndarray, segments: dict[int, dict], image_id: int, start_id: int,
                     with_score: bool) -> list[dict]:
    from pycocotools import mask as mask_utils

    anns = []
    for sid, seg in segments.items():
        m = pan == sid
        if not m.any() and with_score:  # validated away for predictions; kept for GT (below)
            continue
        # a GT segment listed but absent from the map stays, as an empty mask: panopticapi counts it as a
        # false negative (and, when crowd, as its category's crowd region, empty) -- hotcoco does the same
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        bbox = mask_utils.toBbox(rle).tolist()
        rle["counts"] = rle["counts"].decode("ascii")
        ann = {"id": start_id + len(anns), "image_id": image_id, "category_id": seg["category"],
               "segmentation": rle, "area": int(m.sum()), "bbox": bbox, "iscrowd": seg["iscrowd"]}
        if with_score:
            ann["score"] = 1.0
        anns.append(ann)
    return anns


def _hotcoco_stats(images: list[_Image], categories: Sequence[dict]) -> dict[int, _ClassStats]:
    """Per-category counts from ``hotcoco.panoptic.PanopticEval`` on RLE-annotation datasets."""
    from hotcoco import panoptic as hc_panoptic

    cats = [{"id": int(c["id"]), "name": str(c.get("name", c["id"])), "isthing": int(bool(c["isthing"]))}
            for c in categories]
    imgs, gt_anns, pred_anns = [], [], []
    for i, img in enumerate(images):
        h, w = img.gt.shape
        imgs.append({"id": i + 1, "height": int(h), "width": int(w), "file_name": img.name})
        gt_anns += _rle_annotations(img.gt, img.gt_segments, i + 1, len(gt_anns) + 1, with_score=False)
        pred_anns += _rle_annotations(img.pred, img.pred_segments, i + 1, len(pred_anns) + 1,
                                      with_score=True)
    gt = {"images": imgs, "annotations": gt_anns, "categories": cats}
    pred = {"images": imgs, "annotations": pred_anns, "categories": cats}
    ev = hc_panoptic.PanopticEval(gt, pred)
    ev.evaluate()
    per_class = ev.results()["per_class"]
    stats = {}
    for c in cats:
        r = per_class.get(c["id"], {})
        tp = int(r.get("tp", 0))
        # hotcoco reports the class SQ (= summed IoU / TP); recover the sum for our formulas.
        iou_sum = float(r["sq"]) * tp if tp else 0.0
        stats[c["id"]] = _ClassStats(iou=iou_sum, tp=tp, fp=int(r.get("fp", 0)), fn=int(r.get("fn", 0)))
    return stats


# ---------------------------------------------------------------------------------------------
# summaries
def _class_metrics(st: _ClassStats) -> dict[str, float]:
    denom = st.tp + 0.5 * st.fp + 0.5 * st.fn
    if denom == 0:
        return {"PQ": math.nan, "SQ": math.nan, "RQ": math.nan, "TP": 0, "FP": 0, "FN": 0}
    sq = st.iou / st.tp if st.tp else 0.0
    rq = st.tp / denom
    return {"PQ": st.iou / denom, "SQ": sq, "RQ": rq, "TP": st.tp, "FP": st.fp, "FN": st.fn}


def _average(per_class: dict[int, dict], ids: list[int]) -> tuple[float, float, float, int]:
    rows = [per_class[c] for c in ids if not math.isnan(per_class[c]["PQ"])]
    if not rows:
        return math.nan, math.nan, math.nan, 0
    n = len(rows)
    return (sum(r["PQ"] for r in rows) / n, sum(r["SQ"] for r in rows) / n, sum(r["RQ"] for r in rows) / n, n)


def _semantic_confusion(images: list[_Image], cat_index: dict[int, int]) -> np.ndarray:
    """Confusion matrix [C, C + 1] (GT category x predicted category or void) over non-void GT."""
    num = len(cat_index)
    conf = np.zeros((num, num + 1), dtype=np.int64)
    for img in images:
        gt_sem = np.full(img.gt.shape, -1, dtype=np.int64)
        for sid, s in img.gt_segments.items():
            gt_sem[img.gt == sid] = cat_index[s["category"]]
        pr_sem = np.full(img.pred.shape, num, dtype=np.int64)  # void -> column ``num``
        for sid, s in img.pred_segments.items():
            pr_sem[img.pred == sid] = cat_index[s["category"]]
        valid = gt_sem >= 0
        conf += np.bincount(gt_sem[valid] * (num + 1) + pr_sem[valid],
                            minlength=num * (num + 1)).reshape(num, num + 1)
    return conf


def _miou(conf: np.ndarray, cat_index: dict[int, int]) -> tuple[float, dict[int, float]]:
    """Mean IoU over categories with a non-empty union; per-category IoU (NaN when empty)."""
    num = conf.shape[0]
    tp = np.diag(conf[:, :num]).astype(np.float64)
    gt_total = conf.sum(axis=1)  # incl. predicted void
    pred_total = conf[:, :num].sum(axis=0)  # predictions on non-void GT only
    union = gt_total + pred_total - tp
    per_class = {}
    for cat, k in cat_index.items():
        per_class[cat] = float(tp[k] / union[k]) if union[k] > 0 else math.nan
    vals = [v for v in per_class.values() if not math.isnan(v)]
    return (float(np.mean(vals)) if vals else math.nan), per_class


def pq_compute(pairs: Iterable[tuple], categories: Sequence[dict], *, image_ids: Sequence | None = None,
               backend: Backend = "auto") -> dict[str, Any]:
    """Panoptic quality and semantic mIoU over a set of images.

    Args:
        pairs: per image ``(gt_pan, gt_segments, pred_pan, pred_segments)``:
            ``gt_pan`` / ``pred_pan`` (Tensor or ndarray [H, W], integer segment ids, 0 = void),
            both in the same frame; ``gt_segments`` / ``pred_segments`` lists of dicts with
            ``id`` (int > 0, the value in the map), ``category`` (a ``categories`` id) and, for
            GT, optional ``iscrowd`` (0/1).  Other keys (``isthing``, ``score``) are ignored.
        categories: dicts with ``id`` (int), ``isthing`` (bool / 0 / 1) and optional ``name``.
        image_ids: optional ids used in error messages, aligned with ``pairs``.
        backend: "auto" (hotcoco when installed, else builtin), "hotcoco" or "builtin".

    Returns:
        dict with ``PQ``, ``SQ``, ``RQ`` (all categories), ``PQ_things``, ``SQ_things``,
        ``RQ_things``, ``PQ_stuff``, ``SQ_stuff``, ``RQ_stuff`` (fractions; NaN when no category
        of the group has a GT or predicted segment), ``n``, ``n_things``, ``n_stuff`` (categories
        averaged), ``per_class`` (category id -> dict PQ, SQ, RQ, TP, FP, FN; NaN metrics for
        categories absent from GT and prediction), ``mIoU``, ``per_class_iou``, ``n_images``
        and ``backend`` (the one used).

    Raises:
        ValueError: malformed input (see ``_validate``) or an unknown backend.
        ImportError: ``backend="hotcoco"`` without hotcoco installed.
    """
    cats = list(categories)
    cat_ids = [int(c["id"]) for c in cats]
    if len(set(cat_ids)) != len(cat_ids):
        raise ValueError(f"duplicate category ids in {cat_ids}")
    if backend not in ("auto", "hotcoco", "builtin"):
        raise ValueError(f"unknown PQ backend {backend!r}; valid: auto, hotcoco, builtin")
    if backend == "auto":
        backend = "hotcoco" if _hotcoco_available() else "builtin"
    images = _validate(pairs, set(cat_ids), image_ids)

    if backend == "hotcoco":
        if not _hotcoco_available():
            raise ImportError("backend='hotcoco' needs the hotcoco package (pip install hotcoco)")
        stats = _hotcoco_stats(images, cats) if images else {c: _ClassStats() for c in cat_ids}
    else:
        stats = _builtin_stats(images, cat_ids)

    per_class = {c: _class_metrics(stats[c]) for c in cat_ids}
    things = [int(c["id"]) for c in cats if bool(c["isthing"])]
    stuff = [int(c["id"]) for c in cats if not bool(c["isthing"])]
    out: dict[str, Any] = {}
    for suffix, ids in (("", cat_ids), ("_things", things), ("_stuff", stuff)):
        pq, sq, rq, n = _average(per_class, ids)
        out.update({f"PQ{suffix}": pq, f"SQ{suffix}": sq, f"RQ{suffix}": rq, f"n{suffix}": n})
    cat_index = {c: k for k, c in enumerate(cat_ids)}
    miou, per_class_iou = _miou(_semantic_confusion(images, cat_index), cat_index)
    out.update({"per_class": per_class, "mIoU": miou, "per_class_iou": per_class_iou,
                "n_images": len(images), "backend": backend})
    return out
