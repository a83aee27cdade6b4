"""Panoptic evaluation of a method that implements ``predict_panoptic`` (CASNet) on a dataset with stuff.

Ground truth per image is built from the ``Sample`` (input frame): non-crowd thing instances become
thing segments (category = thing label), crowd instances become crowd segments, and every stuff
label ``T..T+S-1`` of ``Sample.sem_seg`` becomes one stuff segment; pixels with the ignore label
(255) and pixels covered by nothing are void.  Predictions are made at the input frame
(``orig_sizes = image_sizes``) so both maps share the frame.  Metrics come from
``harness.panoptic.pq_compute`` (hotcoco when installed), reported as percentages.
"""
from __future__ import annotations

import torch
from tqdm import tqdm

from harness.data.types import IGNORE_LABEL, Sample, collate
from harness.panoptic import pq_compute


def gt_panoptic(sample: Sample, num_things: int) -> tuple[torch.Tensor, list[dict]]:
    """(pan_ids Tensor[H, W] int64, segments) of one sample; see the module docstring.

    Raises:
        ValueError: the sample has no ``sem_seg`` (the dataset has no stuff annotations).
    """
    if sample.sem_seg is None:
        raise ValueError(f"image {sample.image_id}: panoptic evaluation needs stuff annotations (sem_seg)")
    h, w = sample.size
    pan = torch.zeros((h, w), dtype=torch.int64)
    segments: list[dict] = []
    next_id = 1
    sem = sample.sem_seg
    for lab in sorted(int(x) for x in torch.unique(sem) if num_things <= int(x) != IGNORE_LABEL):
        m = sem == lab
        pan[m] = next_id
        segments.append({"id": next_id, "category": lab, "isthing": False, "iscrowd": 0})
        next_id += 1
    order = torch.argsort(sample.masks.flatten(1).sum(1), descending=True)  # small instances drawn last, on top
    for k in order.tolist():
        m = sample.masks[k]
        if not bool(m.any()):
            continue
        pan[m] = next_id
        segments.append({"id": next_id, "category": int(sample.labels[k]), "isthing": True,
                         "iscrowd": int(bool(sample.iscrowd[k]))})
        next_id += 1
    present = set(torch.unique(pan).tolist())
    return pan, [s for s in segments if s["id"] in present]


@torch.no_grad()
def evaluate_panoptic(method, dataset, device, *, size_divisor: int = 32, progress: bool = True) -> dict:
    """PQ, SQ, RQ (all / things / stuff), per-class PQ and mIoU (percent) of ``method`` on ``dataset``."""
    num_things = len(dataset.class_names)
    names = list(dataset.class_names) + list(getattr(dataset, "stuff_names", []))
    categories = [{"id": i, "isthing": i < num_things, "name": n} for i, n in enumerate(names)]
    method.eval().to(device)
    pairs, ids = [], []
    for i in tqdm(range(len(dataset)), disable=not progress, desc="panoptic", dynamic_ncols=True):
        sample = dataset[i]
        batch = collate([sample], size_divisor)
        if getattr(method, "uses_gt_semantics", False):
            method.set_ground_truth_semantics(batch.sem_segs)
        (pred_pan, pred_segs), = method.predict_panoptic(batch.images.to(device), batch.image_sizes,
                                                         batch.image_sizes)
        gt_pan, gt_segs = gt_panoptic(sample, num_things)
        pairs.append((gt_pan, gt_segs, pred_pan.cpu(), pred_segs))
        ids.append(sample.image_id)
    res = pq_compute(pairs, categories, image_ids=ids)
    out = {k: 100.0 * res[k] for k in ("PQ", "SQ", "RQ", "PQ_things", "SQ_things", "RQ_things", "PQ_stuff",
                                        "SQ_stuff", "RQ_stuff", "mIoU")}
    out["per_class_PQ"] = {names[c]: (100.0 * v["PQ"] if v["PQ"] == v["PQ"] else None)
                           for c, v in res["per_class"].items()}
    out["pq_backend"] = res["backend"]
    return out
