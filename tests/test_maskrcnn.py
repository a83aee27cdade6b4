"""Mask R-CNN wrapper (methods/maskrcnn.py): contract, post-processing switch, real data."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import pytest
import torch
from method_helpers import check_instances, two_image_batch

import methods
from harness.config import make_config
from methods.base import Targets, sum_losses
from methods.maskrcnn import BackboneFPN, MaskRCNNConfig

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = replace(make_config("maskrcnn", "smoke").method, num_classes=NUM_CLASSES, score_thr=0.0)
    return methods.build_method(cfg)


def test_backbone_adapter_levels():
    bb = BackboneFPN("resnet_tiny", "", 16)
    feats = bb(torch.zeros(1, 3, 64, 96))
    assert isinstance(feats, OrderedDict) and list(feats) == ["0", "1", "2", "3", "pool"]
    assert [tuple(f.shape[-2:]) for f in feats.values()] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]
    assert bb.out_channels == 16 and all(f.shape[1] == 16 for f in feats.values())


def test_config_profiles_and_validation():
    paper = make_config("maskrcnn", "paper").method
    assert paper.anchor_sizes == (32, 64, 128, 256, 512) and paper.box_batch_size_per_image == 512
    assert make_config("maskrcnn", "smoke").method.anchor_sizes == (4, 8, 16, 32, 64)
    with pytest.raises(ValueError, match="anchor_sizes"):
        MaskRCNNConfig(name="maskrcnn", num_classes=2, anchor_sizes=(32, 64))


def test_transform_is_identity_and_losses_renamed(model):
    tr = model.model.transform
    assert tr.image_mean == [0.0, 0.0, 0.0] and tr.image_std == [1.0, 1.0, 1.0]
    images, targets, _, _ = two_image_batch()
    model.train()
    model.zero_grad()
    losses = model(images, targets)
    assert set(losses) == {"loss_cls", "loss_box", "loss_mask", "loss_rpn_cls", "loss_rpn_box"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum_losses(losses).backward()
    head = model.model.roi_heads.mask_predictor.mask_fcn_logits.weight
    assert head.grad is not None and head.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_degenerate_boxes_dropped_and_bad_labels_rejected(model):
    images, targets, _, _ = two_image_batch()
    t = targets[0]
    flat = Targets(t.masks, t.labels, torch.tensor([[10.0, 5, 10, 30], [30, 20, 68, 45]]))  # zero width
    model.train()
    losses = model(images, [flat, targets[1]])
    assert all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match="image 1 of the batch"):
        model(images, [t, Targets(t.masks[:1], torch.tensor([-1]), t.boxes[:1])])


@pytest.mark.parametrize("kind", ["default", "none", "mask"])
def test_predict_valid_instances(model, kind):
    images, _, sizes, orig = two_image_batch()
    model.eval()
    model.cfg = replace(model.cfg, postprocess=kind, max_per_img=20)
    try:
        out = model.predict(images, sizes, orig)
        expected_thr = model.cfg.box_nms_thr if kind == "default" else 1.0
        assert model.model.roi_heads.nms_thresh == expected_thr
    finally:
        model.cfg = replace(model.cfg, postprocess="default", max_per_img=100)
    check_instances(out, orig, NUM_CLASSES)
    assert all(0 < len(o) <= 20 for o in out)


def test_box_nms_versus_none_on_duplicate_proposals(model):
    """Three near-identical proposals of one class: "box" keeps one, "none" keeps all three."""
    rh = model.model.roi_heads
    proposals = [torch.tensor([[10.0, 10, 40, 40], [10.0, 10, 40, 40], [11.0, 10, 41, 40]])]
    logits = torch.zeros(3, NUM_CLASSES + 1)
    logits[:, 1] = 5.0  # class 0 (torchvision label 1)
    regression = torch.zeros(3, 4 * (NUM_CLASSES + 1))
    kept = {}
    for kind in ("box", "none"):
        model.cfg = replace(model.cfg, postprocess=kind, score_thr=0.5)
        model.configure_roi_heads()
        boxes, scores, labels = rh.postprocess_detections(logits, regression, proposals, [(50, 70)])
        kept[kind] = int((labels[0] == 1).sum())
    model.cfg = replace(model.cfg, postprocess="default", score_thr=0.0)
    model.configure_roi_heads()
    assert kept == {"box": 1, "none": 3}


def test_detections_stay_in_the_image_region(model):
    images, _, sizes, _ = two_image_batch()
    model.eval()
    model.cfg = replace(model.cfg, postprocess="default")
    det = model.forward_test(images, sizes)
    assert float(det[0]["boxes"][:, 2].max()) <= 70 and float(det[0]["boxes"][:, 3].max()) <= 50


def test_tiny_coco_batch_trains_and_predicts(shared_data):
    from harness.config import DataConfig
    from harness.data import build_dataset
    from harness.data.types import collate

    root = shared_data / "tiny_coco"
    spec = f"coco:{root / 'annotations' / 'instances_val2017.json'}:{root / 'val2017'}"
    ds = build_dataset(spec, "val", DataConfig(test_short_side=64, max_size=96), train=False)
    batch = collate([ds[0], ds[1]], size_divisor=32)
    torch.manual_seed(0)
    cfg = replace(make_config("maskrcnn", "smoke").method, num_classes=ds.num_classes, score_thr=0.0,
                  max_per_img=10)
    net = methods.build_method(cfg)
    net.train()
    losses = net(batch.images, batch.targets)
    assert all(torch.isfinite(v) for v in losses.values()) and float(losses["loss_mask"]) > 0
    sum_losses(losses).backward()
    net.eval()
    out = net.predict(batch.images, batch.image_sizes, batch.orig_sizes)
    check_instances(out, batch.orig_sizes, ds.num_classes)
    assert all(len(o) == 10 for o in out)
