"""Target assignment (methods/assign.py): hand-computed cases and OYOR against brute force."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from methods.assign import (
    aux_assign,
    center_sampling,
    centerness_targets,
    fcos_targets,
    grid_locations,
    ltrb_distances,
    mask_centers,
    mask_dice_iou,
    masks_at_stride,
    oyor_assign,
    relative_coords,
)


# ---------------------------------------------------------------------------------------------
# OYOR
def _brute_force(q: torch.Tensor) -> tuple[int, float]:
    """Best (number of candidate pairs, total candidate quality) over all injective GT -> pred maps."""
    g, n = q.shape
    best = (-1, -math.inf)
    for perm in itertools.permutations(range(n), g):
        pairs = [(i, j) for i, j in enumerate(perm) if q[i, j] >= 0]
        key = (len(pairs), sum(float(q[i, j]) for i, j in pairs))
        if key[0] > best[0] or (key[0] == best[0] and key[1] > best[1] + 1e-12):
            best = key
    return best


def _pairs_value(q, gi, pi) -> tuple[int, float]:
    return len(gi), float(sum(float(q[a, b]) for a, b in zip(gi.tolist(), pi.tolist())))


@pytest.mark.parametrize("seed", range(60))
def test_oyor_equals_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    g = int(torch.randint(1, 4, (1,), generator=gen))
    n = int(torch.randint(g, 6, (1,), generator=gen))
    q = torch.rand(g, n, generator=gen)
    non_cand = torch.rand(g, n, generator=gen) < 0.45
    q[non_cand] = -1.0 if seed % 2 else float("-inf")
    gi, pi = oyor_assign(q)
    # one-to-one, only candidates
    assert len(set(gi.tolist())) == len(gi) and len(set(pi.tolist())) == len(pi)
    assert all(q[a, b] >= 0 for a, b in zip(gi.tolist(), pi.tolist()))
    count, total = _pairs_value(q, gi, pi)
    b_count, b_total = _brute_force(q)
    assert count == b_count
    assert total == pytest.approx(b_total, abs=1e-9)
    assert gi.tolist() == sorted(gi.tolist())


def test_oyor_prefers_matching_every_gt_over_total_quality():
    # GT0 candidates: p0 (0.9), p1 (0.05); GT1 only p0 (0.5). Taking p0 for GT0 (0.9) would leave
    # GT1 without a candidate; OYOR matches both: GT0 -> p1, GT1 -> p0.
    q = torch.tensor([[0.9, 0.05, -1.0], [0.5, -1.0, -1.0]])
    gi, pi = oyor_assign(q)
    assert list(zip(gi.tolist(), pi.tolist())) == [(0, 1), (1, 0)]


def test_oyor_gt_without_free_candidate_stays_unmatched():
    q = torch.tensor([[0.3, -1.0, -1.0], [0.6, -1.0, -1.0], [-1.0, -1.0, -1.0]])
    gi, pi = oyor_assign(q)
    assert list(zip(gi.tolist(), pi.tolist())) == [(1, 0)]


def test_oyor_empty_and_errors():
    gi, pi = oyor_assign(torch.full((2, 3), -1.0))
    assert gi.numel() == 0 and pi.numel() == 0 and gi.dtype == torch.long
    gi, pi = oyor_assign(torch.zeros(0, 4))
    assert gi.numel() == 0
    with pytest.raises(ValueError, match="NaN"):
        oyor_assign(torch.tensor([[float("nan"), 0.1]]))
    with pytest.raises(ValueError, match=r"\[G, N\]"):
        oyor_assign(torch.zeros(3))


def test_oyor_more_gts_than_predictions():
    q = torch.tensor([[0.2], [0.7], [0.4]])
    gi, pi = oyor_assign(q)
    assert list(zip(gi.tolist(), pi.tolist())) == [(1, 0)]


# ---------------------------------------------------------------------------------------------
# aux assignment
def test_aux_assign_topk_per_level_and_mean_threshold():
    # one GT, level 0 has 4 candidates, level 1 has 2; topk = 2 per level
    q = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.8, 0.2]])
    levels = torch.tensor([0, 0, 0, 0, 1, 1])
    out = aux_assign(q, levels, topk=2)
    # selected: level 0 -> 0.9, 0.5; level 1 -> 0.8, 0.2; mean = 0.6 -> positives 0.9, 0.8
    assert out.tolist() == [0, -1, -1, -1, 0, -1]


def test_aux_assign_non_candidates_and_conflicts():
    q = torch.tensor([[0.6, 0.4, -1.0, 0.2],
                      [0.7, -1.0, 0.5, float("-inf")]])
    levels = torch.zeros(4, dtype=torch.long)
    out = aux_assign(q, levels, topk=9)
    # GT0: mean(0.6, 0.4, 0.2) = 0.4 -> {0, 1}; GT1: mean(0.7, 0.5) = 0.6 -> {0}
    # location 0 is claimed by both and goes to GT1 (0.7 > 0.6)
    assert out.tolist() == [1, 0, -1, -1]
    assert aux_assign(torch.zeros(0, 3), torch.zeros(3, dtype=torch.long)).tolist() == [-1, -1, -1]


# ---------------------------------------------------------------------------------------------
# locations, centres, centre sampling, FCOS targets
def test_grid_locations():
    loc = grid_locations(2, 3, 8)
    assert loc.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]


def test_mask_centers_centre_of_mass_and_empty_fallback():
    m = torch.zeros(2, 6, 6, dtype=torch.bool)
    m[0, 1, 1:4] = True  # pixels (x=1..3, y=1)
    m[0, 3, 1] = True  # pixel (x=1, y=3)
    boxes = torch.tensor([[1.0, 1, 4, 4], [0.0, 0, 4, 2]])
    c = mask_centers(m, boxes)
    # x: (1.5 + 2.5 + 3.5 + 1.5) / 4 = 2.25; y: (1.5 * 3 + 3.5) / 4 = 2.0
    assert c[0].tolist() == pytest.approx([2.25, 2.0])
    assert c[1].tolist() == [2.0, 1.0]  # empty mask -> box centre


def test_center_sampling_hand_built_box():
    # stride-8 grid on 64 x 64; box (10, 10, 50, 30), centre (30, 20), radius 1.5 -> +-12 px:
    # region x in (18, 42), y in (8, 32) clipped to the box -> (10, 30)
    pts = grid_locations(8, 8, 8)
    strides = torch.full((64,), 8.0)
    inside = center_sampling(pts, strides, torch.tensor([[30.0, 20.0]]), torch.tensor([[10.0, 10, 50, 30]]), 1.5)
    got = sorted(tuple(p) for p in pts[inside[:, 0]].tolist())
    assert got == sorted((x, y) for x in (20.0, 28.0, 36.0) for y in (12.0, 20.0, 28.0))
    # a larger stride enlarges the region, still clipped to the box
    inside16 = center_sampling(pts, torch.full((64,), 16.0), torch.tensor([[30.0, 20.0]]),
                               torch.tensor([[10.0, 10, 50, 30]]), 1.5)
    xs = sorted({p[0] for p in pts[inside16[:, 0]].tolist()})
    ys = sorted({p[1] for p in pts[inside16[:, 0]].tolist()})
    assert xs == [12.0, 20.0, 28.0, 36.0, 44.0] and ys == [12.0, 20.0, 28.0]


def test_fcos_targets_min_area_and_size_ranges():
    pts = torch.tensor([[20.0, 20.0], [20.0, 20.0], [60.0, 60.0]])
    strides = torch.tensor([8.0, 8.0, 8.0])
    boxes = torch.tensor([[0.0, 0, 40, 40], [10.0, 10, 30, 30]])  # big, small (both contain (20, 20))
    centers = torch.tensor([[20.0, 20.0], [20.0, 20.0]])
    ranges = torch.tensor([[0.0, 64.0], [15.0, 64.0], [0.0, 64.0]])
    gt, ltrb = fcos_targets(pts, strides, ranges, boxes, centers, radius=1.5)
    # point 0: both in range (max reg 20 / 10) -> smaller area wins; point 1: small box max reg 10 < 15
    # -> big box; point 2: outside both
    assert gt.tolist() == [1, 0, -1]
    assert ltrb.tolist() == [[10, 10, 10, 10], [20, 20, 20, 20], [0, 0, 0, 0]]
    gt, _ = fcos_targets(pts, strides, ranges, boxes[:0], centers[:0], 1.5)
    assert gt.tolist() == [-1, -1, -1]


def test_ltrb_and_centerness():
    ltrb = ltrb_distances(torch.tensor([[3.0, 4.0]]), torch.tensor([[2.0, 2.0, 6.0, 8.0]]))
    assert ltrb[0, 0].tolist() == [1, 2, 3, 4]
    assert centerness_targets(ltrb[0]).tolist() == pytest.approx([math.sqrt(1 / 3 * 2 / 4)])


def test_relative_coords_values():
    pix = grid_locations(2, 2, 8)  # (4, 4), (12, 4), (4, 12), (12, 12)
    rel = relative_coords(torch.tensor([[12.0, 4.0]]), pix, torch.tensor([64.0]))
    assert rel.shape == (1, 2, 4)
    assert rel[0, 0].tolist() == pytest.approx([8 / 64, 0, 8 / 64, 0])  # x offsets
    assert rel[0, 1].tolist() == pytest.approx([0, 0, -8 / 64, -8 / 64])  # y offsets


def test_masks_at_stride_pads_and_binarises():
    m = torch.zeros(1, 6, 7, dtype=torch.bool)
    m[0, 0:4, 0:2] = True  # 8 of the 16 pixels of cell (0, 0): fraction 0.5 -> on
    m[0, 4:5, 4:7] = True  # 3 of the 16 pixels of cell (1, 1) (zero padded to 8 x 8): off
    out = masks_at_stride(m, (2, 2), 4)
    assert out.shape == (1, 2, 2)
    assert out[0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    # a grid smaller than the mask crops it
    assert masks_at_stride(m, (1, 1), 4)[0].tolist() == [[1.0]]


def test_mask_dice_iou_hand():
    gt = torch.tensor([[1.0, 1, 0, 0]])
    pred = torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 1, 1], [0.0, 0, 0, 0]])
    dice, iou = mask_dice_iou(gt, pred, eps=0.0)
    assert dice[0, :2].tolist() == pytest.approx([2 / 3, 4 / 6])
    assert iou[0, :2].tolist() == pytest.approx([1 / 2, 2 / 4])
    assert dice[0, 2] == 0 and iou[0, 2] == 0
