"""Target assignment shared by the FCOS-style methods (CondInst, UniInst).

Pure functions, no parameters:

* ``grid_locations``: the pixel location of every feature-map cell (FCOS: ``j * stride + stride // 2``).
* ``mask_centers``: mask centre of mass, the anchor of centre sampling.
* ``center_sampling``: FCOS centre sampling (radius * stride around the mask centre of mass, clipped to
  the box); CondInst and UniInst both use it (UniInst calls the result the spatial prior, Eq. 2).
* ``fcos_targets``: FCOS many-to-one targets (centre sampling + sizes of interest + min-area rule).
* ``centerness_targets``: FCOS centre-ness from ltrb distances.
* ``relative_coords``: CondInst relative coordinates of mask pixels w.r.t. an instance location.
* ``masks_at_stride``: ground-truth masks on a stride-s grid (binarised area fraction).
* ``mask_dice_iou``: pairwise Dice (UniInst Eq. 3) and IoU of binary masks.
* ``oyor_assign``: UniInst OYOR one-to-one assignment (Eq. 1, Hungarian via scipy).
* ``aux_assign``: the many-to-one auxiliary assignment of DeFCN / UniInst (top-k per level, threshold
  = mean quality).

Coordinate frame: the input frame of the padded batch (x right, y down, in pixels); a pixel with
integer index (i, j) covers [j, j+1) x [i, i+1), so its centre is (j + 0.5, i + 0.5).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor


def grid_locations(height: int, width: int, stride: int, device: torch.device | str = "cpu") -> Tensor:
    """Input-frame location of every cell of an ``height x width`` feature map (FCOS convention).

    Returns:
        Tensor[height * width, 2], float32, (x, y) = (j * stride + stride // 2, i * stride + stride // 2),
        row-major (y outer), matching ``feature.flatten(-2)``.
    """
    xs = torch.arange(width, device=device, dtype=torch.float32) * stride + stride // 2
    ys = torch.arange(height, device=device, dtype=torch.float32) * stride + stride // 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def mask_centers(masks: Tensor, boxes: Tensor) -> Tensor:
    """Centre of mass of each mask; the box centre for an empty mask.

    Args:
        masks: Tensor[G, H, W], bool (input frame).
        boxes: Tensor[G, 4], float, x1y1x2y2 in input pixels (fallback for empty masks).
    Returns:
        Tensor[G, 2], float32, (x, y) in input pixels (pixel centres at +0.5).
    """
    g, h, w = masks.shape
    if g == 0:
        return boxes.new_zeros((0, 2), dtype=torch.float32)
    m = masks.float()
    area = m.sum(dim=(1, 2))
    xs = torch.arange(w, device=masks.device, dtype=torch.float32) + 0.5
    ys = torch.arange(h, device=masks.device, dtype=torch.float32) + 0.5
    cx = (m.sum(dim=1) * xs).sum(dim=1) / area.clamp(min=1)
    cy = (m.sum(dim=2) * ys).sum(dim=1) / area.clamp(min=1)
    centers = torch.stack([cx, cy], dim=1)
    box_centers = (boxes[:, :2] + boxes[:, 2:]).float() / 2
    return torch.where((area > 0)[:, None], centers, box_centers)


def center_sampling(points: Tensor, point_strides: Tensor, centers: Tensor, boxes: Tensor,
                    radius: float) -> Tensor:
    """FCOS centre sampling: is each point inside each instance's centre region?

    The region of instance g is the square ``centers[g] +- radius * stride`` (stride of the point's
    level) clipped to ``boxes[g]``; a point is inside when strictly inside the region.

    Args:
        points: Tensor[N, 2], float, (x, y) locations in input pixels.
        point_strides: Tensor[N], float, stride of each point's level.
        centers: Tensor[G, 2], float, region centres (mask centre of mass), input pixels.
        boxes: Tensor[G, 4], float, x1y1x2y2 in input pixels.
        radius: half-size of the region in strides (1.5 in FCOS / CondInst / DeFCN / UniInst).
    Returns:
        Tensor[N, G], bool.
    """
    r = (radius * point_strides.float())[:, None]  # (N, 1)
    x0 = torch.maximum(centers[None, :, 0] - r, boxes[None, :, 0])  # (N, G)
    y0 = torch.maximum(centers[None, :, 1] - r, boxes[None, :, 1])
    x1 = torch.minimum(centers[None, :, 0] + r, boxes[None, :, 2])
    y1 = torch.minimum(centers[None, :, 1] + r, boxes[None, :, 3])
    x, y = points[:, 0:1], points[:, 1:2]
    return (x > x0) & (x < x1) & (y > y0) & (y < y1)


def ltrb_distances(points: Tensor, boxes: Tensor) -> Tensor:
    """Distances (left, top, right, bottom) from each point to each box's sides.

    Returns:
        Tensor[N, G, 4], float, input pixels (negative when the point is outside that side).
    """
    x, y = points[:, 0:1], points[:, 1:2]
    return torch.stack([x - boxes[None, :, 0], y - boxes[None, :, 1],
                        boxes[None, :, 2] - x, boxes[None, :, 3] - y], dim=2)


def fcos_targets(points: Tensor, point_strides: Tensor, size_ranges: Tensor, boxes: Tensor,
                 centers: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    """FCOS many-to-one targets with centre sampling (FCOS Sec. 3.2, CondInst Sec. 3).

    A point is positive for instance g when it lies in g's centre region (``center_sampling``; or
    inside the box when ``radius <= 0``) and ``max(l, t, r, b)`` falls in the point level's size range
    ``[lo, hi]``; among several such instances it takes the one with the smallest box area.

    Args:
        points: Tensor[N, 2], float, (x, y) input pixels.
        point_strides: Tensor[N], float, stride of each point's level.
        size_ranges: Tensor[N, 2], float, (lo, hi) of each point's level, input pixels.
        boxes: Tensor[G, 4], float, x1y1x2y2.
        centers: Tensor[G, 2], float, region centres.
        radius: centre-sampling radius in strides.
    Returns:
        gt_idx: Tensor[N], int64, matched instance or -1 for background.
        ltrb: Tensor[N, 4], float, regression target to the matched box (zeros for background).
    """
    n = points.shape[0]
    if boxes.shape[0] == 0:
        return (torch.full((n,), -1, dtype=torch.long, device=points.device),
                points.new_zeros((n, 4)))
    ltrb = ltrb_distances(points, boxes)  # (N, G, 4)
    if radius > 0:
        inside = center_sampling(points, point_strides, centers, boxes, radius)
    else:
        inside = ltrb.min(dim=2).values > 0
    max_reg = ltrb.max(dim=2).values
    in_range = (max_reg >= size_ranges[:, 0:1]) & (max_reg <= size_ranges[:, 1:2])
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].expand(n, -1).clone()
    area[~(inside & in_range)] = float("inf")
    min_area, gt_idx = area.min(dim=1)
    gt_idx[torch.isinf(min_area)] = -1
    out = ltrb[torch.arange(n, device=points.device), gt_idx.clamp(min=0)]
    out[gt_idx < 0] = 0
    return gt_idx, out


def centerness_targets(ltrb: Tensor) -> Tensor:
    """FCOS centre-ness ``sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b))`` (FCOS Eq. 3).

    Args:
        ltrb: Tensor[N, 4], float, positive distances.
    Returns:
        Tensor[N], float in [0, 1].
    """
    lr, tb = ltrb[:, [0, 2]].clamp(min=0), ltrb[:, [1, 3]].clamp(min=0)
    ratio = (lr.min(dim=1).values / lr.max(dim=1).values.clamp(min=1e-6)) * (
        tb.min(dim=1).values / tb.max(dim=1).values.clamp(min=1e-6))
    return ratio.sqrt()


def relative_coords(instance_locations: Tensor, pixel_locations: Tensor, norm: Tensor) -> Tensor:
    """CondInst relative coordinates: ``(instance location - pixel location) / norm``.

    Args:
        instance_locations: Tensor[n, 2], float, (x, y) of each instance's head location, input pixels.
        pixel_locations: Tensor[P, 2], float, (x, y) of the mask-feature pixels (``grid_locations``).
        norm: Tensor[n], float, normaliser per instance (CondInst: sizes of interest 64..1024 of the
            instance's level; UniInst: the level's stride 8..128).
    Returns:
        Tensor[n, 2, P], float, channel 0 = x offset, channel 1 = y offset.
    """
    rel = instance_locations[:, None, :] - pixel_locations[None, :, :]  # (n, P, 2)
    return rel.permute(0, 2, 1) / norm.float()[:, None, None]


def masks_at_stride(masks: Tensor, out_hw: tuple[int, int], stride: int) -> Tensor:
    """Ground-truth masks on the stride-``stride`` output grid of the padded batch.

    The masks are zero padded (right / bottom) or cropped to ``out_hw * stride`` pixels, average
    pooled by ``stride`` and binarised at an area fraction of 0.5.

    Args:
        masks: Tensor[G, h, w], bool, input frame (un-padded image).
        out_hw: (H_s, W_s) size of the stride-``stride`` grid.
        stride: output stride in pixels (4 for CondInst / UniInst mask logits).
    Returns:
        Tensor[G, H_s, W_s], float32 in {0, 1}.
    """
    hs, ws = out_hw
    full = masks.new_zeros((masks.shape[0], hs * stride, ws * stride), dtype=torch.float32)
    h, w = min(masks.shape[1], hs * stride), min(masks.shape[2], ws * stride)
    full[:, :h, :w] = masks[:, :h, :w].float()
    if masks.shape[0] == 0:
        return full.new_zeros((0, hs, ws))
    return (F.avg_pool2d(full[:, None], stride)[:, 0] >= 0.5).float()


def mask_dice_iou(gt: Tensor, pred: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Pairwise Dice (UniInst Eq. 3) and IoU of flattened masks.

    ``Dice = 2 |p t| / (|p|^2 + |t|^2 + eps)``, ``IoU = |p t| / (|p| + |t| - |p t|)``, with soft or
    binary masks (UniInst binarises predictions at 0.5 first).

    Args:
        gt: Tensor[G, P], float in [0, 1].
        pred: Tensor[n, P], float in [0, 1].
    Returns:
        dice, iou: Tensor[G, n], float.
    """
    gt, pred = gt.float(), pred.float()
    inter = gt @ pred.t()  # (G, n)
    g2, p2 = (gt * gt).sum(1)[:, None], (pred * pred).sum(1)[None, :]
    dice = 2 * inter / (g2 + p2 + eps)
    union = gt.sum(1)[:, None] + pred.sum(1)[None, :] - inter
    iou = inter / union.clamp(min=eps)
    return dice, iou


def oyor_assign(quality: Tensor) -> tuple[Tensor, Tensor]:
    """OYOR: optimal one-to-one assignment of ground truths to predictions (UniInst Eq. 1).

    ``quality[g, n] = 1[n in Psi_g] * p^(1-alpha) * Dice^alpha`` (Eq. 2) is >= 0 for candidates;
    non-candidates are marked with any negative value (-1 or -inf). The assignment maximises, first,
    the number of ground truths matched to one of their candidates and, second, the total quality;
    a ground truth is never matched to a non-candidate (it stays unmatched when all of its
    candidates are taken). Solved with ``scipy.optimize.linear_sum_assignment(maximize=True)`` after
    replacing non-candidates by a penalty larger than any achievable total quality.  The UniInst
    authors' code (b03505036/UniInst, ``adet/modeling/fcos/Uni_fcos_outputs.py``) also leaves such a
    ground truth without a positive: it drops GTs with no candidate before ``linear_sum_assignment``
    and drops (then re-matches without) any GT the matching put on a non-candidate; DeFCN's POTO
    instead keeps every pair, so a GT with no candidate gets one positive at an arbitrary location.

    Args:
        quality: Tensor[G, N], float.
    Returns:
        gt_idx, pred_idx: Tensor[M], int64 (M <= min(G, N)), on ``quality``'s device; pairs sorted by
        ``gt_idx``.
    Raises:
        ValueError: ``quality`` is not 2-D or holds NaN.
    """
    if quality.dim() != 2:
        raise ValueError(f"oyor_assign: quality must be [G, N], got shape {tuple(quality.shape)}")
    if torch.isnan(quality).any():
        raise ValueError("oyor_assign: quality holds NaN")
    device = quality.device
    empty = torch.zeros(0, dtype=torch.long, device=device)
    cand = quality >= 0
    if not bool(cand.any()):
        return empty, empty.clone()
    q = quality.detach().double().cpu()
    cand_cpu = cand.cpu()
    penalty = float(q[cand_cpu].sum()) + 1.0  # any valid pair outweighs all qualities together
    cost = torch.where(cand_cpu, q, torch.full_like(q, -penalty)).numpy()
    rows, cols = linear_sum_assignment(cost, maximize=True)
    rows_t = torch.as_tensor(rows, dtype=torch.long)
    cols_t = torch.as_tensor(cols, dtype=torch.long)
    valid = cand_cpu[rows_t, cols_t]
    return rows_t[valid].to(device), cols_t[valid].to(device)


def aux_assign(quality: Tensor, levels: Tensor, topk: int = 9) -> Tensor:
    """Many-to-one auxiliary assignment (DeFCN aux loss as modified by UniInst Sec. 3.2.3).

    For each ground truth: among its candidates (``quality >= 0``) take the ``topk`` highest
    qualities of every pyramid level; those with quality >= the mean of the selected qualities are
    positives. A location positive for several ground truths takes the one with the highest quality.

    Args:
        quality: Tensor[G, N], float; candidates >= 0, others negative (-1 / -inf).
        levels: Tensor[N], int64, pyramid level of each location.
        topk: candidates kept per level and ground truth (9).
    Returns:
        Tensor[N], int64, assigned ground truth per location, -1 = negative.
    """
    g, n = quality.shape
    out = torch.full((n,), -1, dtype=torch.long, device=quality.device)
    if g == 0 or n == 0:
        return out
    q = torch.where(quality >= 0, quality, torch.full_like(quality, float("-inf")))
    selected = torch.zeros_like(q, dtype=torch.bool)
    for lvl in torch.unique(levels).tolist():
        cols = (levels == lvl).nonzero(as_tuple=True)[0]
        k = min(topk, cols.numel())
        vals, idx = q[:, cols].topk(k, dim=1)  # (G, k)
        sel = torch.zeros((g, cols.numel()), dtype=torch.bool, device=q.device)
        sel.scatter_(1, idx, vals > float("-inf"))
        selected[:, cols] = sel
    sel_q = torch.where(selected, q, torch.zeros_like(q))
    count = selected.sum(dim=1).clamp(min=1)
    thr = sel_q.sum(dim=1) / count  # (G,) mean of the selected qualities
    pos = selected & (q >= thr[:, None])
    best_q, best_g = torch.where(pos, q, torch.full_like(q, float("-inf"))).max(dim=0)
    out[best_q > float("-inf")] = best_g[best_q > float("-inf")]
    return out
