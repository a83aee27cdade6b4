"""CASNet: the grouping (section III.C) as a pure function, targets, losses, predict, oracle, modes."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from harness.panoptic import pq_compute
from methods import METHODS, Targets, build_method, method_config
from methods.casnet import (
    IGNORE,
    CASNet,
    casnet_group,
    casnet_targets,
    distances_to_boxes,
)

T = 3  # thing classes in the small models below


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is faster and does not fight the other processes' threads."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_cfg(**overrides):
    base = dict(num_classes=T, backbone="resnet_tiny", fpn_channels=8, fuse_channels=8, head_channels=8,
                head_convs=1, num_groups=4)
    return method_config("casnet", **{**base, **overrides})


def make_targets(h: int, w: int, boxes: list[tuple[int, int, int, int]], labels: list[int]) -> Targets:
    masks = torch.zeros((len(boxes), h, w), dtype=torch.bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        masks[k, y1:y2, x1:x2] = True
    return Targets(masks, torch.tensor(labels, dtype=torch.long),
                   torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))


# ---------------------------------------------------------------------------------------------
# casnet_group
def random_group_inputs(seed: int, class_specific: bool):
    gen = torch.Generator().manual_seed(seed)
    h, w = (int(v) for v in torch.randint(5, 24, (2,), generator=gen))
    # labels 0..2 things, 3..4 background / stuff, some 255
    sem_labels = torch.randint(0, 5, (h, w), generator=gen)
    sem_labels[torch.rand((h, w), generator=gen) < 0.1] = IGNORE
    sem_probs = torch.rand((5, h, w), generator=gen).softmax(0)
    xy = torch.rand((2, h, w), generator=gen) * torch.tensor([w, h]).view(2, 1, 1)
    wh = torch.rand((2, h, w), generator=gen) * 8
    boxes = torch.cat([xy, xy + wh])
    box_prob = torch.rand((T, h, w) if class_specific else (h, w), generator=gen) ** 4
    if class_specific:  # one class has no seed at all, so its pixels must stay unassigned
        box_prob[seed % T] *= 0.4
    return sem_labels, sem_probs, boxes, box_prob


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("class_specific", [True, False])
@pytest.mark.parametrize("use_nms", [True, False])
def test_group_instances_are_disjoint_and_cover_the_seeded_thing_region(seed, class_specific, use_nms):
    sem_labels, sem_probs, boxes, box_prob = random_group_inputs(seed, class_specific)
    thing_ids, seed_thr = [0, 1, 2], 0.5
    out = casnet_group(sem_labels, sem_probs, boxes, box_prob, thing_ids, seed_thr, 0.5, use_nms=use_nms)
    h, w = sem_labels.shape
    count = torch.zeros((h, w), dtype=torch.long)
    for mask, label, score in out:
        assert mask.dtype == torch.bool and mask.shape == (h, w)
        assert mask.any(), "a seed without supporting pixels must be dropped"
        assert bool((sem_labels[mask] == label).all()), "an instance leaves its class region"
        assert 0.0 <= score <= 1.0
        count += mask
    assert int(count.max()) <= 1, "instances overlap"
    # Dropped pixels are exactly those of thing classes without any seed (no box_prob > seed_thr
    # for that class); NMS always keeps a class's best seed, so NMS never removes a class.
    probs = box_prob if class_specific else box_prob.expand(T, h, w)
    seeded = [c for c in thing_ids if bool((probs[c] > seed_thr).any())]
    expected = torch.isin(sem_labels, torch.tensor(seeded, dtype=sem_labels.dtype))
    assert torch.equal(count.bool(), expected)
    if class_specific:
        assert (seed % T) not in seeded  # the un-seeded class really is exercised
    for c in thing_ids:  # at most one instance per kept seed
        assert sum(1 for _, label, _ in out if label == c) <= int((probs[c] > seed_thr).sum())


def strip_inputs():
    """A 1 x 8 strip of class 0: pixels 0-3 predict box A, pixels 4-7 box B."""
    sem_labels = torch.zeros((1, 8), dtype=torch.long)
    boxes = torch.zeros((4, 1, 8))
    boxes[:, 0, :4] = torch.tensor([0.0, 0.0, 4.0, 1.0])[:, None]
    boxes[:, 0, 4:] = torch.tensor([4.0, 0.0, 8.0, 1.0])[:, None]
    box_prob = torch.zeros((1, 8))
    box_prob[0, 1], box_prob[0, 6] = 0.9, 0.8
    return sem_labels, boxes, box_prob


def test_group_two_instances_by_hand():
    sem_labels, boxes, box_prob = strip_inputs()
    sem_probs = torch.zeros((2, 1, 8))
    sem_probs[0] = torch.tensor([1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 1.0, 0.6])
    out = casnet_group(sem_labels, sem_probs, boxes, box_prob, [0], 0.5, 0.5)
    assert len(out) == 2
    (m1, l1, s1), (m2, l2, s2) = out
    assert m1[0].tolist() == [True] * 4 + [False] * 4 and m2[0].tolist() == [False] * 4 + [True] * 4
    assert (l1, l2) == (0, 0)
    assert s1 == pytest.approx(0.9 * 0.75) and s2 == pytest.approx(0.8 * 0.9)  # prob x mean sem prob
    out_prob = casnet_group(sem_labels, sem_probs, boxes, box_prob, [0], 0.5, 0.5, score_mode="prob")
    assert [s for _, _, s in out_prob] == pytest.approx([0.9, 0.8])


def test_group_drops_a_seed_that_wins_no_pixel():
    sem_labels, boxes, box_prob = strip_inputs()
    sem_labels = torch.cat([sem_labels, torch.full((1, 8), 7)])  # a second row of background
    boxes = torch.cat([boxes, torch.zeros((4, 1, 8))], dim=1)
    boxes[:, 1, 0] = torch.tensor([100.0, 100.0, 110.0, 110.0])  # far away box, overlaps nothing
    box_prob = torch.cat([box_prob, torch.zeros((1, 8))])
    box_prob[1, 0] = 0.95  # the highest seed, but every class-0 pixel has IoU > 0 with A or B
    out = casnet_group(sem_labels, None, boxes, box_prob, [0], 0.5, 0.5)
    assert len(out) == 2
    assert [s for _, _, s in out] == pytest.approx([0.9, 0.8])  # no probs -> score = box prob


def test_group_class_without_seeds_leaves_pixels_unassigned():
    sem_labels, boxes, box_prob = strip_inputs()
    sem_labels[0, 6:] = 1
    box_prob = torch.stack([box_prob, torch.zeros_like(box_prob)])  # class 1 has no seed
    out = casnet_group(sem_labels, None, boxes, box_prob, [0, 1], 0.5, 0.5)
    union = torch.zeros((1, 8), dtype=torch.bool)
    for m, label, _ in out:
        assert label == 0
        union |= m
    # Seeds are not restricted to their class region: the class-0 seed at pixel 6 (box B) still
    # collects the class-0 pixels 4, 5; the class-1 pixels 6, 7 have no class-1 seed -> unassigned.
    assert len(out) == 2 and out[1][0][0].tolist() == [False] * 4 + [True] * 2 + [False] * 2
    assert union[0].tolist() == [True] * 6 + [False] * 2


@pytest.mark.parametrize("tie_iou_eps,expected_score", [(0.05, 0.8), (0.2, 0.9)])
def test_group_near_ties_go_to_the_nearest_centre(tie_iou_eps, expected_score):
    # pixel 0: seed S1 = [-0.4, -0.4, 4.4, 4.4] (IoU with P 0.694, same centre as P), background;
    # pixel 1: seed S2 = [0, 0, 4, 4.8] (IoU 0.833, centre 0.4 away), background;
    # pixel 2: class 0 with box P = [0, 0, 4, 4].  Within 0.05 S2 wins on IoU; within 0.2 both
    # are near-ties and S1, the nearer centre, wins.
    sem_labels = torch.tensor([[9, 9, 0]])
    boxes = torch.tensor([[-0.4, 0.0, 0.0], [-0.4, 0.0, 0.0], [4.4, 4.0, 4.0], [4.4, 4.8, 4.0]]).view(4, 1, 3)
    box_prob = torch.tensor([[0.9, 0.8, 0.0]])
    out = casnet_group(sem_labels, None, boxes, box_prob, [0], 0.5, 0.9, tie_iou_eps=tie_iou_eps)
    assert len(out) == 1
    assert out[0][0].tolist() == [[False, False, True]]
    assert out[0][2] == pytest.approx(expected_score)


def test_group_without_nms_splits_one_object_among_all_its_seeds():
    # One 4 x 4 object; each pixel predicts about the object's box [0, 0, 4, 4] (shifted by its offset from the
    # centre / 8, a slightly noisy regression as a trained head gives) and the 4 corner pixels are seeds (box
    # probability 0.9).  With seed NMS (IoU 0.5) the 4 seed boxes (pairwise IoU >= 0.70) collapse to one and the
    # object is one instance of 16 pixels.  Without NMS all 4 seeds stand and each pixel votes for the seed whose
    # box matches its own best: the object is cut into its 4 quadrants (mask IoU 0.25 with the object each).
    # This is why CASNet's "none" post-processing scores ~0 AP (real_pennfudan: 100 masks per image, median 4 px).
    h = w = 4
    sem_labels = torch.zeros((h, w), dtype=torch.long)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    dx, dy = (xs - 1.5) / 8, (ys - 1.5) / 8
    boxes = torch.stack([dx, dy, 4 + dx, 4 + dy])
    box_prob = torch.zeros((h, w))
    box_prob[0, 0] = box_prob[0, 3] = box_prob[3, 0] = box_prob[3, 3] = 0.9
    with_nms = casnet_group(sem_labels, None, boxes, box_prob, [0], 0.5, 0.5, use_nms=True)
    assert len(with_nms) == 1 and int(with_nms[0][0].sum()) == 16
    without = casnet_group(sem_labels, None, boxes, box_prob, [0], 0.5, 0.5, use_nms=False)
    assert len(without) == 4
    assert sorted(int(m.sum()) for m, _, _ in without) == [4, 4, 4, 4]


def test_group_rejects_bad_shapes():
    sem_labels, boxes, box_prob = strip_inputs()
    with pytest.raises(ValueError, match="boxes_per_pixel"):
        casnet_group(sem_labels, None, boxes[:3], box_prob, [0], 0.5, 0.5)
    with pytest.raises(ValueError, match="box_prob"):
        casnet_group(sem_labels, None, boxes, torch.zeros((2, 1, 8)), [0], 0.5, 0.5)


def test_distances_to_boxes():
    dist = torch.tensor([1.0, 2.0, 3.0, -1.0]).view(4, 1, 1).expand(4, 2, 2)
    b = distances_to_boxes(dist, stride=4, offset=2)
    # location (i=1, j=0) -> (x, y) = (2, 6); negative distance clamped to 0
    assert b[:, 1, 0].tolist() == [2 - 4, 6 - 8, 2 + 12, 6]


# ---------------------------------------------------------------------------------------------
# targets
def test_targets_by_hand():
    t = make_targets(16, 16, [(4, 4, 12, 12)], [1])
    sem_t, dist_t, owned, prob_t, valid = casnet_targets(t, None, (5, 5), num_things=2, mode="instance")
    # locations 2, 6, 10, 14 (px); the 5th row / column is padding
    assert valid.sum() == 16 and not valid[4].any() and not valid[:, 4].any()
    assert (sem_t[~valid] == IGNORE).all()
    inner = torch.zeros((5, 5), dtype=torch.bool)
    inner[1:3, 1:3] = True
    assert torch.equal(sem_t[inner], torch.ones(4, dtype=torch.long))
    assert (sem_t[valid & ~inner] == 2).all()  # background = T
    # centre (8, 8), radius 1.5 * 4 = 6 px, clipped to the box -> locations 6 and 10
    assert torch.equal(prob_t[1].bool(), inner) and not prob_t[0].any()
    assert torch.equal(owned, inner)
    # location (6, 6): l = t = 2, r = b = 6 px -> / 4
    assert dist_t[:, 1, 1].tolist() == [0.5, 0.5, 1.5, 1.5]
    assert dist_t[:, 2, 2].tolist() == [1.5, 1.5, 0.5, 0.5]


def test_targets_smallest_instance_owns_overlaps_and_sem_seg_modes():
    t = make_targets(16, 16, [(0, 0, 16, 16), (4, 4, 8, 8)], [0, 1])
    sem_t, dist_t, owned, prob_t, _ = casnet_targets(t, None, (4, 4), num_things=2, mode="instance")
    assert sem_t[1, 1] == 1 and sem_t[0, 0] == 0  # location (6, 6) is in both masks -> smaller one
    assert dist_t[:, 1, 1].tolist() == [0.5, 0.5, 0.5, 0.5]
    assert prob_t[1, 1, 1] == 1 and prob_t[0, 1, 1] == 0  # the big one's centre area loses (6, 6)
    sem = torch.full((16, 16), 3)  # stuff class 3 = T + 1 (S = 2)
    sem[:4] = IGNORE
    sem_i = casnet_targets(t, sem, (4, 4), num_things=2, mode="instance", num_stuff=2)[0]
    sem_p = casnet_targets(t, sem, (4, 4), num_things=2, mode="panoptic", num_stuff=2)[0]
    assert (sem_i[1:] == 2).all() and (sem_p[1:] == 3).all()  # stuff -> background in instance mode
    assert (sem_i[0] == IGNORE).all() and (sem_p[0] == IGNORE).all()
    with pytest.raises(ValueError, match="needs the semantic map"):
        casnet_targets(t, None, (4, 4), num_things=2, mode="panoptic", num_stuff=2)
    with pytest.raises(ValueError, match="outside"):
        casnet_targets(t, torch.full((16, 16), 9), (4, 4), num_things=2, mode="panoptic", num_stuff=2)


def test_targets_positive_fallback_for_an_instance_whose_centre_lies_on_an_occluder():
    # A (label 0): an L-shaped visible mask (top strip y < 4, left strip x < 4), box (0, 0, 24, 26), centre (12, 13);
    # B (label 1): the occluder x, y in [4, 24), which covers A's whole centre area (x in 6..18, y in 10..18)
    masks = torch.zeros((2, 32, 32), dtype=torch.bool)
    masks[0, :4, :24] = True
    masks[0, :26, :4] = True
    masks[1, 4:24, 4:24] = True
    t = Targets(masks, torch.tensor([0, 1]), torch.tensor([[0.0, 0, 24, 26], [4, 4, 24, 24]]))
    n_none: list = []
    prob_none = casnet_targets(t, None, (8, 8), num_things=2, mode="instance", positives=n_none,
                               positive_fallback="none")[3]
    assert n_none[0].tolist() == [0, 9] and not prob_none[0].any()  # A: no positive at all
    n_fb: list = []
    _, dist_t, owned, prob_t, _ = casnet_targets(t, None, (8, 8), num_things=2, mode="instance", positives=n_fb)
    assert n_fb[0].tolist() == [1, 9]
    # A's owned locations: (x, 2) and (2, y); nearest to (12, 13) is (2, 14) (squared distance 101), cell (3, 0)
    assert prob_t[0].nonzero().tolist() == [[3, 0]] and torch.equal(prob_t[1], prob_none[1])
    assert owned[3, 0] and dist_t[:, 3, 0].tolist() == [0.5, 3.5, 5.5, 3.0]  # A's box: its seed reads A's box
    with pytest.raises(ValueError, match="positive_fallback"):
        small_cfg(positive_fallback="centre")


def test_positive_fallback_default_moved_without_reusing_the_runs_of_the_old_rule():
    """The default moved from "none" to "nearest_owned" (2026-12-05).  A run at "none" keeps the hash it was
    recorded with before the field existed (field left out of the hash), the new default is hashed with the field
    so it never reuses such a run, and a config saved before the field existed reads back as "none"."""
    from dataclasses import replace

    from harness.config import from_flat, make_config, to_flat, train_hash
    new = make_config("casnet", "quick", dataset="shapes-street")
    old = make_config("casnet", "quick", dataset="shapes-street", overrides=["method.positive_fallback=none"])
    assert new.method.positive_fallback == "nearest_owned" and train_hash(old) != train_hash(new)
    assert train_hash(replace(old, method=replace(old.method, positive_fallback="nearest_owned"))) == train_hash(new)
    saved_before = {k: v for k, v in to_flat(old).items() if k != "method.positive_fallback"}
    assert from_flat(saved_before).method.positive_fallback == "none"
    assert train_hash(from_flat(saved_before)) == train_hash(old)
    assert from_flat(to_flat(new)) == new
    from methods.casnet import CASNetConfig
    assert CASNetConfig.HASH_OMIT_AT_VALUE == {"positive_fallback": "none"}


# ---------------------------------------------------------------------------------------------
# the method
def test_registered_and_profiles():
    assert METHODS["casnet"] is CASNet and CASNet.uses_sem_seg
    from harness.config import make_config

    cfg = make_config("casnet", "smoke").method
    assert cfg.fpn_channels == 32 and cfg.backbone == "resnet_narrow" and cfg.prob_loss == "focal"
    # every method gets the same FPN / head widths at a profile (CASNet had half of them at quick until 2026-12-02)
    for profile in ("smoke", "quick"):
        widths = {m: make_config(m, profile).method.fpn_channels for m in ("solov2", "condinst", "uniinst", "casnet")}
        assert len(set(widths.values())) == 1, (profile, widths)
        c = make_config("casnet", profile).method
        assert c.fuse_channels == c.head_channels == c.fpn_channels
    with pytest.raises(ValueError, match="prob_loss"):
        small_cfg(prob_loss="mse")
    with pytest.raises(ValueError, match="num_stuff"):  # resolved from the dataset, checked when built
        CASNet(small_cfg(mode="panoptic"))
    with pytest.raises(ValueError, match="semantic_checkpoint"):
        small_cfg(train_mode="separated")
    with pytest.raises(ValueError, match="postprocess"):
        small_cfg(postprocess="matrix")


def test_losses_finite_with_an_empty_image_and_backward():
    torch.manual_seed(0)
    model = build_method(small_cfg())
    images = torch.randn(2, 3, 64, 64)
    targets = [make_targets(64, 48, [(8, 8, 30, 40), (20, 30, 44, 60)], [0, 2]), make_targets(40, 64, [], [])]
    losses = model(images, targets)
    assert set(losses) == {"loss_sem", "loss_common", "loss_prob"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    sum(losses.values()).backward()
    for head in (model.sem_head, model.common_head, model.prob_head):
        g = head[-1].weight.grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    model.zero_grad()
    # the harness passes sem_segs=[None, ...] for datasets without stuff: same targets as without
    again = model(images, targets, sem_segs=[None, None])
    assert all(torch.equal(again[k], losses[k]) for k in losses)
    empty = model(images, [make_targets(64, 64, [], []), make_targets(32, 32, [], [])])
    assert empty["loss_common"].item() == 0.0  # no instance pixel
    assert all(torch.isfinite(v) for v in empty.values())
    sum(empty.values()).backward()


@pytest.mark.parametrize("full_res", [True, False])
def test_predict_valid_instances_for_two_sizes(full_res):
    torch.manual_seed(0)
    model = build_method(small_cfg(seed_thr=0.0, max_per_img=20, nms_pre=100,
                                   use_full_res_grouping=full_res)).eval()
    images = torch.randn(2, 3, 64, 64)
    outs = model.predict(images, [(64, 48), (40, 64)], [(128, 96), (30, 50)])
    assert len(outs) == 2
    for inst, size in zip(outs, [(128, 96), (30, 50)]):
        assert inst.masks.dtype == torch.bool and tuple(inst.masks.shape[1:]) == size
        assert 0 < len(inst) <= 20
        assert inst.labels.dtype == torch.int64 and bool(((inst.labels >= 0) & (inst.labels < T)).all())
        assert bool(((inst.scores >= 0) & (inst.scores <= 1)).all())
        assert torch.equal(inst.scores, inst.scores.sort(descending=True).values)
        assert int(inst.masks.sum(0).max()) <= 1 and bool(inst.masks.flatten(1).any(1).all())


@pytest.mark.parametrize("full_res", [True, False])
def test_oracle_mode_uses_the_given_semantics(full_res):
    torch.manual_seed(0)
    model = build_method(small_cfg(seed_thr=0.0, use_gt_semantics=True, use_full_res_grouping=full_res,
                                   max_per_img=10000, nms_pre=100)).eval()
    assert model.uses_gt_semantics
    gt = torch.full((32, 48), T + 1)  # stuff -> background in instance mode
    gt[4:20, 8:24] = 0
    gt[16:32, 28:48] = 2
    gt[0:4, :] = IGNORE
    images = torch.randn(1, 3, 32, 64)
    model.set_ground_truth_semantics([gt])
    (inst,) = model.predict(images, [(32, 48)])
    union = inst.masks.any(0)
    # every thing class has seeds (seed_thr 0): the instances tile the GT thing region exactly
    assert torch.equal(union, gt < T)
    for m, label in zip(inst.masks, inst.labels):
        assert bool((gt[m] == label).all())
    assert set(inst.labels.tolist()) == {0, 2}
    with pytest.raises(RuntimeError, match="set_ground_truth_semantics"):
        model.predict(images, [(32, 48)])  # consumed by the previous call
    model.set_ground_truth_semantics([gt[:16]])
    with pytest.raises(ValueError, match="image #0"):
        model.predict(images, [(32, 48)])


def test_panoptic_mode_train_and_oracle_panoptic_output():
    torch.manual_seed(0)
    s = 2
    model = build_method(small_cfg(mode="panoptic", num_stuff=s, seed_thr=0.0, use_gt_semantics=True,
                                   max_per_img=10000, nms_pre=100))
    gt = torch.full((32, 48), T)  # stuff T ("road") ...
    gt[:10] = T + 1  # ... and T + 1 ("sky")
    gt[12:28, 4:20] = 1
    gt[30:, :] = IGNORE
    targets = [make_targets(32, 48, [(4, 12, 20, 28)], [1])]
    images = torch.randn(1, 3, 32, 64)
    losses = model(images, targets, sem_segs=[gt])
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.sem_head[-1].out_channels == T + s
    model.eval()
    model.set_ground_truth_semantics([gt])
    ((pan, segments),) = model.predict_panoptic(images, [(32, 48)], [(64, 96)])
    assert pan.shape == (64, 96) and pan.dtype == torch.int64
    assert sorted(s_["id"] for s_ in segments) == sorted(set(torch.unique(pan).tolist()) - {0})
    for s_ in segments:
        assert s_["isthing"] == (s_["category"] < T) and 0.0 <= s_["score"] <= 1.0
    stuff = {s_["category"]: s_["id"] for s_ in segments if not s_["isthing"]}
    assert set(stuff) == {T, T + 1}
    gt_big = gt.repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert torch.equal(pan == stuff[T], gt_big == T)
    assert torch.equal(pan == 0, gt_big == IGNORE)  # thing pixels all grouped (seed_thr 0)
    # PQ of the oracle output against the GT panoptic map: stuff is perfect
    gt_pan = torch.zeros_like(gt_big)
    gt_pan[gt_big == T], gt_pan[gt_big == T + 1], gt_pan[gt_big == 1] = 1, 2, 3
    gt_segs = [{"id": 1, "category": T}, {"id": 2, "category": T + 1}, {"id": 3, "category": 1}]
    cats = [{"id": c, "isthing": c < T} for c in range(T + s)]
    r = pq_compute([(gt_pan, gt_segs, pan, segments)], cats, backend="builtin")
    assert r["PQ_stuff"] == pytest.approx(1.0) and r["mIoU"] == pytest.approx(1.0)


def test_separated_mode_takes_semantics_from_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    sem_model = build_method(small_cfg()).eval()
    path = tmp_path / "semantic.pth"
    # the harness's resumable checkpoint layout (needs weights_only=False because of numpy RNG state)
    torch.save({"model": sem_model.state_dict(), "rng": {"numpy": np.random.get_state()}}, path)
    torch.manual_seed(1)
    model = build_method(small_cfg(train_mode="separated", semantic_checkpoint=str(path))).train()
    assert not model.semantic_model.training  # frozen copy stays in eval mode
    assert not any(p.requires_grad for p in model.semantic_model.parameters())
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = sem_model.forward_test(images).sem_logits
        model.eval()
        raw = model.forward_test(images)
        own = model.sem_head(model.fuse(model.fpn(model.backbone(images))[:4]))
    assert torch.allclose(raw.sem_logits, expected)
    assert not torch.allclose(raw.sem_logits, own)  # the instance model's own head is not used
    with pytest.raises(FileNotFoundError, match="semantic_checkpoint"):
        build_method(small_cfg(train_mode="separated", semantic_checkpoint=str(tmp_path / "nope.pth")))
    torch.save(build_method(small_cfg(mode="panoptic", num_stuff=2)).state_dict(), tmp_path / "pan.pth")
    with pytest.raises(RuntimeError, match="does not fit"):
        build_method(small_cfg(train_mode="separated", semantic_checkpoint=str(tmp_path / "pan.pth")))


def test_config_replace_keeps_validation():
    cfg = small_cfg()
    with pytest.raises(ValueError, match="num_groups"):
        replace(cfg, head_channels=10)
