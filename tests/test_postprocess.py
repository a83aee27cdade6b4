"""Hand-computed cases for the post-processing variants (methods/postprocess.py)."""
from __future__ import annotations

import math

import pytest
import torch

from methods.postprocess import (
    POSTPROCESS_KINDS,
    apply_postprocess,
    box_nms,
    fast_nms,
    mask_iou_matrix,
    mask_nms,
    matrix_nms,
)


def strips(*spans: tuple[int, int], width: int = 10) -> torch.Tensor:
    """1 x width masks; span (a, b) sets pixels a..b inclusive. -> Tensor[N, 1, width] bool."""
    m = torch.zeros(len(spans), 1, width, dtype=torch.bool)
    for i, (a, b) in enumerate(spans):
        m[i, 0, a: b + 1] = True
    return m


# A = 0..3 (area 4), B = 1..4 (area 4), C = 3..8 (area 6):
# IoU(A,B) = 3/5, IoU(A,C) = 1/9, IoU(B,C) = 2/8.
ABC = strips((0, 3), (1, 4), (3, 8))
SCORES = torch.tensor([0.9, 0.8, 0.7])
SAME = torch.zeros(3, dtype=torch.int64)


def test_mask_iou_matrix_by_hand():
    iou = mask_iou_matrix(ABC)
    expected = torch.tensor([[1, 3 / 5, 1 / 9], [3 / 5, 1, 2 / 8], [1 / 9, 2 / 8, 1]])
    torch.testing.assert_close(iou, expected)


def test_matrix_nms_gaussian_by_hand():
    new = matrix_nms(ABC, SAME, SCORES, kernel="gaussian", sigma=2.0)
    # B: decayed by A (comp_A = 0): exp(-2 * 0.6^2).
    # C: by A: exp(-2 (1/9)^2); by B: exp(-2 * 0.25^2) / exp(-2 * 0.6^2) > 1 (compensated), so A wins.
    expected = torch.tensor([0.9, 0.8 * math.exp(-0.72), 0.7 * math.exp(-2 / 81)])
    torch.testing.assert_close(new, expected)
    # without the compensation term C would have been decayed by B: exp(-2 * 0.25^2) < exp(-2/81)
    assert new[2] > 0.7 * math.exp(-0.125)


def test_matrix_nms_linear_by_hand():
    new = matrix_nms(ABC, SAME, SCORES, kernel="linear")
    # B: 1 - 0.6 = 0.4; C: min(1 - 1/9, (1 - 0.25) / (1 - 0.6) = 1.875) = 8/9
    torch.testing.assert_close(new, torch.tensor([0.9, 0.8 * 0.4, 0.7 * 8 / 9]))


def test_matrix_nms_is_class_aware():
    new = matrix_nms(ABC, torch.tensor([0, 1, 0]), SCORES, kernel="gaussian", sigma=2.0)
    # B is alone in class 1; C only sees A.
    torch.testing.assert_close(new, torch.tensor([0.9, 0.8, 0.7 * math.exp(-2 / 81)]))
    new = matrix_nms(ABC, torch.tensor([0, 1, 2]), SCORES)
    torch.testing.assert_close(new, SCORES)


def test_matrix_nms_sigma_multiplies_and_mask_area_is_used():
    new = matrix_nms(ABC, SAME, SCORES, sigma=0.5)
    assert new[1].item() == pytest.approx(0.8 * math.exp(-0.5 * 0.36))
    given = matrix_nms(ABC.float(), SAME, SCORES, mask_area=torch.tensor([4.0, 4.0, 6.0]))
    torch.testing.assert_close(given, matrix_nms(ABC, SAME, SCORES))


def test_matrix_nms_identical_masks_and_errors():
    two = strips((0, 3), (0, 3))
    new = matrix_nms(two, torch.zeros(2, dtype=torch.int64), torch.tensor([0.9, 0.6]), kernel="linear")
    assert new.tolist() == pytest.approx([0.9, 0.0])
    with pytest.raises(ValueError, match="kernel"):
        matrix_nms(ABC, SAME, SCORES, kernel="box")
    with pytest.raises(ValueError, match="disagree"):
        matrix_nms(ABC, SAME[:2], SCORES)


def test_mask_nms_keep_sets():
    assert mask_nms(ABC, SAME, SCORES, iou_thr=0.5).tolist() == [0, 2]  # B: IoU 0.6 with A
    assert mask_nms(ABC, SAME, SCORES, iou_thr=0.7).tolist() == [0, 1, 2]
    assert mask_nms(ABC, torch.tensor([0, 1, 0]), SCORES, iou_thr=0.5).tolist() == [0, 1, 2]
    # unsorted input: indices refer to the input, ordered by score
    assert mask_nms(ABC, SAME, torch.tensor([0.5, 0.8, 0.7]), iou_thr=0.5).tolist() == [1, 2]


def test_greedy_vs_fast_nms_chain():
    # A = 0..3, B = 1..4, D = 2..5: IoU(A,B) = IoU(B,D) = 0.6, IoU(A,D) = 1/3.
    chain = strips((0, 3), (1, 4), (2, 5))
    assert mask_nms(chain, SAME, SCORES, iou_thr=0.5).tolist() == [0, 2]  # B removed, D survives
    assert fast_nms(chain, SAME, SCORES, iou_thr=0.5).tolist() == [0]  # removed B still removes D
    assert fast_nms(chain, torch.tensor([0, 1, 0]), SCORES, iou_thr=0.5).tolist() == [0, 1, 2]


def test_fast_nms_boxes_and_bad_shape():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 8], [20, 20, 30, 30]])  # IoU(0,1) = 0.8
    assert fast_nms(boxes, SAME, SCORES, iou_thr=0.5).tolist() == [0, 2]
    assert fast_nms(boxes, SAME, SCORES, iou_thr=0.85).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="boxes"):
        fast_nms(torch.zeros(3, 5), SAME, SCORES)


def test_box_nms_class_wise():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 8], [20, 20, 30, 30]])
    assert box_nms(boxes, SAME, torch.tensor([0.7, 0.8, 0.9]), 0.6).tolist() == [2, 1]
    assert box_nms(boxes, torch.tensor([0, 1, 0]), torch.tensor([0.7, 0.8, 0.9]), 0.6).tolist() == [2, 1, 0]


def test_apply_postprocess_matrix_update_thr_and_order():
    perm = torch.tensor([2, 0, 1])  # feed C, A, B (unsorted)
    keep, scores = apply_postprocess("matrix", masks=ABC[perm], scores=SCORES[perm], labels=SAME,
                                     update_thr=0.5)
    # B decays to 0.389 < 0.5 and is dropped
    assert keep.tolist() == [1, 0]
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.7 * math.exp(-2 / 81)]))
    keep, scores = apply_postprocess("matrix_linear", masks=ABC, scores=SCORES, labels=SAME, update_thr=0.0)
    assert keep.tolist() == [0, 2, 1]  # 0.9, 0.622, 0.32
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.7 * 8 / 9, 0.32]))


def test_apply_postprocess_other_kinds():
    kw = dict(masks=ABC, scores=SCORES, labels=SAME)
    assert apply_postprocess("mask", **kw)[0].tolist() == [0, 2]
    assert apply_postprocess("fast", **kw)[0].tolist() == [0, 2]
    keep, scores = apply_postprocess("none", **kw, max_per_img=2)
    assert keep.tolist() == [0, 1] and scores.tolist() == pytest.approx([0.9, 0.8])
    # box: 10 x 10 masks, columns 0..5 and 1..6 -> boxes [0,0,5,9], [1,0,6,9], IoU 36 / 54
    m = torch.zeros(2, 10, 10, dtype=torch.bool)
    m[0, :, 0:6] = True
    m[1, :, 1:7] = True
    two = dict(masks=m, scores=torch.tensor([0.6, 0.9]), labels=torch.zeros(2, dtype=torch.int64))
    assert apply_postprocess("box", **two, box_iou_thr=0.6)[0].tolist() == [1]
    assert apply_postprocess("box", **two, box_iou_thr=0.7)[0].tolist() == [1, 0]
    boxes = torch.tensor([[0.0, 0, 5, 9], [50, 50, 60, 60]])
    assert apply_postprocess("box", **two, boxes=boxes)[0].tolist() == [1, 0]


@pytest.mark.parametrize("kind", POSTPROCESS_KINDS)
def test_apply_postprocess_empty(kind):
    keep, scores = apply_postprocess(kind, masks=torch.zeros(0, 4, 4, dtype=torch.bool), scores=torch.zeros(0),
                                     labels=torch.zeros(0, dtype=torch.int64))
    assert keep.shape == (0,) and keep.dtype == torch.int64 and scores.shape == (0,)


def test_apply_postprocess_unknown_kind():
    with pytest.raises(ValueError, match="matrix_linear"):
        apply_postprocess("soft", masks=ABC, scores=SCORES, labels=SAME)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(50, 32, 32, generator=g) > 0.5
    scores = torch.rand(50, generator=g).sort(descending=True).values
    labels = torch.randint(0, 3, (50,), generator=g)
    for kind in POSTPROCESS_KINDS:
        k_cpu, s_cpu = apply_postprocess(kind, masks=masks, scores=scores, labels=labels)
        k_gpu, s_gpu = apply_postprocess(kind, masks=masks.cuda(), scores=scores.cuda(), labels=labels.cuda())
        assert k_gpu.device.type == "cuda"
        torch.testing.assert_close(s_gpu.cpu(), s_cpu)


def _matrix_nms_before_2026_12(masks, labels, scores, kernel="gaussian", sigma=2.0, mask_area=None):
    """The dense Matrix NMS as it was before the per-class CPU path (the reference for identical outputs)."""
    n = scores.shape[0]
    flat = masks.flatten(1).float()
    area = flat.sum(1) if mask_area is None else mask_area.float()
    inter = flat @ flat.T
    union = area[:, None] + area[None, :] - inter
    same_class = labels[:, None] == labels[None, :]
    iou = (inter / union.clamp_min(1e-6) * same_class).triu(diagonal=1)
    comp = iou.max(dim=0).values
    comp_rows = comp[:, None].expand(n, n)
    if kernel == "gaussian":
        ratio = torch.exp(-sigma * (iou**2 - comp_rows**2))
    else:
        ratio = (1.0 - iou) / (1.0 - comp_rows).clamp_min(1e-6)
    return scores * ratio.min(dim=0).values


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("num_masks,num_classes", [(1, 1), (7, 1), (60, 3), (300, 20), (500, 5)])
def test_matrix_nms_matches_the_dense_implementation_on_random_inputs(kernel, num_masks, num_classes):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.bench_nms import make_masks
    for seed in range(3):
        masks, _, scores = make_masks(num_masks, 48, seed=seed)
        labels = torch.randint(0, num_classes, (num_masks,), generator=torch.Generator().manual_seed(seed))
        sigma = 0.5 + seed
        got = matrix_nms(masks, labels, scores, kernel=kernel, sigma=sigma)
        want = _matrix_nms_before_2026_12(masks, labels, scores, kernel=kernel, sigma=sigma)
        assert got.dtype == want.dtype and torch.equal(got, want), (seed, (got - want).abs().max())
        area = masks.flatten(1).sum(1)
        torch.testing.assert_close(matrix_nms(masks.float(), labels, scores, kernel=kernel, sigma=sigma,
                                              mask_area=area), want, rtol=0, atol=0)
