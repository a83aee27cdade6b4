"""Mask R-CNN (He et al., ICCV 2017): torchvision's ``MaskRCNN`` behind the project's Method interface.

The backbone is ours (``methods.backbones``: ResNet or the narrow CPU ResNet) with our FPN
(``methods.necks``, P2-P6, P6 = max-pool) wrapped as torchvision's ``BackboneWithFPN`` would be:
an ``OrderedDict`` of maps "0".."3", "pool" and an ``out_channels`` attribute. Our backbones use
plain BatchNorm (torchvision's pretrained detectors freeze it), recorded in the config.

``GeneralizedRCNNTransform`` is bypassed: images arrive already normalised and padded (by
``harness.data.types.collate``) and must not be resized again, so ``forward`` builds the
``ImageList`` itself and calls the RPN and RoI heads directly. (The transform is still configured as
an identity - mean 0, std 1 - in case someone calls ``self.model`` directly; it would resize, though.)
The un-padded image sizes come from the targets' mask shapes in training and from ``image_sizes``
in ``predict``; ``forward_test(images)`` alone assumes every image fills the padded tensor.

Post-processing (``cfg.postprocess``): "default" = "box" is torchvision's own class-wise box NMS at
``box_nms_thr`` inside the RoI heads; "none" sets the RoI heads' NMS threshold to 1.0, which keeps
every box (NMS removes boxes with IoU > threshold, and IoU <= 1); mask-based kinds ("mask",
"matrix", "matrix_linear", "fast") also disable the RoI-head NMS, keep ``nms_pre`` detections,
paste their masks in the input frame and apply ``methods.postprocess.apply_postprocess``.
Losses are torchvision's, renamed: loss_cls, loss_box, loss_mask, loss_rpn_cls, loss_rpn_box.

RoI coordinates (``cfg.roi_convention``): "detectron2" (default) pools features and crops the 28 x 28 mask
targets with ``roi_align(..., aligned=True)`` (detectron2's ROIAlignV2: a pixel's centre is at +0.5) and pastes
the predicted masks back with continuous box coordinates (detectron2's ``paste_masks_in_image``, by
``grid_sample``: ``paste_masks_continuous``); "torchvision" keeps torchvision's ``aligned=False`` pooling and
targets and its paste, which rounds the box to whole pixels and adds one (w = x1 - x0 + 1).  The two differ by
about half a pixel on each side: nothing on COCO at 800 px, but on the quick profile's 11-64 px objects the
torchvision convention alone caps Mask R-CNN's ceiling (ground truth through the representation, harness.ceiling)
at 81.9 AP, the detectron2 one at 100.0.  The papers' Mask R-CNN baselines (CondInst, UniInst, SOLOv2) are
detectron2's / mmdetection's (aligned=True as well).
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN as TVMaskRCNN
from torchvision.models.detection import roi_heads as tv_roi_heads
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops import poolers as tv_poolers

from methods import register
from methods.backbones import build_backbone
from methods.base import Instances, Method, Targets
from methods.condinst import check_targets
from methods.config import MethodConfig
from methods.necks import build_fpn
from methods.postprocess import apply_postprocess

LOSS_NAMES = {"loss_classifier": "loss_cls", "loss_box_reg": "loss_box", "loss_mask": "loss_mask",
              "loss_objectness": "loss_rpn_cls", "loss_rpn_box_reg": "loss_rpn_box"}
FEATURE_NAMES = ("0", "1", "2", "3", "pool")


@dataclass(frozen=True)
class MaskRCNNConfig(MethodConfig):
    """Mask R-CNN hyper-parameters (defaults = torchvision's / detectron2's R50-FPN).

    Attributes:
        fpn_channels: FPN width (256).
        anchor_sizes: one anchor size per FPN level P2-P6, px (32 .. 512).
        aspect_ratios: anchor aspect ratios (0.5, 1, 2).
        rpn_pre_nms_top_n_train / rpn_post_nms_top_n_train / rpn_pre_nms_top_n_test /
            rpn_post_nms_top_n_test: RPN proposals before / after NMS (2000, 2000, 1000, 1000).
        rpn_batch_size_per_image: anchors sampled per image for the RPN loss (256).
        box_batch_size_per_image: RoIs sampled per image for the box / mask heads (512).
        representation_size: width of the two-FC box head (1024).
        mask_head_channels / mask_head_num_convs: mask head width (256) and depth (4).
        score_thr: minimum class score of a detection (0.05).
        box_nms_thr: class-wise box NMS IoU threshold ("box" post-processing, 0.5).
        mask_nms_thr: IoU threshold of mask-based NMS kinds (0.5).
        nms_pre: detections kept before a mask-based NMS kind (500).
        mask_thr: binarisation threshold of the pasted mask probabilities (0.5).
        roi_convention: RoI coordinate convention of the feature pooling, the mask targets and the paste:
            "detectron2" (``roi_align(aligned=True)``, adaptive sampling, continuous paste: detectron2's
            ROIAlignV2 and ``paste_masks_in_image``, the Mask R-CNN that CondInst / UniInst compare with) or
            "torchvision" (``aligned=False``, 2 samples per bin, paste into the whole-pixel box + 1: torchvision's
            ``MaskRCNN``).  See the module docstring for what it costs at small pixel sizes.
    """

    fpn_channels: int = 256
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    representation_size: int = 1024
    mask_head_channels: int = 256
    mask_head_num_convs: int = 4
    score_thr: float = 0.05
    box_nms_thr: float = 0.5
    mask_nms_thr: float = 0.5
    nms_pre: int = 500
    mask_thr: float = 0.5
    roi_convention: str = "detectron2"

    ROI_CONVENTIONS: ClassVar[tuple[str, ...]] = ("detectron2", "torchvision")

    # smoke / quick: 64 / 128 px synthetic images, so anchors are the paper's sizes / 8 resp. / 4
    # (P2 anchors of 4 / 8 px), fewer proposals and sampled RoIs, and narrow heads so that a 2-core
    # CPU trains the quick profile in minutes.
    PROFILE_OVERRIDES: ClassVar[dict[str, dict]] = {
        "smoke": {"fpn_channels": 32, "anchor_sizes": (4, 8, 16, 32, 64), "rpn_pre_nms_top_n_train": 200,
                  "rpn_post_nms_top_n_train": 100, "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 50,
                  "rpn_batch_size_per_image": 64, "box_batch_size_per_image": 64, "representation_size": 64,
                  "mask_head_channels": 16, "mask_head_num_convs": 1, "nms_pre": 100},
        # anchors scaled with the objects (harness.config.SCALE_RULES): reference / 4 on quick's 128-px canvas
        # (x 3 / 8 on the 192-px alternative, harness.config.quick_canvas_overrides(m, 192))
        "quick": {"fpn_channels": 64, "anchor_sizes": (8, 16, 32, 64, 128), "rpn_pre_nms_top_n_train": 600,
                  "rpn_post_nms_top_n_train": 300, "rpn_pre_nms_top_n_test": 300, "rpn_post_nms_top_n_test": 150,
                  "rpn_batch_size_per_image": 128, "box_batch_size_per_image": 128, "representation_size": 128,
                  "mask_head_channels": 32, "mask_head_num_convs": 2, "nms_pre": 200},
        "paper": {},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.anchor_sizes) != len(FEATURE_NAMES) or min(self.anchor_sizes) <= 0:
            raise ValueError(f"method.anchor_sizes needs {len(FEATURE_NAMES)} positive sizes (P2-P6), got "
                             f"{self.anchor_sizes}")
        if self.roi_convention not in self.ROI_CONVENTIONS:
            raise ValueError(f"method.roi_convention must be one of {self.ROI_CONVENTIONS}, got "
                             f"{self.roi_convention!r}")
        for name in ("fpn_channels", "representation_size", "mask_head_channels", "mask_head_num_convs",
                     "nms_pre", "rpn_batch_size_per_image", "box_batch_size_per_image"):
            if getattr(self, name) <= 0:
                raise ValueError(f"method.{name} must be > 0, got {getattr(self, name)}")


class AlignedMultiScaleRoIAlign(MultiScaleRoIAlign):
    """torchvision's ``MultiScaleRoIAlign`` (same level assignment, scales and output) with
    ``roi_align(..., aligned=True)``: detectron2's ROIAlignV2, whose sampling grid is shifted by -0.5 px so that
    a box edge at x means the pixel boundary x (``aligned=False`` treats it as a pixel centre)."""

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        with _aligned_roi_align(tv_poolers):
            return super().forward(x, boxes, image_shapes)


def _aligned(*args, **kwargs) -> Tensor:
    return roi_align(*args, **kwargs, aligned=True)


@contextlib.contextmanager
def _aligned_roi_align(module):
    """Within the block, ``module.roi_align`` (torchvision's poolers / roi_heads import it by name) is
    ``roi_align(..., aligned=True)``; restored afterwards, also on an exception."""
    saved = module.roi_align
    module.roi_align = _aligned
    try:
        yield
    finally:
        module.roi_align = saved


def paste_masks_continuous(masks: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Paste RoI masks into the image with continuous box coordinates (detectron2's ``paste_masks_in_image``).

    Args:
        masks: (N, 1, M, M) float mask probabilities in their boxes' frames.
        boxes: (N, 4) float x1y1x2y2 in image px, continuous (x1 = the left edge of the box, not a pixel centre).
        image_size: (H, W) of the output.

    Returns:
        (N, 1, H, W) float probabilities: each pixel centre (x + 0.5, y + 0.5) samples its box's mask
        bilinearly (``grid_sample``, align_corners=False), 0 outside the box.  Work is bounded to each box's
        extent (one mask at a time), so memory does not grow with N x H x W.
    """
    n, (h, w) = len(masks), image_size
    out = masks.new_zeros((n, 1, h, w))
    for i in range(n):
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        if not (x1 > x0 and y1 > y0):
            continue
        xa, ya = max(int(x0) - 1, 0), max(int(y0) - 1, 0)  # the box's pixels, one of margin
        xb, yb = min(int(x1) + 2, w), min(int(y1) + 2, h)
        if xa >= xb or ya >= yb:
            continue
        gx = (torch.arange(xa, xb, dtype=masks.dtype, device=masks.device) + 0.5 - x0) / (x1 - x0) * 2 - 1
        gy = (torch.arange(ya, yb, dtype=masks.dtype, device=masks.device) + 0.5 - y0) / (y1 - y0) * 2 - 1
        grid = torch.stack([gx[None, :].expand(len(gy), -1), gy[:, None].expand(-1, len(gx))], -1)
        out[i, :, ya:yb, xa:xb] = F.grid_sample(masks[i:i + 1].float(), grid[None], align_corners=False)[0]
    return out


class BackboneFPN(nn.Module):
    """Our backbone + FPN in torchvision's detection-backbone form.

    forward(x: Tensor[B, 3, H, W]) -> OrderedDict "0".."3" (P2-P5, strides 4-32), "pool" (P6, 64);
    ``out_channels`` = FPN width.
    """

    def __init__(self, name: str, pretrained: str, channels: int) -> None:
        super().__init__()
        self.body = build_backbone(name, pretrained)
        self.fpn = build_fpn(self.body.out_channels, channels, extra="p6", start_level=0)
        self.out_channels = channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict(zip(FEATURE_NAMES, self.fpn(self.body(x))))


class _RecordingMatcher:
    """Wraps the RPN's ``Matcher`` and keeps each image's matched indices (run health: positive anchors per GT)."""

    def __init__(self, matcher, out: list) -> None:
        self._matcher, self._out = matcher, out

    def __call__(self, quality: Tensor) -> Tensor:
        idx = self._matcher(quality)
        self._out.append(idx)
        return idx

    def __getattr__(self, name: str):
        return getattr(self._matcher, name)


@register("maskrcnn")
class MaskRCNN(Method):
    """torchvision Mask R-CNN behind the Method interface; see the module docstring."""

    # 28 x 28 RoI masks pasted back (no stride-4 cap), detectron2's coordinates; "roi28" with roi_convention
    # "torchvision" (harness.ceiling.ceiling_config)
    mask_representation = "roi28_aligned"

    Config = MaskRCNNConfig
    MASK_KINDS: ClassVar[tuple[str, ...]] = ("mask", "matrix", "matrix_linear", "fast")

    def __init__(self, cfg: MaskRCNNConfig) -> None:
        super().__init__(cfg)
        if cfg.num_classes <= 0:
            raise ValueError(f"{cfg.name}: method.num_classes must be set (> 0), got {cfg.num_classes}")
        c, rep, mc, k1 = cfg.fpn_channels, cfg.representation_size, cfg.mask_head_channels, cfg.num_classes + 1
        anchors = AnchorGenerator(tuple((s,) for s in cfg.anchor_sizes),
                                  (tuple(cfg.aspect_ratios),) * len(cfg.anchor_sizes))
        pools = {}
        if cfg.roi_convention == "detectron2":  # torchvision's default poolers, aligned, adaptive sampling
            levels = list(FEATURE_NAMES[:4])
            pools = {"box_roi_pool": AlignedMultiScaleRoIAlign(levels, 7, 0),
                     "mask_roi_pool": AlignedMultiScaleRoIAlign(levels, 14, 0)}
        self.model = TVMaskRCNN(
            BackboneFPN(cfg.backbone, cfg.pretrained, c), num_classes=None,
            min_size=1, max_size=100_000, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0],
            rpn_anchor_generator=anchors,
            rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train,
            rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
            rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test,
            rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
            rpn_batch_size_per_image=cfg.rpn_batch_size_per_image,
            box_head=TwoMLPHead(c * 7 * 7, rep), box_predictor=FastRCNNPredictor(rep, k1),
            box_score_thresh=cfg.score_thr,
            box_nms_thresh=cfg.box_nms_thr, box_detections_per_img=cfg.max_per_img,
            box_batch_size_per_image=cfg.box_batch_size_per_image,
            mask_head=MaskRCNNHeads(c, [mc] * cfg.mask_head_num_convs, 1),
            mask_predictor=MaskRCNNPredictor(mc, mc, k1), **pools,
        )

    def postprocess_kind(self) -> str:
        return "box" if self.cfg.postprocess == "default" else self.cfg.postprocess

    def configure_roi_heads(self) -> None:
        """Set the RoI heads' NMS threshold and detection count from ``cfg.postprocess``.

        "box": ``box_nms_thr`` and ``max_per_img``; "none": threshold 1.0 (keeps every box);
        mask-based kinds: 1.0 and ``nms_pre`` detections for the mask NMS that follows.
        """
        kind, roi_heads = self.postprocess_kind(), self.model.roi_heads
        roi_heads.nms_thresh = self.cfg.box_nms_thr if kind == "box" else 1.0
        roi_heads.detections_per_img = self.cfg.nms_pre if kind in self.MASK_KINDS else self.cfg.max_per_img
        roi_heads.score_thresh = self.cfg.score_thr

    @staticmethod
    def _image_list(images: Tensor, image_sizes: list[tuple[int, int]] | None) -> ImageList:
        if image_sizes is None:
            image_sizes = [tuple(images.shape[-2:])] * images.shape[0]
        return ImageList(images, [(int(h), int(w)) for h, w in image_sizes])

    def forward(self, images: Tensor, targets: list[Targets]) -> dict[str, Tensor]:
        """torchvision's Mask R-CNN losses, renamed (see ``LOSS_NAMES``).

        Targets: labels shifted by +1 (0 = background), masks as uint8, boxes with zero width or
        height dropped (torchvision rejects them). Image sizes are the targets' mask sizes.

        Raises:
            ValueError: bad targets (``methods.condinst.check_targets``).
        """
        check_targets(targets, images.shape[0], self.cfg.num_classes, self.cfg.name)
        tv_targets = []
        for t in targets:
            t = t.to(images.device)
            boxes = t.boxes.float()
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            tv_targets.append({"boxes": boxes[keep], "labels": t.labels[keep].long() + 1,
                               "masks": t.masks[keep].to(torch.uint8)})
        image_list = self._image_list(images, [tuple(t.masks.shape[-2:]) for t in targets])
        feats = self.model.backbone(images)
        matcher = self.model.rpn.proposal_matcher
        matched: list[Tensor] = []
        self.model.rpn.proposal_matcher = _RecordingMatcher(matcher, matched)
        try:
            proposals, rpn_losses = self.model.rpn(image_list, feats, tv_targets)
        finally:
            self.model.rpn.proposal_matcher = matcher
        if len(matched) == sum(1 for tv in tv_targets if len(tv["boxes"])):  # torchvision skips empty images
            counts, it = [], iter(matched)
            for t, tv in zip(targets, tv_targets):
                full = torch.zeros(len(t.labels), dtype=torch.long)  # boxes dropped for zero size: 0 positives
                if len(tv["boxes"]):
                    idx = next(it)
                    keep = ((t.boxes[:, 2] > t.boxes[:, 0]) & (t.boxes[:, 3] > t.boxes[:, 1])).cpu()
                    full[keep] = torch.bincount(idx[idx >= 0].cpu(), minlength=len(tv["boxes"]))
                counts.append(full)
            self.last_positives_per_gt = torch.cat(counts)
        # detectron2 convention: the 28 x 28 mask targets are cropped with aligned=True too (torchvision's
        # project_masks_on_boxes calls roi_align by name from its module)
        with (_aligned_roi_align(tv_roi_heads) if self.cfg.roi_convention == "detectron2"
              else contextlib.nullcontext()):
            _, roi_losses = self.model.roi_heads(feats, proposals, image_list.image_sizes, tv_targets)
        return {LOSS_NAMES[k]: v for k, v in {**rpn_losses, **roi_losses}.items()}

    def forward_test(self, images: Tensor, image_sizes: list[tuple[int, int]] | None = None) -> list[dict]:
        """The network in eval mode: per image a dict of boxes (Tensor[n, 4], input px), labels
        (1-based), scores and masks (Tensor[n, 1, 28, 28] probabilities in the box frame).

        The RoI heads are configured from the current ``cfg`` first (``configure_roi_heads``).
        """
        self.configure_roi_heads()
        image_list = self._image_list(images, image_sizes)
        feats = self.model.backbone(images)
        proposals, _ = self.model.rpn(image_list, feats)
        detections, _ = self.model.roi_heads(feats, proposals, image_list.image_sizes)
        return detections

    @torch.no_grad()
    def predict(self, images: Tensor, image_sizes: list[tuple[int, int]],
                orig_sizes: list[tuple[int, int]] | None = None) -> list[Instances]:
        """As ``Method.predict``, passing the un-padded sizes to the RPN / RoI heads."""
        if orig_sizes is None:
            orig_sizes = list(image_sizes)
        return self.postprocess(self.forward_test(images, image_sizes), image_sizes, orig_sizes)

    def postprocess(self, raw: list[dict], image_sizes: list[tuple[int, int]],
                    orig_sizes: list[tuple[int, int]]) -> list[Instances]:
        """Detections -> optional mask-based NMS -> masks pasted at the original size (> mask_thr)."""
        return [self._one(det, tuple(image_sizes[i]), tuple(orig_sizes[i])) for i, det in enumerate(raw)]

    def _one(self, det: dict, image_size: tuple[int, int], orig_size: tuple[int, int]) -> Instances:
        cfg, kind = self.cfg, self.postprocess_kind()
        boxes, scores, labels, probs = det["boxes"], det["scores"], det["labels"] - 1, det["masks"]
        paste = paste_masks_continuous if cfg.roi_convention == "detectron2" else paste_masks_in_image
        if kind in self.MASK_KINDS and scores.numel():
            binary = paste(probs, boxes, image_size)[:, 0] > cfg.mask_thr
            keep, scores = apply_postprocess(kind, masks=binary, scores=scores, labels=labels, boxes=boxes,
                                             max_per_img=cfg.max_per_img, mask_iou_thr=cfg.mask_nms_thr,
                                             box_iou_thr=cfg.box_nms_thr)
            boxes, labels, probs = boxes[keep], labels[keep], probs[keep]
        order = scores.argsort(descending=True)[: cfg.max_per_img]
        boxes, scores, labels, probs = boxes[order], scores[order], labels[order], probs[order]
        if scores.numel() == 0:
            return Instances.empty(*orig_size, device=scores.device)
        boxes = resize_boxes(boxes, list(image_size), list(orig_size))
        masks = paste(probs, boxes, orig_size)[:, 0] > cfg.mask_thr
        return Instances(masks=masks, scores=scores.clamp(0, 1).float(), labels=labels.long())
