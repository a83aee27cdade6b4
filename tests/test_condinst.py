"""CondInst (methods/condinst.py): dynamic mask head by hand, contract, post-processing, real data."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from method_helpers import check_instances, predict_with, two_image_batch

import methods
from harness.config import make_config
from methods.base import Targets, sum_losses
from methods.condinst import (
    CondInstConfig,
    dynamic_mask_head,
    dynamic_param_count,
    split_dynamic_params,
    topk_candidates,
)

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = replace(make_config("condinst", "smoke").method, num_classes=NUM_CLASSES, score_thr=0.0)
    return methods.build_method(cfg)


# ---------------------------------------------------------------------------------------------
# dynamic mask head
def test_dynamic_param_count_is_169_for_the_reference_head():
    assert dynamic_param_count(10, 8, 3) == 169
    assert dynamic_param_count(4, 2, 2) == (4 * 2 + 2) + (2 * 1 + 1)


def test_split_dynamic_params_layout_and_error():
    params = torch.arange(169, dtype=torch.float32)[None].repeat(2, 1)
    w, b = split_dynamic_params(params, 10, 8, 3)
    assert [tuple(x.shape) for x in w] == [(2, 8, 10), (2, 8, 8), (2, 1, 8)]
    assert [tuple(x.shape) for x in b] == [(2, 8), (2, 8), (2, 1)]
    assert w[0][0, 0, :3].tolist() == [0, 1, 2] and w[0][0, 1, 0] == 10  # row-major [out, in]
    assert b[0][0, 0] == 152 and b[2][0, 0] == 168  # biases follow all weights
    with pytest.raises(ValueError, match="expected 169"):
        split_dynamic_params(torch.zeros(1, 170), 10, 8, 3)


def test_dynamic_mask_head_hand_computed():
    # in = 2 channels, hidden = 2, out = 1; weights W1 = [[1, -1], [0, 2]], b1 = [0, -1],
    # W2 = [[1, 1]], b2 = [0.5]. params layout: W1 (4), W2 (2), b1 (2), b2 (1).
    params = torch.tensor([[1.0, -1, 0, 2, 1, 1, 0, -1, 0.5]])
    w, b = split_dynamic_params(params, 2, 2, 2)
    x = torch.tensor([[[1.0, 3.0], [2.0, 1.0]]])  # (n=1, C=2, P=2): pixel0 = (1, 2), pixel1 = (3, 1)
    out = dynamic_mask_head(x, w, b)
    # pixel0: h = relu([1-2, 4-1]) = [0, 3] -> 3.5; pixel1: h = relu([3-1, 2-1]) = [2, 1] -> 3.5
    assert out.tolist() == [[3.5, 3.5]]
    x2 = torch.tensor([[[0.0], [-1.0]]])  # h = relu([1, -3]) = [1, 0] -> 1.5 (no ReLU after the last layer)
    assert dynamic_mask_head(x2, w, b).tolist() == [[1.5]]
    neg = split_dynamic_params(torch.tensor([[1.0, -1, 0, 2, -1, -1, 0, -1, 0.5]]), 2, 2, 2)
    assert dynamic_mask_head(x, *neg).tolist() == [[-2.5, -2.5]]  # last layer is linear


def test_topk_candidates():
    scores = torch.tensor([[0.1, 0.9], [0.3, 0.02], [0.5, 0.04]])
    loc, lab, val = topk_candidates(scores, 0.05, 3)
    assert loc.tolist() == [0, 2, 1] and lab.tolist() == [1, 0, 0]
    assert val.tolist() == pytest.approx([0.9, 0.5, 0.3])
    loc, _, _ = topk_candidates(scores, 0.4, 10)
    assert loc.tolist() == [0, 2]


# ---------------------------------------------------------------------------------------------
# config
def test_sizes_of_interest_are_eight_strides_at_every_profile():
    """FCOS / CondInst sizes of interest are a rule in stride units (8 x stride of P3-P6), not scaled with
    the image: scaling them with unscaled strides starved CondInst of positives (issue 13)."""
    for profile in ("smoke", "quick", "paper"):
        for name in ("condinst", "uniinst"):
            cfg = make_config(name, profile).method
            strides = methods.build_method(make_config(name, "smoke").method.__class__(
                name=name, num_classes=1, backbone="resnet_tiny", fpn_channels=16, mask_branch_channels=8,
                num_tower_convs=1, mask_branch_num_convs=1)).strides
            assert cfg.sizes_of_interest == tuple(8 * s for s in strides[:4]) == (64, 128, 256, 512)
    paper = make_config("condinst", "paper").method
    assert (paper.fpn_channels, paper.num_tower_convs, paper.sizes_of_interest) == (256, 4, (64, 128, 256, 512))
    assert (paper.mask_branch_channels, paper.mask_channels, paper.max_proposals) == (128, 8, 500)
    assert (paper.score_thr, paper.nms_pre, paper.box_nms_thr) == (0.05, 1000, 0.6)


def test_config_validation():
    with pytest.raises(ValueError, match="sizes_of_interest"):
        CondInstConfig(name="condinst", num_classes=2, sizes_of_interest=(64, 32, 256, 512))
    with pytest.raises(ValueError, match="num_classes"):
        methods.build_method(CondInstConfig(name="condinst", num_classes=0, backbone="resnet_tiny"))


# ---------------------------------------------------------------------------------------------
# contract
def test_losses_finite_with_empty_image_and_backward(model):
    images, targets, _, _ = two_image_batch()
    model.train()
    model.zero_grad()
    losses = model(images, targets)
    assert set(losses) == {"loss_cls", "loss_box", "loss_ctr", "loss_mask"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum_losses(losses).backward()
    assert model.controller.weight.grad is not None and model.controller.weight.grad.abs().sum() > 0
    assert model.bbox_pred.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_all_empty_batch_keeps_every_head_in_the_graph(model):
    images, targets, _, _ = two_image_batch()
    model.train()
    model.zero_grad()
    losses = model(images, [targets[1], targets[1]])
    assert float(losses["loss_box"]) == 0 and float(losses["loss_mask"]) == 0
    sum_losses(losses).backward()
    assert model.controller.weight.grad is not None and model.ctrness.weight.grad is not None


def test_bad_labels_name_the_image(model):
    images, targets, _, _ = two_image_batch()
    bad = Targets(targets[0].masks, torch.tensor([0, NUM_CLASSES]), targets[0].boxes)
    with pytest.raises(ValueError, match="image 0 of the batch"):
        model(images, [bad, targets[1]])


@pytest.mark.parametrize("kind", ["default", "none", "mask", "matrix"])
def test_predict_valid_instances(model, kind):
    images, _, sizes, orig = two_image_batch()
    out = predict_with(model, kind, images, sizes, orig)
    check_instances(out, orig, NUM_CLASSES)
    assert all(0 < len(o) <= 20 for o in out)  # score_thr 0: candidates exist


def test_no_candidate_gives_empty_instances_at_original_size(model):
    images, _, sizes, orig = two_image_batch()
    model.eval()
    model.cfg = replace(model.cfg, score_thr=1.0)  # sigmoid products never exceed 1
    try:
        out = model.predict(images, sizes, orig)
    finally:
        model.cfg = replace(model.cfg, score_thr=0.0)
    check_instances(out, orig, NUM_CLASSES)
    assert [len(o) for o in out] == [0, 0] and out[0].masks.shape == (0, 100, 140)


def test_masks_only_inside_the_image_region(model):
    """Image 0 occupies 50 x 70 of the 64 x 96 padded tensor: its masks are resized from that region."""
    images, _, sizes, _ = two_image_batch()
    model.eval()
    raw = model.forward_test(images)
    cand = model.candidates(raw, 0, sizes[0])
    assert float(cand["boxes"][:, 2].max()) <= 70 and float(cand["boxes"][:, 3].max()) <= 50
    probs = torch.ones(1, 16, 24)
    probs[:, 13:, :] = 0  # rows >= 52 px (padding) are off
    pasted = model.paste_masks(probs, (50, 70), (100, 140))
    assert pasted.shape == (1, 100, 140) and bool(pasted.all())


# ---------------------------------------------------------------------------------------------
# real data
def test_tiny_coco_batch_trains_and_predicts(shared_data, model):
    from harness.config import DataConfig
    from harness.data import build_dataset
    from harness.data.types import collate

    root = shared_data / "tiny_coco"
    spec = f"coco:{root / 'annotations' / 'instances_val2017.json'}:{root / 'val2017'}"
    ds = build_dataset(spec, "val", DataConfig(test_short_side=64, max_size=96), train=False)
    batch = collate([ds[0], ds[1]], size_divisor=32)
    cfg = replace(model.cfg, num_classes=ds.num_classes)
    torch.manual_seed(0)
    net = methods.build_method(cfg)
    net.train()
    losses = net(batch.images, batch.targets)
    assert all(torch.isfinite(v) for v in losses.values()) and float(losses["loss_mask"]) > 0
    sum_losses(losses).backward()
    net.eval()
    out = net.predict(batch.images, batch.image_sizes, batch.orig_sizes)
    check_instances(out, batch.orig_sizes, ds.num_classes)
