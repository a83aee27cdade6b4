"""UniInst (methods/uniinst.py) and 3D Max Filtering (methods/dmf3d.py)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from method_helpers import check_instances, predict_with, two_image_batch

import methods
from harness.config import make_config
from methods.base import sum_losses
from methods.condinst import flatten_levels
from methods.dmf3d import MaxFiltering3D, group_norm, max_filter_3d
from methods.uniinst import UniInstConfig

NUM_CLASSES = 3


def _build(**overrides):
    torch.manual_seed(0)
    cfg = replace(make_config("uniinst", "smoke").method, num_classes=NUM_CLASSES, score_thr=0.0, **overrides)
    return methods.build_method(cfg)


@pytest.fixture(scope="module")
def model():
    return _build()


# ---------------------------------------------------------------------------------------------
# 3D Max Filtering
def test_max_filter_3d_spike_spreads_to_3x3x3_neighbourhood():
    feats = [torch.zeros(1, 1, 5, 5) for _ in range(4)]
    feats[1][0, 0, 2, 2] = 1.0
    out = max_filter_3d(feats)
    expect = torch.zeros(5, 5)
    expect[1:4, 1:4] = 1.0
    for lvl in (0, 1, 2):  # levels within depth distance 1 of the spike
        assert torch.equal(out[lvl][0, 0], expect)
    assert torch.equal(out[3][0, 0], torch.zeros(5, 5))  # two levels away: untouched


def test_max_filter_3d_takes_the_maximum_and_resizes_neighbours():
    fine = torch.zeros(1, 2, 8, 8)
    coarse = torch.full((1, 2, 4, 4), -1.0)
    coarse[0, 1] = 3.0  # channel 1 of the coarse level dominates its fine neighbour everywhere
    out = max_filter_3d([fine, coarse])
    assert [tuple(o.shape) for o in out] == [(1, 2, 8, 8), (1, 2, 4, 4)]
    assert torch.equal(out[0][0, 0], torch.zeros(8, 8))  # max(0, -1) = 0
    assert torch.equal(out[0][0, 1], torch.full((8, 8), 3.0))
    assert torch.equal(out[1][0, 0], torch.zeros(4, 4))  # the fine level (resized) lifts -1 to 0
    with pytest.raises(ValueError, match="odd"):
        max_filter_3d([fine], kernel_size=2)


def test_max_filtering_module_shapes_and_gradients():
    mod = MaxFiltering3D(16)
    feats = [torch.randn(2, 16, s, s, requires_grad=True) for s in (8, 4, 2, 1, 1)]
    out = mod(feats)
    assert [tuple(o.shape) for o in out] == [(2, 1, s, s) for s in (8, 4, 2, 1, 1)]
    sum(o.sum() for o in out).backward()
    assert mod.conv.weight.grad.abs().sum() > 0 and feats[0].grad is not None


def test_group_norm_keeps_eight_channels_per_group():
    assert group_norm(256).num_groups == 32 and group_norm(32).num_groups == 4 and group_norm(64).num_groups == 8


# ---------------------------------------------------------------------------------------------
# config
def test_defaults_and_profiles():
    cfg = make_config("uniinst", "paper").method
    assert (cfg.alpha, cfg.use_rerank, cfg.use_3dmf, cfg.use_aux, cfg.use_centerness) == (0.9, True, True, True, False)
    assert (cfg.score_thr, cfg.nms_pre, cfg.aux_topk, cfg.rel_coord_norm) == (0.025, 100, 9, "stride")
    assert (cfg.fpn_channels, cfg.num_tower_convs, cfg.postprocess) == (256, 4, "default")
    assert make_config("uniinst", "smoke").method.fpn_channels == 32
    with pytest.raises(ValueError, match="alpha"):
        UniInstConfig(name="uniinst", num_classes=2, alpha=1.5)


def test_overrides_reach_the_toggles():
    cfg = make_config("uniinst", "smoke", overrides=["method.use_3dmf=false", "method.alpha=0.8"]).method
    assert cfg.use_3dmf is False and cfg.alpha == 0.8


# ---------------------------------------------------------------------------------------------
# assignment inside the model
def test_assign_one_positive_per_gt_among_its_candidates(model):
    images, targets, _, _ = two_image_batch()
    model.train()
    feats, mask_feats = model.features(images)
    flat = {k: flatten_levels(v) for k, v in model.head(feats).items()}
    locs, lvls = model.locations(feats)
    strides = torch.tensor(model.strides, dtype=torch.float32)[lvls]
    norms = model.rel_coord_norms(images.device)[lvls]
    a = model.assign(flat, mask_feats[0], 0, targets[0], locs, lvls, strides, norms)
    assert sorted(a["pos_gt"].tolist()) == [0, 1]
    assert len(set(a["pos_loc"].tolist())) == 2 and set(a["pos_loc"].tolist()) <= set(a["cand_loc"].tolist())
    assert int(a["matched"].sum()) == 2 and a["iou_t"].shape == a["cand_loc"].shape
    assert float(a["iou_t"].min()) >= 0 and float(a["iou_t"].max()) <= 1
    # every aux positive is a location inside its GT's mask
    for loc, g in zip(a["aux_loc"].tolist(), a["aux_gt"].tolist()):
        x, y = (int(v) for v in locs[loc].tolist())
        assert bool(targets[0].masks[g, y, x])
    empty = model.assign(flat, mask_feats[1], 1, targets[1], locs, lvls, strides, norms)
    assert empty["pos_loc"].numel() == 0 and empty["cand_loc"].numel() == 0


def test_mask_logits_use_the_relative_coordinates(model):
    """Params that copy the relative x offset through the 3 layers: logit = relu((x_inst - x_pix) / stride)."""
    mask_feats = torch.zeros(8, 8, 12)  # (C, h, w) at stride 8: pixel x = 4, 12, ..., 92
    params = torch.zeros(2, model.num_dynamic_params)
    params[:, 0] = 1.0  # W1[0, 0]: hidden unit 0 <- input channel 0 (relative x)
    params[:, 10 * 8] = 1.0  # W2[0, 0]
    params[:, 10 * 8 + 8 * 8] = 1.0  # W3[0, 0]
    loc = torch.tensor([[20.0, 20.0], [60.0, 20.0]])
    logits = model.mask_logits(mask_feats, params, loc, torch.tensor([8.0, 8.0]))
    assert logits.shape == (2, 16, 24)
    # largest at the leftmost pixel (x = 4): (20 - 4) / 8 = 2 and (60 - 4) / 8 = 7; zero right of the instance
    assert float(logits[0].max()) == pytest.approx(2.0) and float(logits[1].max()) == pytest.approx(7.0)
    assert float(logits[0, :, 8:].abs().max()) == 0.0


# ---------------------------------------------------------------------------------------------
# contract
@pytest.mark.parametrize("overrides,keys", [
    ({}, {"loss_cls", "loss_mask", "loss_rank", "loss_aux"}),
    ({"use_rerank": False, "use_aux": False}, {"loss_cls", "loss_mask"}),
    ({"use_3dmf": False, "use_centerness": True}, {"loss_cls", "loss_mask", "loss_rank", "loss_aux", "loss_ctr"}),
])
def test_losses_finite_with_empty_image_and_backward(overrides, keys):
    net = _build(**overrides)
    images, targets, sizes, orig = two_image_batch()
    net.train()
    losses = net(images, targets)
    assert set(losses) == keys
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert float(losses["loss_mask"]) > 0
    sum_losses(losses).backward()
    assert net.controller.weight.grad.abs().sum() > 0
    assert (net.iou_pred is None) == (not net.cfg.use_rerank) and (net.dmf is None) == (not net.cfg.use_3dmf)
    if net.dmf is not None:
        assert net.dmf.filter.weight.grad.abs().sum() > 0
    if net.iou_pred is not None:
        assert net.iou_pred.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    net.eval()
    check_instances(net.predict(images, sizes, orig), orig, NUM_CLASSES)


def test_all_empty_batch(model):
    images, targets, _, _ = two_image_batch()
    model.train()
    model.zero_grad()
    losses = model(images, [targets[1], targets[1]])
    assert float(losses["loss_mask"]) == 0 and float(losses["loss_rank"]) == 0
    sum_losses(losses).backward()
    assert model.controller.weight.grad is not None and model.iou_pred.weight.grad is not None


@pytest.mark.parametrize("kind", ["default", "mask", "box", "matrix"])
def test_predict_valid_instances(model, kind):
    images, _, sizes, orig = two_image_batch()
    out = predict_with(model, kind, images, sizes, orig)
    check_instances(out, orig, NUM_CLASSES)
    # untrained scores are ~0.01 * 0.5 * iou: Matrix NMS's update_thr (0.05) may drop them all
    assert all((0 if kind == "matrix" else 1) <= len(o) <= 20 for o in out)


def test_inference_score_is_cls_times_filter_times_iou(model):
    images, _, sizes, _ = two_image_batch()
    model.eval()
    with torch.no_grad():
        raw = model.forward_test(images)
        cand = model.candidates(raw, 0, sizes[0])
    lvl, loc, lab = int(cand["levels"][0]), cand["locations"][0], int(cand["labels"][0])
    stride = model.strides[lvl]
    j, i = int(loc[0]) // stride, int(loc[1]) // stride
    expect = (raw["cls"][lvl][0, lab, i, j].sigmoid() * raw["filter"][lvl][0, 0, i, j].sigmoid()
              * raw["iou"][lvl][0, 0, i, j].clamp(0, 1))
    assert float(cand["scores"][0]) == pytest.approx(float(expect))
    assert cand["boxes"] is None and cand["scores"].numel() <= 5 * model.cfg.nms_pre


# ---------------------------------------------------------------------------------------------
# real data
def test_tiny_coco_batch_trains_and_predicts(shared_data):
    from harness.config import DataConfig
    from harness.data import build_dataset
    from harness.data.types import collate

    root = shared_data / "tiny_coco"
    spec = f"coco:{root / 'annotations' / 'instances_val2017.json'}:{root / 'val2017'}"
    ds = build_dataset(spec, "val", DataConfig(test_short_side=64, max_size=96), train=False)
    batch = collate([ds[0], ds[1]], size_divisor=32)
    torch.manual_seed(0)
    cfg = replace(make_config("uniinst", "smoke").method, num_classes=ds.num_classes, score_thr=0.0, max_per_img=10)
    net = methods.build_method(cfg)
    net.train()
    losses = net(batch.images, batch.targets)
    assert all(torch.isfinite(v) for v in losses.values()) and float(losses["loss_mask"]) > 0
    sum_losses(losses).backward()
    net.eval()
    out = net.predict(batch.images, batch.image_sizes, batch.orig_sizes)
    check_instances(out, batch.orig_sizes, ds.num_classes)
    assert all(len(o) == 10 for o in out)
