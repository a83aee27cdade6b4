"""Post-processing (duplicate removal) variants shared by every method: pure functions.

All functions take detections of ONE image and work on CPU and CUDA (every tensor stays on the
input's device; only ``mask_nms`` moves an N x N boolean matrix to the CPU for its greedy loop).

* ``matrix_nms``  SOLOv2's Matrix NMS (Wang et al., SOLOv2, NeurIPS 2020, Sec. 4.1, Eq. 4-5):
  parallel soft decay of the scores, same class only, with the compensation term.
* ``mask_nms``    greedy class-wise NMS on mask IoU (AdelaiDet's SOLO "mask NMS").
* ``box_nms``     class-wise box NMS (``torchvision.ops.batched_nms``).
* ``fast_nms``    YOLACT's Fast NMS (Bolya et al., ICCV 2019, Sec. 3.5): keep a detection when its
  largest IoU with any higher-scoring detection of its class is <= ``iou_thr``; boxes or masks.
* ``apply_postprocess``  dispatches by name (the ``method.postprocess`` config field).

Conventions: ``masks (Tensor[N, H, W], bool or float in {0, 1})``; ``labels (Tensor[N], int64)``;
``scores (Tensor[N], float)``; ``boxes (Tensor[N, 4], float, x1y1x2y2 in pixels)``.  Kept indices
are ``Tensor[K], int64`` indices into the inputs, ordered by descending (updated) score.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou, masks_to_boxes

POSTPROCESS_KINDS = ("matrix", "matrix_linear", "mask", "box", "fast", "none")

_EPS = 1e-6


def mask_iou_matrix(masks_a: Tensor, masks_b: Tensor | None = None) -> Tensor:
    """Pairwise mask IoU.

    Args:
        masks_a: Tensor[N, H, W], bool or float (binary masks; soft values are used as given).
        masks_b: Tensor[M, H, W] or None (= ``masks_a``).
    Returns:
        Tensor[N, M], float32 IoU in [0, 1]; 0 where both masks are empty.
    """
    a = masks_a.flatten(1).float()  # (N, H*W)
    b = a if masks_b is None else masks_b.flatten(1).float()  # (M, H*W)
    inter = a @ b.T  # (N, M)
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return inter / union.clamp_min(_EPS)


def _check(masks_or_boxes: Tensor, labels: Tensor, scores: Tensor) -> None:
    n = scores.shape[0]
    if masks_or_boxes.shape[0] != n or labels.shape[0] != n:
        raise ValueError(f"post-processing: masks/boxes {tuple(masks_or_boxes.shape)}, labels "
                         f"{tuple(labels.shape)} and scores {tuple(scores.shape)} disagree on N")


def matrix_nms(masks: Tensor, labels: Tensor, scores: Tensor, *,
               kernel: Literal["gaussian", "linear"] = "gaussian", sigma: float = 2.0,
               mask_area: Tensor | None = None) -> Tensor:
    """Matrix NMS (SOLOv2 Eq. 4-5): decay every score by its overlap with higher-scoring masks.

    For ``i < j`` (scores sorted descending) of the same class, ``IoU_ij = inter / (a_i + a_j - inter)``
    and the compensation ``comp_i = max_{k < i, same class} IoU_ki``.  Then
    gaussian: ``decay_j = min_i exp(-sigma * IoU_ij^2) / exp(-sigma * comp_i^2)`` (sigma multiplies);
    linear:   ``decay_j = min_i (1 - IoU_ij) / (1 - comp_i)``;
    new score ``s_j * decay_j``.  ``decay_j <= 1`` always (the top mask has ``comp = 0``).

    Args:
        masks: Tensor[N, H, W], bool or binary float, sorted by descending score.
        labels: Tensor[N], int64 class indices.
        scores: Tensor[N], float, sorted descending.
        kernel: "gaussian" or "linear".
        sigma: gaussian kernel width (ignored by "linear").
        mask_area: Tensor[N], the masks' areas in pixels if already known (else computed).
    Returns:
        Tensor[N], float: the decayed scores, in the input order.
    Raises:
        ValueError: unknown ``kernel`` or inconsistent N.
    """
    _check(masks, labels, scores)
    if kernel not in ("gaussian", "linear"):
        raise ValueError(f"matrix_nms: unknown kernel {kernel!r}; valid: gaussian, linear")
    n = scores.shape[0]
    if n == 0:
        return scores.clone()
    area = None if mask_area is None else mask_area.float()
    if masks.device.type != "cpu":
        decay = _matrix_decay(masks.flatten(1).float(), area, labels, kernel, sigma)
        return scores * decay
    # CPU: only same-class pairs decay each other, so the IoU product is taken per class (sum of n_c^2 instead of
    # N^2 multiply-adds; the product is most of the cost).  The masks are grouped by class once (one gather, one
    # conversion) and each class is a contiguous slice, so the work splits into few large operations (on a busy
    # machine every parallel region waits for its slowest thread).  A detection alone in its class keeps decay 1,
    # as in the dense form, where its column's smallest ratio is exp(0) = 1 from the top-scoring mask (comp = 0).
    flat = masks.flatten(1)  # (N, H*W)
    sorted_labels, perm = labels.sort(stable=True)  # stable: each class keeps the descending-score order
    counts = torch.unique_consecutive(sorted_labels, return_counts=True)[1].tolist()
    if len(counts) == 1:
        return scores * _matrix_decay(flat.float(), area, None, kernel, sigma)
    grouped = flat[perm].float()  # (N, H*W), class by class
    grouped_area = grouped.sum(1) if area is None else area[perm]
    parts, start = [], 0
    for c in counts:
        if c == 1:
            parts.append(torch.ones(1, dtype=torch.float32))
        else:
            parts.append(_matrix_decay(grouped[start:start + c], grouped_area[start:start + c], None, kernel, sigma))
        start += c
    decay = torch.empty(n, dtype=torch.float32)
    decay[perm] = torch.cat(parts)
    return scores * decay


def _matrix_decay(flat: Tensor, area: Tensor | None, labels: Tensor | None, kernel: str, sigma: float) -> Tensor:
    """The decay factors of Matrix NMS (``matrix_nms``) for masks ``flat`` (Tensor[N, H*W], float, binary, by
    descending score); ``labels`` None: all of one class.  Returns Tensor[N], float."""
    n = flat.shape[0]
    area = flat.sum(1) if area is None else area
    inter = flat @ flat.T  # (N, N); exact: sums of 0/1 products below 2^24
    union = area[:, None] + area[None, :] - inter
    iou = inter / union.clamp_min(_EPS)
    if labels is not None:
        iou = iou * (labels[:, None] == labels[None, :])
    iou = iou.triu(diagonal=1)  # IoU_ij for i < j only
    comp = iou.max(dim=0).values  # (N,) comp_i = max_k IoU_ki
    comp_rows = comp[:, None].expand(n, n)  # row i holds comp_i
    if kernel == "gaussian":
        ratio = torch.exp(-sigma * (iou**2 - comp_rows**2))
    else:
        ratio = (1.0 - iou) / (1.0 - comp_rows).clamp_min(_EPS)
    return ratio.min(dim=0).values  # (N,) min over i


def mask_nms(masks: Tensor, labels: Tensor, scores: Tensor, iou_thr: float = 0.5) -> Tensor:
    """Greedy class-wise NMS on mask IoU.

    Visits detections by descending score; a detection is suppressed when its mask IoU with an
    already kept detection of the same class is > ``iou_thr``.

    Args:
        masks: Tensor[N, H, W], bool or binary float.
        labels: Tensor[N], int64.  scores: Tensor[N], float (any order).
        iou_thr: suppression threshold.
    Returns:
        Tensor[K], int64: kept indices, by descending score.
    """
    _check(masks, labels, scores)
    if scores.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=scores.device)
    order = scores.argsort(descending=True)
    iou = mask_iou_matrix(masks[order])
    over = ((iou > iou_thr) & (labels[order][:, None] == labels[order][None, :])).cpu()  # (N, N)
    n = int(order.numel())
    suppressed = torch.zeros(n, dtype=torch.bool)
    keep = []
    for i in range(n):  # greedy: inherently sequential
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= over[i]
    return order[torch.tensor(keep, dtype=torch.int64, device=order.device)]


def box_nms(boxes: Tensor, labels: Tensor, scores: Tensor, iou_thr: float = 0.6) -> Tensor:
    """Class-wise box NMS (``torchvision.ops.batched_nms``).

    Args:
        boxes: Tensor[N, 4], float, x1y1x2y2.  labels: Tensor[N], int64.  scores: Tensor[N].
    Returns:
        Tensor[K], int64: kept indices, by descending score.
    """
    _check(boxes, labels, scores)
    return batched_nms(boxes.float(), scores.float(), labels, iou_thr)


def fast_nms(boxes_or_masks: Tensor, labels: Tensor, scores: Tensor, iou_thr: float = 0.5) -> Tensor:
    """YOLACT Fast NMS, class-wise.

    With detections sorted by descending score, ``X = triu(IoU, 1)`` (same class only); detection
    ``j`` is kept iff ``max_i X_ij <= iou_thr``.  Unlike greedy NMS, an already suppressed detection
    still suppresses others (YOLACT Sec. 3.5), so Fast NMS keeps a subset of what greedy NMS keeps.

    Args:
        boxes_or_masks: Tensor[N, 4] boxes (x1y1x2y2) -> box IoU, or Tensor[N, H, W] masks -> mask IoU.
        labels: Tensor[N], int64.  scores: Tensor[N] (any order).
        iou_thr: IoU above which a detection is removed.
    Returns:
        Tensor[K], int64: kept indices, by descending score.
    Raises:
        ValueError: ``boxes_or_masks`` is neither [N, 4] nor [N, H, W].
    """
    _check(boxes_or_masks, labels, scores)
    if scores.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=scores.device)
    order = scores.argsort(descending=True)
    x = boxes_or_masks[order]
    if x.dim() == 2 and x.shape[1] == 4:
        iou = box_iou(x.float(), x.float())
    elif x.dim() == 3:
        iou = mask_iou_matrix(x)
    else:
        raise ValueError(f"fast_nms expects boxes [N, 4] or masks [N, H, W], got {tuple(x.shape)}")
    lab = labels[order]
    iou = (iou * (lab[:, None] == lab[None, :])).triu(diagonal=1)
    return order[iou.max(dim=0).values <= iou_thr]


def apply_postprocess(kind: str, *, masks: Tensor, scores: Tensor, labels: Tensor, boxes: Tensor | None = None,
                      max_per_img: int = 100, update_thr: float = 0.05, mask_iou_thr: float = 0.5,
                      box_iou_thr: float = 0.6, sigma: float = 2.0) -> tuple[Tensor, Tensor]:
    """Run the post-processing variant ``kind`` on one image's candidates.

    Kinds: "matrix" (Matrix NMS, gaussian, ``sigma``), "matrix_linear" (Matrix NMS, linear kernel);
    both drop detections whose updated score is < ``update_thr``.  "mask" (greedy mask NMS at
    ``mask_iou_thr``), "box" (box NMS at ``box_iou_thr``, boxes from ``masks_to_boxes`` when not
    given), "fast" (Fast NMS on mask IoU at ``mask_iou_thr``: all methods here produce masks, so the
    mask IoU is the comparable quantity), "none" (sort + top-k only).  Only the matrix variants
    change scores; ``update_thr`` applies to them only (other kinds keep the scores they are given).

    Args:
        kind: one of ``POSTPROCESS_KINDS``.
        masks: Tensor[N, H, W], bool or binary float.  scores: Tensor[N] (any order).  labels: Tensor[N].
        boxes: Tensor[N, 4] x1y1x2y2 or None.
        max_per_img: detections kept at most.
    Returns:
        keep (Tensor[K], int64 indices into the inputs) and their (updated) scores (Tensor[K]), sorted
        by descending score, ``K <= max_per_img``.
    Raises:
        ValueError: unknown ``kind`` (the message lists the valid ones).
    """
    if kind not in POSTPROCESS_KINDS:
        raise ValueError(f"unknown post-processing {kind!r}; valid: {', '.join(POSTPROCESS_KINDS)} "
                         "('default' must be resolved by the method)")
    _check(masks, labels, scores)
    order = scores.argsort(descending=True)
    if kind in ("matrix", "matrix_linear"):
        m, lab = masks[order], labels[order]
        new = matrix_nms(m, lab, scores[order], kernel="gaussian" if kind == "matrix" else "linear",
                         sigma=sigma)
        ok = new >= update_thr
        keep, new_scores = order[ok], new[ok]
    else:
        if kind == "mask":
            keep = mask_nms(masks, labels, scores, mask_iou_thr)
        elif kind == "box":
            b = masks_to_boxes(masks) if boxes is None else boxes
            keep = box_nms(b, labels, scores, box_iou_thr)
        elif kind == "fast":
            keep = fast_nms(masks, labels, scores, mask_iou_thr)
        else:  # "none"
            keep = order
        new_scores = scores[keep]
    top = new_scores.argsort(descending=True)[:max_per_img]
    return keep[top], new_scores[top]
