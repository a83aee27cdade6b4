"""Hand-built cases for harness.panoptic: PQ / SQ / RQ (COCO panoptic definition) and mIoU.

Every expected number is computed by hand in the test from the pixel counts.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.panoptic import _hotcoco_available, pq_compute

CATS = [{"id": 0, "name": "car", "isthing": 1}, {"id": 1, "name": "person", "isthing": 1},
        {"id": 2, "name": "road", "isthing": 0}]
BACKENDS = ["builtin", pytest.param("hotcoco", marks=pytest.mark.skipif(
    not _hotcoco_available(), reason="hotcoco not installed (pip install hotcoco)"))]


def seg(sid: int, cat: int, iscrowd: int = 0) -> dict:
    return {"id": sid, "category": cat, "iscrowd": iscrowd}


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_match(backend):
    pan = np.zeros((6, 8), dtype=np.int64)
    pan[:, :4] = 1  # car
    pan[:3, 4:] = 2  # road, bottom right stays void
    segs = [seg(1, 0), seg(2, 2)]
    r = pq_compute([(pan, segs, torch.from_numpy(pan), segs)], CATS, backend=backend)
    assert r["PQ"] == pytest.approx(1.0) and r["SQ"] == pytest.approx(1.0) and r["RQ"] == pytest.approx(1.0)
    assert r["PQ_things"] == pytest.approx(1.0) and r["PQ_stuff"] == pytest.approx(1.0)
    assert r["n"] == 2 and r["n_things"] == 1 and r["n_stuff"] == 1
    assert math.isnan(r["per_class"][1]["PQ"])  # person: no GT and no prediction -> not averaged
    assert r["mIoU"] == pytest.approx(1.0)
    assert r["backend"] == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_split_is_one_fn_and_two_fp(backend):
    gt = np.zeros((4, 8), dtype=np.int64)
    gt[:, :4] = 1  # one car, 16 px
    gt[:, 4:] = 2  # road, 16 px
    pred = gt.copy()
    pred[:2, :4] = 3  # the car split into two halves of 8 px: IoU 8/16 = 0.5, not > 0.5
    pred[2:, :4] = 4
    r = pq_compute([(gt, [seg(1, 0), seg(2, 2)], pred, [seg(3, 0), seg(4, 0), seg(2, 2)])], CATS,
                   backend=backend)
    car = r["per_class"][0]
    assert (car["TP"], car["FP"], car["FN"]) == (0, 2, 1)
    assert car["PQ"] == 0.0 and car["RQ"] == 0.0
    assert r["PQ_things"] == 0.0 and r["PQ_stuff"] == pytest.approx(1.0)
    assert r["PQ"] == pytest.approx(0.5)  # mean over car (0) and road (1)
    # the semantic maps are identical (split or not, every pixel keeps its class)
    assert r["mIoU"] == pytest.approx(1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_merge_matches_the_larger_instance(backend):
    gt = np.zeros((4, 4), dtype=np.int64)
    gt[:3, :] = 1  # car A: 12 px
    gt[3, :] = 2  # car B: 4 px
    pred = np.full((4, 4), 5, dtype=np.int64)  # one car over both: 16 px
    r = pq_compute([(gt, [seg(1, 0), seg(2, 0)], pred, [seg(5, 0)])], CATS, backend=backend)
    car = r["per_class"][0]
    # IoU(pred, A) = 12 / 16 = 0.75 -> TP; IoU(pred, B) = 4 / 16 -> B is a FN; no FP.
    assert (car["TP"], car["FP"], car["FN"]) == (1, 0, 1)
    assert car["SQ"] == pytest.approx(0.75)
    assert car["RQ"] == pytest.approx(1 / 1.5)
    assert car["PQ"] == pytest.approx(0.75 / 1.5)
    assert r["PQ"] == pytest.approx(0.5) and r["n"] == 1
    assert math.isnan(r["PQ_stuff"]) and r["n_stuff"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_unmatched_void_and_crowd(backend):
    gt = np.zeros((4, 10), dtype=np.int64)
    gt[:, 0:2] = 1  # person P, 8 px, not predicted -> FN
    gt[:, 2:4] = 2  # car crowd region, 8 px
    gt[:, 4:6] = 3  # road, 8 px; columns 6..9 are void
    pred = np.zeros((4, 10), dtype=np.int64)
    pred[:, 2:4] = 10  # car on the car crowd -> ignored (not FP)
    pred[:, 4:6] = 11  # person on road -> FP
    pred[:, 6:9] = 12  # car: 12 px on void -> ignored (not FP)
    pred[:, 9] = 13  # road: 4 px on void -> ignored; road GT unmatched -> FN
    gt_segs = [seg(1, 1), seg(2, 0, iscrowd=1), seg(3, 2)]
    pred_segs = [seg(10, 0), seg(11, 1), seg(12, 0), seg(13, 2)]
    r = pq_compute([(gt, gt_segs, pred, pred_segs)], CATS, backend=backend)
    car, person, road = (r["per_class"][c] for c in (0, 1, 2))
    assert math.isnan(car["PQ"])  # crowd only, both car predictions ignored -> TP+FP+FN = 0
    assert (person["TP"], person["FP"], person["FN"]) == (0, 1, 1)
    assert (road["TP"], road["FP"], road["FN"]) == (0, 0, 1)
    assert r["n"] == 2 and r["PQ"] == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_prediction_on_a_crowd_of_another_class_is_fp(backend):
    gt = np.zeros((2, 4), dtype=np.int64)
    gt[:, :] = 1  # person crowd
    pred = np.full((2, 4), 7, dtype=np.int64)  # car on it
    r = pq_compute([(gt, [seg(1, 1, iscrowd=1)], pred, [seg(7, 0)])], CATS, backend=backend)
    assert (r["per_class"][0]["FP"], r["per_class"][0]["FN"]) == (1, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_void_pixels_leave_the_union(backend):
    gt = np.zeros((4, 4), dtype=np.int64)
    gt[:, :2] = 1  # car, 8 px; the rest void
    pred = np.zeros((4, 4), dtype=np.int64)
    pred[:, :3] = 2  # 12 px: the 8 car px + 4 void px
    pred[0, 3] = 3  # 1 px road entirely on void
    r = pq_compute([(gt, [seg(1, 0)], pred, [seg(2, 0), seg(3, 2)])], CATS, backend=backend)
    # IoU = 8 / (12 + 8 - 8 - 4) = 1, although 4 of the predicted pixels are outside the car.
    assert r["per_class"][0]["SQ"] == pytest.approx(1.0)
    assert r["PQ"] == pytest.approx(1.0) and r["n"] == 1  # road: one prediction on void, ignored


@pytest.mark.parametrize("backend", BACKENDS)
def test_counts_accumulate_over_images(backend):
    gt1 = np.zeros((5, 5), dtype=np.int64)
    gt1[:, :4] = 1  # car, 20 px
    pred1 = np.zeros((5, 5), dtype=np.int64)
    pred1[:4, :4] = 2  # 16 px inside the car: IoU 16/20 = 0.8
    gt2 = np.zeros((3, 3), dtype=np.int64)
    gt2[:] = 4  # car, not predicted
    pred2 = np.zeros((3, 3), dtype=np.int64)
    r = pq_compute([(gt1, [seg(1, 0)], pred1, [seg(2, 0)]), (gt2, [seg(4, 0)], pred2, [])], CATS,
                   backend=backend)
    car = r["per_class"][0]
    assert (car["TP"], car["FP"], car["FN"]) == (1, 0, 1)
    assert car["PQ"] == pytest.approx(0.8 / 1.5)
    assert r["n_images"] == 2
    # semantics: car pixels 20 + 9 = 29 GT, 16 predicted car (all correct) -> IoU 16/29
    assert r["per_class_iou"][0] == pytest.approx(16 / 29)
    assert r["mIoU"] == pytest.approx(16 / 29)


def test_miou_by_hand():
    gt = np.array([[1, 1, 2, 2],
                   [1, 1, 2, 2],
                   [0, 0, 0, 0]])
    pred = np.array([[5, 6, 6, 6],
                     [5, 6, 6, 0],
                     [6, 6, 5, 5]])
    gt_segs = [seg(1, 0), seg(2, 2)]  # car 4 px, road 4 px, bottom row void
    pred_segs = [seg(5, 0), seg(6, 2)]
    r = pq_compute([(gt, gt_segs, pred, pred_segs)], CATS, backend="builtin")
    # non-void GT only: car GT {(0,0),(0,1),(1,0),(1,1)}, predicted car there: (0,0),(1,0) -> inter 2;
    # predicted car on non-void GT: 2 px -> union 4 + 2 - 2 = 4 -> 0.5.
    # road GT {(0,2),(0,3),(1,2),(1,3)}, predicted road there: 3 ((1,3) is void); predicted road on
    # non-void GT: 5 ((0,1),(1,1) car px + 3) -> union 4 + 5 - 3 = 6 -> 0.5.
    assert r["per_class_iou"][0] == pytest.approx(0.5)
    assert r["per_class_iou"][2] == pytest.approx(0.5)
    assert math.isnan(r["per_class_iou"][1])
    assert r["mIoU"] == pytest.approx(0.5)


def test_errors_name_the_image():
    gt = np.ones((2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="image 42.*not in its segments"):
        pq_compute([(gt, [], gt, [seg(1, 0)])], CATS, image_ids=[42])
    with pytest.raises(ValueError, match="image #0.*unknown category 9"):
        pq_compute([(gt, [seg(1, 9)], gt, [seg(1, 0)])], CATS)
    with pytest.raises(ValueError, match="image 7.*differ in size"):
        pq_compute([(gt, [seg(1, 0)], np.ones((3, 2), dtype=np.int64), [seg(1, 0)])], CATS, image_ids=[7])
    with pytest.raises(ValueError, match="listed but cover no pixel"):
        pq_compute([(gt, [seg(1, 0)], gt, [seg(1, 0), seg(2, 0)])], CATS)
    with pytest.raises(ValueError, match="unknown PQ backend"):
        pq_compute([], CATS, backend="panopticapi")


@pytest.mark.skipif(not _hotcoco_available(), reason="hotcoco not installed (pip install hotcoco)")
def test_builtin_agrees_with_hotcoco_on_random_maps():
    gen = np.random.default_rng(0)
    pairs = []
    for _ in range(6):
        h, w = gen.integers(6, 14, size=2)
        blocks = gen.integers(0, 6, size=(h // 2 + 1, w // 2 + 1))
        gt = np.kron(blocks, np.ones((2, 2), dtype=np.int64))[:h, :w]  # ids 0..5 in 2x2 blocks
        pred = gt.copy()
        flip = gen.random((h, w)) < 0.3
        pred[flip] = gen.integers(0, 7, size=int(flip.sum()))
        gsegs = [seg(int(i), int(i) % 3, iscrowd=int(i == 5)) for i in np.unique(gt) if i]
        psegs = [seg(int(i), int(gen.integers(0, 3)) if i == 6 else int(i) % 3) for i in np.unique(pred) if i]
        pairs.append((gt, gsegs, pred, psegs))
    a = pq_compute(pairs, CATS, backend="builtin")
    b = pq_compute(pairs, CATS, backend="hotcoco")
    for c in (0, 1, 2):
        for k in ("TP", "FP", "FN"):
            assert a["per_class"][c][k] == b["per_class"][c][k], (c, k)
    assert a["PQ"] == pytest.approx(b["PQ"]) and a["SQ"] == pytest.approx(b["SQ"])
    assert a["PQ_things"] == pytest.approx(b["PQ_things"]) or math.isnan(a["PQ_things"])


# issue 15: panopticapi's rules that the two backends disagreed on
@pytest.mark.parametrize("backend", BACKENDS)
def test_gt_segment_listed_but_absent_from_the_map_is_a_false_negative(backend):
    gt = np.zeros((10, 10), np.int64)
    gt[:5] = 1
    pred = np.zeros((10, 10), np.int64)
    pred[:5] = 3
    r = pq_compute([(gt, [seg(1, 1), seg(2, 1)], pred, [seg(3, 1)])], CATS, backend=backend)
    c = r["per_class"][1]
    assert (c["TP"], c["FP"], c["FN"]) == (1, 0, 1)  # panopticapi: segment 2 is listed, never matched -> FN
    assert c["PQ"] == pytest.approx(1 / 1.5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order, fp", [((1, 2), 0), ((2, 1), 1)])
def test_several_crowd_segments_of_one_class_follow_panopticapi(backend, order, fp):
    """panopticapi keeps the last-listed crowd segment per category (``crowd_labels_dict`` overwritten): a
    prediction lying on an earlier-listed crowd segment is an FP, on the last one it is ignored."""
    gt = np.zeros((10, 10), np.int64)
    gt[:, :5], gt[:, 5:] = 1, 2
    pred = np.zeros((10, 10), np.int64)
    pred[:, 5:] = 7  # lies on crowd segment 2
    segs = [seg(i, 1, iscrowd=1) for i in order]
    r = pq_compute([(gt, segs, pred, [seg(7, 1)])], CATS, backend=backend)
    c = r["per_class"][1]
    assert (c["TP"], c["FP"], c["FN"]) == (0, fp, 0)
