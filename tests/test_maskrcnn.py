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


def test_paste_masks_continuous_hand_computed():
    """A 2 x 2 mask of ones in the continuous box [1, 1, 3, 3] covers exactly pixels 1..2 of a 4 x 4 image (pixel
    centres 1.5 and 2.5 fall inside, 0.5 and 3.5 sample beyond the mask's edge, where grid_sample pads zeros);
    the same box shifted by half a pixel gives the bilinear half values at its edges."""
    from methods.maskrcnn import paste_masks_continuous
    ones = torch.ones(1, 1, 2, 2)
    out = paste_masks_continuous(ones, torch.tensor([[1.0, 1.0, 3.0, 3.0]]), (4, 4))
    expected = torch.zeros(4, 4)
    expected[1:3, 1:3] = 1
    assert out.shape == (1, 1, 4, 4) and torch.equal(out[0, 0], expected)
    half = paste_masks_continuous(ones, torch.tensor([[1.5, 1.0, 3.5, 3.0]]), (4, 4))[0, 0]
    # x centres 1.5, 2.5 -> inside; 3.5 -> 0.75 cell past the last centre -> weight 0.5 * 1 (zero padding beyond)
    assert torch.allclose(half[1], torch.tensor([0.0, 0.5, 1.0, 0.5]))
    # a degenerate box pastes nothing; a box beyond the image is clipped without error
    empty = paste_masks_continuous(torch.ones(2, 1, 28, 28), torch.tensor([[2.0, 2, 2, 3], [3.5, 3.5, 9, 9]]), (4, 4))
    assert empty[0].sum() == 0 and empty[1, 0, 3, 3] > 0


def test_roi_convention_detectron2_pools_aligned_and_torchvision_does_not():
    """'detectron2' pools RoI features with roi_align(aligned=True) (ROIAlignV2) and the module-level roi_align
    of torchvision is restored afterwards; 'torchvision' keeps its MultiScaleRoIAlign."""
    from torchvision.ops import MultiScaleRoIAlign, roi_align
    from torchvision.ops import poolers as tv_poolers

    from methods.maskrcnn import AlignedMultiScaleRoIAlign
    d2 = methods.build_method(replace(make_config("maskrcnn", "smoke").method, num_classes=2))
    tv = methods.build_method(replace(make_config("maskrcnn", "smoke").method, num_classes=2,
                                      roi_convention="torchvision"))
    assert isinstance(d2.model.roi_heads.mask_roi_pool, AlignedMultiScaleRoIAlign)
    assert type(tv.model.roi_heads.mask_roi_pool) is MultiScaleRoIAlign
    feat = torch.arange(64.0).reshape(1, 1, 8, 8)
    box = [torch.tensor([[8.0, 8.0, 20.0, 16.0]])]  # image 32 x 32, stride 4 -> spatial scale 1/4
    pool = AlignedMultiScaleRoIAlign(["0"], 3, 0)
    got = pool({"0": feat}, box, [(32, 32)])
    rois = torch.tensor([[0.0, 8.0, 8.0, 20.0, 16.0]])
    assert torch.allclose(got, roi_align(feat, rois, 3, 0.25, 0, aligned=True))
    assert not torch.allclose(got, roi_align(feat, rois, 3, 0.25, 0, aligned=False))
    assert tv_poolers.roi_align is roi_align


@pytest.mark.parametrize("convention, expected", [("detectron2", 100.0), ("torchvision", None)])
def test_roi28_ceiling_by_convention(convention, expected):
    """Ground truth through the 28 x 28 RoI representation on the smoke profile's val images: detectron2's
    aligned crop + continuous paste reproduces every mask (AP 100); torchvision's half-pixel shift and whole-pixel
    box + 1 loses AP on these 4-30 px objects."""
    from harness.ceiling import ceiling_config
    cfg = make_config("maskrcnn", "smoke", overrides=[f"method.roi_convention={convention}"])
    assert ceiling_config(cfg).method.representation == ("roi28_aligned" if convention == "detectron2"
                                                         else "roi28")
    from harness.evaluate import evaluate_results, run_inference
    from harness.pipeline import build_split
    from harness.train import resolve_num_classes
    ccfg = ceiling_config(cfg)
    val = build_split(ccfg, "val")
    ccfg = resolve_num_classes(ccfg, val)
    model = methods.build_method(ccfg.method).eval()
    results = run_inference(model, val, device=torch.device("cpu"), batch_size=1, progress=False,
                            size_divisor=ccfg.data.size_divisor)
    ap = evaluate_results(val, results, ccfg.eval)["AP"]
    if expected is not None:
        assert ap == pytest.approx(expected)
    else:
        assert ap < 99.0
