"""SOLOv2: branch shapes, hand-built target assignment, losses, AML, inference contract."""
from __future__ import annotations

import importlib.util
import math
from dataclasses import replace

import pytest
import torch

import methods
from methods.base import Instances, Targets, sum_losses
from methods.config import COMMON_PROFILE_OVERRIDES
from methods.postprocess import POSTPROCESS_KINDS
from methods.solov2 import (
    SOLOv2,
    SOLOv2Config,
    _lazy,
    assign_grid_targets,
    centers_of_mass,
    coord_features,
    masks_at_stride4,
    points_nms,
    split_levels,
)

# the hand-computed assignments below are on a 128-px frame with the quick profile's grids and ranges
QUICK = SOLOv2Config.PROFILE_OVERRIDES["quick"]


@pytest.fixture(autouse=True)
def one_thread():
    """The CPU is shared: one intra-op thread is much faster than two contended ones."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def smoke_cfg(**kw) -> SOLOv2Config:
    over = {**COMMON_PROFILE_OVERRIDES["smoke"], **SOLOv2Config.PROFILE_OVERRIDES["smoke"], "num_classes": 3, **kw}
    return methods.method_config("solov2", **over)


def square_targets(h: int, w: int, squares: list[tuple[int, int, int, int]], labels: list[int]) -> Targets:
    """squares: (x1, y1, x2, y2) half-open pixel ranges -> Targets in an h x w frame."""
    masks = torch.zeros(len(squares), h, w, dtype=torch.bool)
    for i, (x1, y1, x2, y2) in enumerate(squares):
        masks[i, y1:y2, x1:x2] = True
    boxes = torch.tensor(squares, dtype=torch.float32).reshape(-1, 4)
    return Targets(masks, torch.tensor(labels, dtype=torch.int64), boxes)


# ---------------------------------------------------------------------------------------------
def test_registered_and_config_validation():
    assert methods.METHODS["solov2"] is SOLOv2
    cfg = methods.method_config("solov2")
    assert cfg.num_grids == (40, 36, 24, 16, 12) and cfg.scale_ranges[0] == (1, 96)
    assert cfg.head_channels == 512 and cfg.postprocess == "matrix" and not cfg.use_aml
    with pytest.raises(ValueError, match="num_groups"):
        smoke_cfg(head_channels=30)
    with pytest.raises(ValueError, match="5 levels"):
        smoke_cfg(num_grids=(8, 6))
    with pytest.raises(ValueError, match="num_classes"):
        SOLOv2(replace(smoke_cfg(), num_classes=0))


def test_profiles_through_harness_config():
    from harness.config import make_config

    for profile in ("smoke", "quick"):
        cfg = make_config("solov2", profile).method
        assert cfg.num_grids == SOLOv2Config.PROFILE_OVERRIDES[profile]["num_grids"]
    paper = make_config("solov2", "paper").method
    assert paper.backbone == "resnet50" and paper.num_grids == (40, 36, 24, 16, 12)


def test_set_overrides_and_flat_round_trip():
    import json

    from harness.config import from_flat, make_config, to_flat

    cfg = make_config("solov2", "quick", overrides=[
        "method.scale_ranges=((1,20),(10,40),(20,80),(40,160),(80,2048))", "method.use_aml=true",
        "method.aml_centroid_units=normalized"])
    assert cfg.method.scale_ranges[0] == (1, 20) and cfg.method.use_aml
    assert from_flat(json.loads(json.dumps(to_flat(cfg)))) == cfg  # lists come back as tuples
    with pytest.raises(ValueError, match="mask_px"):
        make_config("solov2", "quick", overrides=["method.aml_centroid_units=cm"])


def test_building_blocks():
    x = torch.zeros(2, 5, 3, 4)
    c = coord_features(x)
    assert c.shape == (2, 2, 3, 4)
    assert c[0, 0, 0].tolist() == pytest.approx([-1, -1 / 3, 1 / 3, 1]) and c[0, 1, :, 0].tolist() == [-1, 0, 1]
    feats = [torch.zeros(1, 4, s, s) for s in (32, 16, 8, 4, 2)]
    assert [tuple(f.shape[-2:]) for f in split_levels(feats)] == [(16, 16), (16, 16), (8, 8), (4, 4), (4, 4)]


def test_points_nms_keeps_local_maxima():
    heat = torch.tensor([[[[0.1, 0.5, 0.2], [0.3, 0.2, 0.4], [0.0, 0.6, 0.1]]]])
    out = points_nms(heat)[0, 0]
    # max_pool(k=2, s=1, pad=1)[:-1, :-1]: a cell survives iff it is the max of the 2x2 window of
    # which it is the bottom-right corner (reference behaviour), e.g. 0.4 loses to 0.5 up-left of it
    expected = torch.tensor([[0.1, 0.5, 0.0], [0.3, 0.0, 0.0], [0.0, 0.6, 0.0]])
    torch.testing.assert_close(out, expected)


def test_branch_output_shapes():
    cfg = smoke_cfg()
    model = SOLOv2(cfg).eval()
    with torch.no_grad():
        raw = model.forward_test(torch.zeros(2, 3, 64, 96))
    for s, c, k in zip(cfg.num_grids, raw.cate_logits, raw.kernel_preds):
        assert c.shape == (2, 3, s, s) and k.shape == (2, cfg.mask_feat_channels, s, s)
    assert raw.mask_feats.shape == (2, cfg.mask_feat_channels, 16, 24)
    # category prior 0.01
    assert torch.sigmoid(raw.cate_logits[0]).mean().item() == pytest.approx(0.01, rel=0.2)


# ---------------------------------------------------------------------------------------------
def _assign(t: Targets, **kw):
    args = dict(num_classes=3, num_grids=QUICK["num_grids"], scale_ranges=QUICK["scale_ranges"], sigma=0.2,
                pad_size=(128, 128))
    args.update(kw)
    return assign_grid_targets(t.boxes, centers_of_mass(t.masks), t.labels, t.masks.flatten(1).any(1), **args)


def test_assignment_one_square_by_hand():
    # 32 x 32 square, pixels 40..71: centre of mass (56, 56), sqrt(area) 32 -> levels 1 (12..48) and 2 (24..96)
    t = square_targets(128, 128, [(40, 40, 72, 72)], [2])
    assert centers_of_mass(t.masks).tolist() == [[56.0, 56.0]]
    g = _assign(t)
    # level 1: S = 12, cell 10.67 px; centre cell 5; region 56 +- 3.2 -> cells 4..5 per axis
    #   -> 256 + {4*12+4, 4*12+5, 5*12+4, 5*12+5}; level 2: S = 8, cell 16 px, 56 +- 3.2 -> cell 3 only
    #   -> 256 + 144 + 3*8+3
    expected = [308, 309, 320, 321, 427]
    assert sorted(g.pos_cells.tolist()) == expected
    assert g.pos_objects.tolist() == [0] * 5
    assert g.labels.shape == (sum(s * s for s in QUICK["num_grids"]),)
    assert (g.labels[expected] == 2).all() and (g.labels != 3).sum() == 5


def test_assignment_clamps_to_3x3():
    t = square_targets(128, 128, [(40, 40, 72, 72)], [0])
    g = _assign(t, sigma=2.0)  # half extent 32 px would reach 5 cells; clamped to centre +- 1
    lvl1 = sorted(c - 256 for c in g.pos_cells.tolist() if 256 <= c < 400)
    lvl2 = sorted(c - 400 for c in g.pos_cells.tolist() if 400 <= c < 464)
    assert lvl1 == [r * 12 + c for r in (4, 5, 6) for c in (4, 5, 6)]
    assert lvl2 == [r * 8 + c for r in (2, 3, 4) for c in (2, 3, 4)]


def test_assignment_scale_range_empty_mask_and_no_objects():
    t = square_targets(128, 128, [(0, 0, 10, 10), (50, 50, 150, 150)], [0, 1])
    t.masks[1] = False  # empty mask (cropped away): never assigned
    g = _assign(t)
    assert set(g.pos_objects.tolist()) == {0}
    assert all(c < 256 for c in g.pos_cells.tolist())  # sqrt(area) 10: level 0 only
    none = _assign(square_targets(128, 128, [], []))
    assert none.pos_cells.numel() == 0 and (none.labels == 3).all()


def test_shared_cell_overwrite_vs_cost():
    # squares centred at 56 and 60 share cell (5, 5) on level 1 and (3, 3) on level 2
    t = square_targets(128, 128, [(40, 40, 72, 72), (44, 44, 76, 76)], [0, 2])
    shared = [256 + 5 * 12 + 5, 400 + 3 * 8 + 3]
    g = _assign(t)
    assert g.labels[shared].tolist() == [2, 2]  # reference: the later object overwrites
    prefer_first = lambda cells, objs: objs.float()[None].expand(len(cells), -1)  # noqa: E731
    g = _assign(t, cost_fn=prefer_first)
    assert g.labels[shared].tolist() == [0, 0]
    owners = dict(zip(g.pos_cells.tolist(), g.pos_objects.tolist()))
    assert owners[shared[0]] == 0 and owners[shared[1]] == 0


def test_masks_at_stride4():
    m = torch.zeros(1, 6, 8, dtype=torch.bool)
    m[0, 0:4, 0:2] = True  # half of block (0, 0): 8 of 16 pixels -> 1
    m[0, 4:6, 4:8] = True  # 8 of the 16 pixels of block (1, 1) (block rows 4..7 padded) -> 1
    m[0, 0:1, 4:8] = True  # 4 of 16 -> 0
    out = masks_at_stride4(m, (2, 2))
    assert out.tolist() == [[[1.0, 0.0], [0.0, 1.0]]]


# ---------------------------------------------------------------------------------------------
def test_aml_cost_by_hand_picks_minimum_loss_owner():
    """Two objects claim the only cell; the cell predicts object 0's mask -> AML gives it to object 0."""
    # Eq. 2 as printed (linear dice) with mask-pixel centroids: the hand numbers below
    model = SOLOv2(smoke_cfg(use_aml=True, aml_dice_form="linear", aml_centroid_units="mask_px"))
    hm = wm = 4
    region_a = torch.zeros(hm, wm)
    region_a[:2, :2] = 1  # object 0 at stride 4: top-left 2 x 2
    region_b = torch.zeros(hm, wm)
    region_b[2:, 2:] = 1  # object 1: bottom-right 2 x 2
    feats = torch.stack([region_a, region_b, torch.ones(hm, wm)])  # (E=3, Hm, Wm)
    kern = torch.tensor([[40.0, 0.0, -20.0]])  # mask logits +20 on A, -20 elsewhere
    cate = torch.zeros(1, 3)  # (T=1, C=3) logits 0
    gt4 = torch.stack([region_a, region_b])
    cost_fn = model._aml_cost_fn(cate, kern, feats, gt4, torch.tensor([0, 1]))
    cost = cost_fn(torch.tensor([0]), torch.tensor([0, 1]))
    # L_cate at p = 0.5, C = 3: two negatives 0.75 * 0.25 * ln2 + one positive 0.25 * 0.25 * ln2
    l_cate = 0.4375 * math.log(2)
    # object 0: perfect mask, same centroid -> L_mask = 0; object 1: dice 1 - 1/9, centroids (1,1) vs (3,3)
    # -> epsilon = 8 / (0 + 1); L_mask = 8/9 + 8
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected = [sig(l_cate) + sig(0.0), sig(l_cate) + sig(3.0 * (8 / 9 + 8))]
    assert cost[0].tolist() == pytest.approx(expected, abs=1e-5)
    # end to end through the assignment: one level with a single cell over a 16 x 16 frame
    t = square_targets(16, 16, [(0, 0, 8, 8), (8, 8, 16, 16)], [0, 1])
    kw = dict(num_classes=3, num_grids=(1,), scale_ranges=((1, 2048),), sigma=0.2, pad_size=(16, 16))
    args = (t.boxes, centers_of_mass(t.masks), t.labels, torch.tensor([True, True]))
    assert assign_grid_targets(*args, **kw).pos_objects.tolist() == [1]  # default overwrite
    assert assign_grid_targets(*args, **kw, cost_fn=cost_fn).pos_objects.tolist() == [0]


# ---------------------------------------------------------------------------------------------
def _padded_batch():
    """Two images of different size in one padded 64 x 64 batch; the second has no instances."""
    torch.manual_seed(0)
    images = torch.zeros(2, 3, 64, 64)
    images[0, :, :, :] = torch.randn(3, 64, 64)
    images[1, :, :48, :40] = torch.randn(3, 48, 40)
    targets = [square_targets(64, 64, [(4, 4, 20, 24), (30, 10, 62, 50)], [0, 2]),
               square_targets(48, 40, [], [])]
    return images, targets, [(64, 64), (48, 40)]


@pytest.mark.parametrize("use_aml", [False, True])
def test_losses_finite_and_backward(use_aml):
    images, targets, _ = _padded_batch()
    model = SOLOv2(smoke_cfg(use_aml=use_aml))
    losses = model(images, targets)
    assert set(losses) == {"loss_cate", "loss_mask"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    assert losses["loss_mask"] > 0
    sum_losses(losses).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.head.kernel_pred.weight.grad.abs().sum() > 0


def test_no_instances_at_all():
    images, targets, _ = _padded_batch()
    model = SOLOv2(smoke_cfg())
    losses = model(images, [targets[1], targets[1]])
    assert torch.isfinite(losses["loss_cate"]) and losses["loss_cate"] > 0
    assert losses["loss_mask"].item() == 0.0
    sum_losses(losses).backward()
    assert model.head.cate_pred.bias.grad.abs().sum() > 0


def test_bad_targets_name_the_image():
    images, targets, _ = _padded_batch()
    bad = square_targets(64, 64, [(0, 0, 8, 8)], [7])
    with pytest.raises(ValueError, match="batch image 1.*labels"):
        SOLOv2(smoke_cfg())(images, [targets[0], bad])
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        SOLOv2(smoke_cfg())(images, targets[:1])


def _forced_detections(model: SOLOv2) -> None:
    """Make an untrained model produce candidates: category score 0.5, positive mask logits."""
    with torch.no_grad():
        model.head.cate_pred.bias.zero_()
        model.head.kernel_pred.bias.fill_(1.0)


@pytest.mark.parametrize("kind", [*POSTPROCESS_KINDS, "default"])
def test_predict_contract(kind):
    images, _, sizes = _padded_batch()
    model = SOLOv2(smoke_cfg(postprocess=kind, max_per_img=20)).eval()
    _forced_detections(model)
    orig = [(100, 90), (30, 25)]
    out = model.predict(images, sizes, orig)
    assert len(out) == 2
    for inst, (h0, w0) in zip(out, orig):
        assert isinstance(inst, Instances)
        assert 0 < len(inst) <= 20
        assert inst.masks.dtype == torch.bool and inst.masks.shape[1:] == (h0, w0)
        assert inst.scores.dtype == torch.float32 and inst.labels.dtype == torch.int64
        assert (inst.scores >= 0).all() and (inst.scores <= 1).all()
        assert (inst.scores[:-1] >= inst.scores[1:]).all()
        assert ((inst.labels >= 0) & (inst.labels < 3)).all()


def test_predict_untrained_is_empty_and_matrix_decays():
    images, _, sizes = _padded_batch()
    model = SOLOv2(smoke_cfg()).eval()
    out = model.predict(images, sizes)  # prior 0.01 < score_thr 0.1
    assert [len(o) for o in out] == [0, 0] and out[1].masks.shape == (0, 48, 40)
    _forced_detections(model)
    raw = model.forward_test(images)
    model.cfg = replace(model.cfg, postprocess="none", max_per_img=1000)
    plain = model.postprocess(raw, sizes, sizes)
    model.cfg = replace(model.cfg, postprocess="matrix")
    decayed = model.postprocess(raw, sizes, sizes)
    assert decayed[0].scores.max() <= plain[0].scores.max() + 1e-6
    assert len(decayed[0]) <= len(plain[0])


def test_tiny_overfit():
    torch.manual_seed(0)
    model = SOLOv2(smoke_cfg(num_classes=2))
    image = torch.zeros(1, 3, 64, 64)
    image[:, :, 16:40, 20:44] = 2.0
    target = square_targets(64, 64, [(20, 16, 44, 40)], [1])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        loss = sum_losses(model(image, [target]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
    out = model.eval().predict(image, [(64, 64)])[0]
    assert out.labels[0].item() == 1 and out.scores[0].item() > 0.5
    inter = (out.masks[0] & target.masks[0]).sum()
    union = (out.masks[0] | target.masks[0]).sum()
    assert inter / union > 0.8


# ---------------------------------------------------------------------------------------------
def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


@pytest.mark.skipif(_missing("methods.backbones.cspam"),
                    reason="methods/backbones/cspam.py (CSPAM backbone, another engineer) not written yet")
def test_toggle_cspam():
    images, targets, sizes = _padded_batch()
    model = SOLOv2(smoke_cfg(use_cspam=True))
    sum_losses(model(images, targets)).backward()
    assert len(model.eval().predict(images, sizes)) == 2


@pytest.mark.skipif(_missing("methods.necks.twfpn"),
                    reason="methods/necks/twfpn.py (TWFPN + CSMF, another engineer) not written yet")
def test_toggle_twfpn_csmf():
    images, targets, sizes = _padded_batch()
    cfg = smoke_cfg(use_twfpn_csmf=True)
    model = SOLOv2(cfg)
    raw = model.eval().forward_test(images)
    assert raw.mask_feats.shape == (2, cfg.mask_feat_channels, 16, 16)
    model.train()
    sum_losses(model(images, targets)).backward()


def test_toggle_missing_module_error():
    """A toggle whose module is absent fails at construction with an error naming the toggle."""
    with pytest.raises(ImportError, match="use_cspam=True needs methods.no_such_module"):
        _lazy("use_cspam", "methods.no_such_module", ["build_cspam_backbone"])
    assert _lazy("use_cspam", "methods.solov2", ["SOLOv2"]) == [SOLOv2]


def test_assignment_on_real_coco_centre_cells(shared_data):
    """Real COCO masks, reference grids: every object's centre cell on each of its levels is positive
    and owned by the object itself or by a later object (the reference overwrite rule)."""
    import numpy as np
    from pycocotools.coco import COCO

    coco = COCO(str(shared_data / "tiny_coco" / "annotations" / "instances_val2017.json"))
    cfg = methods.method_config("solov2", num_classes=80)
    checked = 0
    for img_id in sorted(coco.getImgIds())[:6]:
        info = coco.loadImgs(img_id)[0]
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id)) if not a["iscrowd"]]
        if not anns:
            continue
        masks = torch.from_numpy(np.stack([coco.annToMask(a) for a in anns])).bool()
        boxes = torch.tensor([[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in anns)])
        pad = ((info["height"] + 31) // 32 * 32, (info["width"] + 31) // 32 * 32)
        centers = centers_of_mass(masks)
        g = assign_grid_targets(boxes, centers, torch.arange(len(anns)) % 80, masks.flatten(1).any(1),
                                num_classes=80, num_grids=cfg.num_grids, scale_ranges=cfg.scale_ranges,
                                sigma=cfg.sigma, pad_size=pad)
        owner = dict(zip(g.pos_cells.tolist(), g.pos_objects.tolist()))
        assert (g.labels[g.pos_cells] == g.pos_objects % 80).all()
        size = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
        offset = 0
        for s, (lo, hi) in zip(cfg.num_grids, cfg.scale_ranges):
            for i in range(len(anns)):
                if masks[i].any() and lo <= size[i] <= hi:
                    cx = int(centers[i, 0] / (pad[1] / s))
                    cy = int(centers[i, 1] / (pad[0] / s))
                    cell = offset + cy * s + cx
                    assert owner.get(cell, -1) >= i, f"image {img_id} annotation {anns[i]['id']}"
                    checked += 1
            offset += s * s
    assert checked > 20
