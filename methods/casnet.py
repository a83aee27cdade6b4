"""CASNet: Common Attribute Support Network (instance and panoptic segmentation).

Paper: papers/casnet.md, section III.  No public code exists; this is our reading of the paper.

Network (Fig. 2, section III.A).  A backbone with a high-resolution output and three fully
convolutional heads on it:

* backbone: the paper uses HRNet (outputs at 1/2, 1/4, 1/8).  Stand-in: ``build_backbone`` (a
  torchvision ResNet) + ``build_fpn``, with P2..P5 fused to stride 4 the way HRNetV2's
  representation head fuses its branches (bilinear upsampling to the highest resolution,
  concatenation, 1x1 conv + GN + ReLU).  ``OUTPUT_STRIDE = 4``.
* semantic head (FCN head: ``head_convs`` x conv3x3 + GN + ReLU, 1x1 classifier): ``T + 1``
  classes in ``mode="instance"`` (things 0..T-1, background T; stuff counts as background) and
  ``T + S`` classes in ``mode="panoptic"`` (things 0..T-1, stuff T..T+S-1; ``num_stuff = S``).
  Loss: cross-entropy (Eq. 1), label 255 ignored.
* common attribute head: 4 channels, the distances (l, t, r, b) from each location to the four
  borders of the box of the instance it belongs to, divided by the output stride (section III.B).
  Loss: L1 (Eq. 2) over the locations that belong to an instance.  Raw outputs; clamped to >= 0
  when decoded.
* box probability head: class-specific (``T`` channels, "works in the fully convolutional and
  class-specific way"), FCOS-style centre probability: 1 in a small area around the box centre,
  0 elsewhere.  Loss (``prob_loss``): sigmoid focal loss (alpha 0.25, gamma 2) summed over the un-padded
  locations and divided by the number of positives, as in FCOS, whose centre probability the paper
  cites for this head (default); or BCE (Eq. 3 read literally, ``w_n = 1``), mean over the un-padded
  locations.  With about 0.5 % positive locations the plain BCE drives every probability towards 0:
  quick profile of 2026-12-01, AP 8.3 at the paper's seed threshold 0.5 against 20.2 at 0.05.

Total loss (Eq. 4): ``alpha * loss_sem + beta * loss_common + gamma * loss_prob`` returned as the
three weighted terms ``loss_sem``, ``loss_common``, ``loss_prob`` (the paper trains with
alpha = beta = gamma = 1).

Choices where the paper leaves details open (each one a config field or stated here):

* Location of output cell (i, j) in input pixels: ``(j * s + s // 2, i * s + s // 2)`` (FCOS).
  Targets are sampled there from the masks / semantic map (nearest).
* Centre area (``center_radius``, in output cells; FCOS centre sampling uses 1.5): locations whose
  distance to the box centre is at most ``center_radius * s`` in x and in y, clipped to the box;
  the cell holding the box centre is always included so that small objects get a seed.
* Ownership: a location inside several masks belongs to the smallest instance (FCOS's rule); a
  centre-area location inside no mask belongs to the smallest instance whose centre area covers
  it.  Box-probability positives of an instance are its centre-area locations that it owns, so a
  seed always reads a box that was trained for its own instance.  An instance whose centre area holds no location
  it owns (its box centre lies on a nearer instance's visible mask, or between sample points) has
  no positive at all under that rule (``positive_fallback="none"``: 10.3 % of the GT instances of
  shapes-street, 0 % of shapes-coco's isolated objects, so every shapes-street row failed run
  health); ``positive_fallback="nearest_owned"`` (the default since 2026-12-05) gives it the
  location it owns nearest to its box centre instead (2.1 % left with none: objects that cover no
  stride-4 sample point).  FCOS, which decides ownership by boxes, would give it the locations of
  its box; Panoptic-DeepLab gives every instance a centre.
  The common loss covers every owned location.
* Semantic target: ``sem_segs`` from the data layer when given (``mode="instance"`` maps stuff to
  background), else (instance mode only) background with the instance masks painted by owner.
* ``train_mode="separated"`` (Table I): at inference the semantic logits come from a separately
  trained CASNet whose weights are loaded from ``semantic_checkpoint`` (its backbone, FPN, fusion
  and semantic head: a plain semantic segmentation network).  That copy is frozen and kept in eval
  mode.  The instance model is trained as in joint mode (its own semantic loss stays, set
  ``alpha=0`` to drop it); its semantic head is unused at inference.  Like ``build_backbone``
  with ``pretrained``, the file is read when the model is built (``load_semantic_weights`` takes
  a state dict directly).
* ``use_gt_semantics`` (oracle, Tables III-IV): ``set_ground_truth_semantics`` gives the GT
  semantic maps of the next ``predict`` / ``predict_panoptic`` call; they replace the predicted
  labels (as one-hot probabilities).  The harness calls it with ``batch.sem_segs`` when the
  method's ``uses_gt_semantics`` is True.
* Seeds: per thing class, the top ``nms_pre`` locations with box probability > ``seed_thr`` on
  that class's channel, anywhere in the image (not only on the class's semantic region).
* Post-processing (section III.C) is ``casnet_group``; the instance score (``score_mode``) is the
  seed's box probability times the mean semantic probability of the instance's pixels
  (``"prob_x_sem"``) or the box probability alone (``"prob"``).  ``postprocess`` "default" / "box"
  = class-wise box NMS on the seeds (``nms_thr``), "none" = no NMS (each seed stands; seeds that
  win no pixel disappear anyway).
* ``use_full_res_grouping``: True (default) upsamples the logits and distances bilinearly to the
  input size and groups every input pixel (as HRNet upsamples its logits before the argmax); False
  groups on the stride-4 grid and upsamples the instance-id map (nearest), which is faster.
  Either way the instance-id map is resized to the original image size with nearest, so instances
  stay disjoint.

Panoptic output (``predict_panoptic``): segment id 0 is void (ignore / thing pixels whose class has
no seed / instances dropped by ``max_per_img``); things 1..N by descending score, then one segment
per stuff class present.  Categories are contiguous over things + stuff (= the semantic ids).
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou

from methods import register
from methods.backbones import build_backbone
from methods.base import Instances, Method, Targets
from methods.config import MethodConfig
from methods.losses import sigmoid_focal_loss
from methods.necks import build_fpn

OUTPUT_STRIDE = 4
IGNORE = 255
_SEMANTIC_PREFIXES = ("backbone.", "fpn.", "fuse.", "sem_head.")


@dataclass(frozen=True)
class CASNetConfig(MethodConfig):
    """CASNet fields (see the module docstring for the choices they encode).

    Attributes:
        mode: "instance" (semantic head: things + background) or "panoptic" (things + stuff).
        num_stuff: number of stuff classes S (panoptic mode; must be > 0 there).
        train_mode: "joint" (the model's own semantic head) or "separated" (semantics from
            ``semantic_checkpoint`` at inference, Table I).
        semantic_checkpoint: path of a CASNet checkpoint (a state dict, or a dict with it under
            "model" / "state_dict") whose backbone / FPN / fusion / semantic head are used;
            required when ``train_mode="separated"``.
        use_gt_semantics: oracle mode (Tables III-IV): GT semantics replace the predicted ones.
        fpn_channels: FPN width.
        fuse_channels: width of the fused stride-4 feature (the HRNetV2-style head).
        head_channels / head_convs: width and number of conv3x3 of each head.
        num_groups: GroupNorm groups (divides fuse_channels and head_channels).
        alpha / beta / gamma: loss weights of Eq. 4 (semantic, common attribute, box probability).
        center_radius: half-size of the positive centre area, in output cells.
        prob_loss: box-probability loss, "focal" (FCOS, default) or "bce" (Eq. 3 literally); see the
            module docstring.
        seed_thr: box probability above which a location is a seed (section III.C: "e.g. 0.5"; the
            paper profile keeps 0.5).  The smoke / quick profiles use 0.1, the score threshold the other
            methods are evaluated with here (SOLOv2 ``score_thr`` 0.1): a model trained for minutes
            rarely reaches 0.5 on its rarer classes, so at 0.5 they get no seed and no instance at all
            (quick profile, shapes-street: truck AP 0.0; the sweep is the study ``casnet_seed_thr``).
        nms_thr: IoU threshold of the class-wise box NMS on the seeds.
        nms_pre: seeds kept per class (highest box probability) before NMS.
        tie_iou_eps: IoUs within this of a pixel's best IoU count as a near-tie, broken by the
            distance between the pixel's predicted box centre and the seed box centre.
        positive_fallback: "nearest_owned" (default: an instance with no owned centre-area location gets
            its owned location nearest to its box centre) or "none" (it has no box-probability positive);
            see the module docstring.  Left out of the run hash at "none", the rule of the runs recorded
            before the field existed (added 2026-12-04, default "nearest_owned" since 2026-12-05).
        score_mode: instance score, "prob_x_sem" or "prob".
        use_full_res_grouping: group at input resolution (True) or on the stride-4 grid.
    """

    name: str = "casnet"
    mode: Literal["instance", "panoptic"] = "instance"
    num_stuff: int = 0
    train_mode: Literal["joint", "separated"] = "joint"
    semantic_checkpoint: str = ""
    use_gt_semantics: bool = False
    fpn_channels: int = 256
    fuse_channels: int = 256
    head_channels: int = 256
    head_convs: int = 2
    num_groups: int = 32
    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    center_radius: float = 1.5
    prob_loss: Literal["focal", "bce"] = "focal"
    positive_fallback: Literal["none", "nearest_owned"] = "nearest_owned"
    seed_thr: float = 0.5
    nms_thr: float = 0.5
    nms_pre: int = 1000
    tie_iou_eps: float = 0.05
    score_mode: Literal["prob_x_sem", "prob"] = "prob_x_sem"
    use_full_res_grouping: bool = True

    INFERENCE_ONLY: ClassVar[tuple[str, ...]] = (
        "postprocess", "max_per_img", "use_gt_semantics", "train_mode", "semantic_checkpoint", "seed_thr",
        "nms_thr", "nms_pre", "tie_iou_eps", "score_mode", "use_full_res_grouping")
    HASH_OMIT_AT_VALUE: ClassVar[dict[str, object]] = {"positive_fallback": "none"}
    PROFILE_OVERRIDES: ClassVar[dict[str, dict]] = {
        # the same FPN / head widths as every other method at the profile (SOLOv2, CondInst, UniInst:
        # 32 at smoke, 64 at quick; 32 at quick until 2026-12-02)
        "smoke": dict(fpn_channels=32, fuse_channels=32, head_channels=32, head_convs=1, num_groups=4,
                      seed_thr=0.1),
        "quick": dict(fpn_channels=64, fuse_channels=64, head_channels=64, head_convs=2, num_groups=8,
                      seed_thr=0.1),
        "paper": {},
    }

    @classmethod
    def trains_no_instances(cls, flat: dict) -> bool:
        """beta = gamma = 0: no box or box-probability loss, only the semantic head learns (Table I's semantic
        model, whose semantic head the separated rows load)."""
        return flat.get("method.beta") == 0 and flat.get("method.gamma") == 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_stuff < 0:
            raise ValueError(f"casnet: num_stuff must be >= 0, got {self.num_stuff}")
        if self.train_mode == "separated" and not self.semantic_checkpoint:
            raise ValueError("casnet: train_mode='separated' needs method.semantic_checkpoint (a CASNet "
                             "checkpoint whose semantic head is used)")
        if self.postprocess not in ("default", "box", "none"):
            raise ValueError(f"casnet: postprocess {self.postprocess!r} not supported; valid: default, box, none")
        for key in ("fuse_channels", "head_channels"):
            if getattr(self, key) % self.num_groups:
                raise ValueError(f"casnet: {key}={getattr(self, key)} not divisible by num_groups={self.num_groups}")
        if self.prob_loss not in ("focal", "bce"):
            raise ValueError(f"casnet: prob_loss must be 'focal' or 'bce', got {self.prob_loss!r}")
        if self.positive_fallback not in ("none", "nearest_owned"):
            raise ValueError("casnet: positive_fallback must be 'none' or 'nearest_owned', got "
                             f"{self.positive_fallback!r}")
        if not 0.0 <= self.seed_thr < 1.0 or not 0.0 < self.nms_thr <= 1.0:
            raise ValueError(f"casnet: seed_thr must be in [0, 1) and nms_thr in (0, 1], got "
                             f"{self.seed_thr} / {self.nms_thr}")
        if self.center_radius < 0 or self.tie_iou_eps < 0 or self.nms_pre <= 0 or self.head_convs < 0:
            raise ValueError("casnet: center_radius, tie_iou_eps, head_convs must be >= 0 and nms_pre > 0")


# ---------------------------------------------------------------------------------------------
# post-processing (section III.C), pure functions
def distances_to_boxes(dist: Tensor, stride: float = 1.0, offset: float = 0.0) -> Tensor:
    """Per-location boxes from the common attribute head (the inverse of the Eq. 2 target).

    Args:
        dist: Tensor[4, H, W], float, (l, t, r, b) distances in units of ``stride``; negative
            values are clamped to 0.
        stride: size of one location in the output frame (e.g. 4 to get input pixels from the
            stride-4 grid, 1 to stay in grid cells).
        offset: coordinate of location 0 in the output frame (``s // 2`` for input pixels).
    Returns:
        Tensor[4, H, W], float, (x1, y1, x2, y2) with x = j * stride + offset.
    """
    _, h, w = dist.shape
    ys = torch.arange(h, device=dist.device, dtype=dist.dtype) * stride + offset
    xs = torch.arange(w, device=dist.device, dtype=dist.dtype) * stride + offset
    d = dist.clamp(min=0) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx - d[0], yy - d[1], xx + d[2], yy + d[3]])


def _vote(pix_boxes: Tensor, seed_boxes: Tensor, tie_iou_eps: float, chunk_size: int) -> Tensor:
    """Index of the seed each pixel supports: highest IoU, near-ties to the nearest seed centre.

    pix_boxes (Tensor[P, 4]), seed_boxes (Tensor[K, 4], K >= 1) -> Tensor[P] int64 in [0, K).
    """
    seed_ctr = (seed_boxes[:, :2] + seed_boxes[:, 2:]) / 2
    out = []
    for start in range(0, pix_boxes.shape[0], chunk_size):
        pb = pix_boxes[start:start + chunk_size]
        iou = torch.nan_to_num(box_iou(pb, seed_boxes), nan=0.0)  # (p, K); 0/0 for two empty boxes
        best = iou.max(dim=1, keepdim=True).values
        dist = torch.cdist((pb[:, :2] + pb[:, 2:]) / 2, seed_ctr)  # (p, K) centre distances
        out.append(dist.masked_fill(iou < best - tie_iou_eps, math.inf).argmin(dim=1))
    return torch.cat(out) if out else pix_boxes.new_zeros((0,), dtype=torch.long)


def casnet_group_ids(sem_labels: Tensor, sem_probs: Tensor | None, boxes_per_pixel: Tensor, box_prob: Tensor,
                     thing_ids: list[int], seed_thr: float, nms_thr: float, *, nms_pre: int = 1000,
                     use_nms: bool = True, tie_iou_eps: float = 0.05,
                     score_mode: Literal["prob_x_sem", "prob"] = "prob_x_sem",
                     chunk_size: int = 65536) -> tuple[Tensor, Tensor, Tensor]:
    """``casnet_group`` as an instance-id map (see there for the arguments).

    Returns:
        ids: Tensor[H, W], int64, 0 = no instance, k + 1 = instance k.
        labels: Tensor[K], int64, thing id of each instance.
        scores: Tensor[K], float32 in [0, 1].
    """
    h, w = sem_labels.shape
    k_things = len(thing_ids)
    if boxes_per_pixel.shape != (4, h, w):
        raise ValueError(f"boxes_per_pixel must be [4, {h}, {w}], got {tuple(boxes_per_pixel.shape)}")
    probs = box_prob.unsqueeze(0).expand(k_things, h, w) if box_prob.dim() == 2 else box_prob
    if probs.shape != (k_things, h, w):
        raise ValueError(f"box_prob must be [{h}, {w}] or [{k_things}, {h}, {w}], got {tuple(box_prob.shape)}")
    boxes = boxes_per_pixel.reshape(4, -1).t().float()  # (H*W, 4)
    flat = probs.reshape(k_things, -1).float()
    seeds = []  # per class: the top ``nms_pre`` locations above seed_thr, so no class starves another
    for k in range(k_things):
        pix_k = (flat[k] > seed_thr).nonzero().squeeze(1)
        if pix_k.numel() > nms_pre:
            pix_k = pix_k[flat[k, pix_k].topk(nms_pre).indices]
        seeds.append(pix_k)
    pix = torch.cat(seeds) if seeds else torch.zeros(0, dtype=torch.long, device=flat.device)
    cls_k = torch.cat([torch.full_like(p, k) for k, p in enumerate(seeds)]) if seeds else pix.clone()
    scores = flat[cls_k, pix]
    order = scores.argsort(descending=True, stable=True)
    cls_k, pix, scores = cls_k[order], pix[order], scores[order]
    seed_boxes = boxes[pix]
    if use_nms and scores.numel():
        keep = batched_nms(seed_boxes, scores, cls_k, nms_thr)
        cls_k, seed_boxes, scores = cls_k[keep], seed_boxes[keep], scores[keep]

    ids = torch.zeros(h * w, dtype=torch.long, device=sem_labels.device)
    labels_flat = sem_labels.reshape(-1)
    out_labels, out_scores = [], []
    for k, c in enumerate(thing_ids):
        sel = cls_k == k
        pix_c = (labels_flat == c).nonzero().squeeze(1)
        if not bool(sel.any()) or pix_c.numel() == 0:
            continue  # a class without seeds leaves its pixels unassigned; seeds without pixels vanish
        n_seeds = int(sel.sum())
        assign = _vote(boxes[pix_c], seed_boxes[sel], tie_iou_eps, chunk_size)  # (P_c,) in [0, n_seeds)
        support = torch.bincount(assign, minlength=n_seeds)
        won = support > 0  # seeds that won at least one pixel; the others are dropped
        score = scores[sel]
        if score_mode == "prob_x_sem" and sem_probs is not None:
            sem_sum = torch.bincount(assign, weights=sem_probs[c].reshape(-1)[pix_c].float(), minlength=n_seeds)
            score = score * sem_sum / support.clamp(min=1)
        new_id = torch.cumsum(won.long(), 0) + len(out_labels)  # seed j -> instance id (1-based)
        ids[pix_c] = new_id[assign]
        out_labels += [c] * int(won.sum())
        out_scores.append(score[won].clamp(0.0, 1.0))
    labels = torch.tensor(out_labels, dtype=torch.long, device=sem_labels.device)
    scores_t = torch.cat(out_scores).float() if out_scores else torch.zeros(0, device=sem_labels.device)
    return ids.view(h, w), labels, scores_t


def casnet_group(sem_labels: Tensor, sem_probs: Tensor | None, boxes_per_pixel: Tensor, box_prob: Tensor,
                 thing_ids: list[int], seed_thr: float, nms_thr: float, **kwargs) -> list[tuple[Tensor, int, float]]:
    """Common attribute support: group the pixels of each thing class into instances (section III.C).

    For each thing class c: seeds are the locations with ``box_prob > seed_thr`` (the top
    ``nms_pre`` of the class, then class-wise box NMS with ``nms_thr`` on the seeds' own predicted boxes,
    torchvision ``batched_nms``).  Every pixel with ``sem_labels == c`` votes for the seed of class
    c whose box has the highest IoU with the pixel's own predicted box; IoUs within
    ``tie_iou_eps`` of the best are near-ties, decided by the distance between the pixel's box
    centre and the seed's box centre (a pixel whose box overlaps no seed box goes to the nearest
    centre).  Each seed that wins at least one pixel becomes an instance made of exactly those
    pixels.

    Guarantees: instances are pairwise disjoint, each lies inside its class region, and their
    union is the thing region (pixels whose label is in ``thing_ids``) minus the pixels of the
    thing classes that have no seed at all (no ``box_prob > seed_thr`` for that class).  Seeds
    that win no pixel (after NMS, or with no pixel of their class) are dropped; they remove no
    pixel.

    Args:
        sem_labels: Tensor[H, W], int64, semantic label per pixel (argmax of the semantic head or
            ground truth); labels not in ``thing_ids`` (background, stuff, 255) are not grouped.
        sem_probs: Tensor[C, H, W], float, semantic probabilities indexed by label (for the
            score), or None.
        boxes_per_pixel: Tensor[4, H, W], float, each pixel's predicted box (x1, y1, x2, y2) in any
            frame common to all pixels (see ``distances_to_boxes``).
        box_prob: Tensor[H, W] (shared by all classes) or Tensor[len(thing_ids), H, W]
            (class-specific, channel k for ``thing_ids[k]``), float in [0, 1].
        thing_ids: the semantic labels that are thing classes.
        seed_thr: seed threshold on ``box_prob``.
        nms_thr: IoU threshold of the seed NMS.
        **kwargs: ``nms_pre``, ``use_nms``, ``tie_iou_eps``, ``score_mode`` ("prob_x_sem": seed box
            probability x mean ``sem_probs[c]`` over the instance; "prob": the box probability),
            ``chunk_size`` (pixels per IoU block, bounds memory).

    Returns:
        list of ``(mask Tensor[H, W] bool, label int, score float in [0, 1])``, classes in
        ``thing_ids`` order, seeds by descending box probability within a class.

    Raises:
        ValueError: ``boxes_per_pixel`` or ``box_prob`` of the wrong shape.
    """
    ids, labels, scores = casnet_group_ids(sem_labels, sem_probs, boxes_per_pixel, box_prob, thing_ids,
                                           seed_thr, nms_thr, **kwargs)
    return [(ids == k + 1, int(labels[k]), float(scores[k])) for k in range(labels.numel())]


# ---------------------------------------------------------------------------------------------
# training targets
def casnet_targets(targets: Targets, sem_seg: Tensor | None, out_hw: tuple[int, int], num_things: int,
                   mode: Literal["instance", "panoptic"], num_stuff: int = 0, center_radius: float = 1.5,
                   stride: int = OUTPUT_STRIDE, positives: list | None = None,
                   positive_fallback: Literal["none", "nearest_owned"] = "nearest_owned"
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Targets of the three heads on the output grid of one image (section III.B).

    Args:
        targets: the image's instances (masks [N, h, w] bool, labels [N], boxes [N, 4] x1y1x2y2 in
            input pixels), un-padded input frame.
        sem_seg: Tensor[h, w] int64 (things 0..T-1, stuff T..T+S-1, 255 ignore) or None.
        out_hw: (H', W') of the output grid of the padded batch.
        num_things / num_stuff: T / S.
        mode: "instance" (stuff -> background T) or "panoptic".
        center_radius: centre area half-size, output cells.
        stride: output stride.
        positives: when a list, the box-probability positives of each instance (Tensor[N] int64: its
            owned centre-area locations) are appended to it (run health).
        positive_fallback: "nearest_owned" (default): an instance with no owned centre-area location gets its
            owned location nearest to its box centre as its one positive (none when it owns no location);
            "none": it gets no positive.
    Returns:
        sem_t: Tensor[H', W'] int64 (255 = ignore, incl. padding).
        dist_t: Tensor[4, H', W'] float, (l, t, r, b) / stride of the owning instance's box.
        owned: Tensor[H', W'] bool, where ``dist_t`` is defined (the common loss region).
        prob_t: Tensor[T, H', W'] float in {0, 1}, centre-area positives per class.
        valid: Tensor[H', W'] bool, locations inside the un-padded image (the BCE region).
    Raises:
        ValueError: sem_seg missing in panoptic mode, of another size than the masks, or labels
            out of range.
    """
    hh, ww = out_hw
    masks, labels, boxes = targets.masks, targets.labels, targets.boxes.float()
    if masks.dim() == 3:
        h, w = (int(s) for s in masks.shape[-2:])
    elif sem_seg is not None:
        h, w = (int(s) for s in sem_seg.shape)
    else:
        raise ValueError(f"casnet: masks must be [N, H, W], got {tuple(masks.shape)}")
    if sem_seg is not None and tuple(sem_seg.shape) != (h, w):
        raise ValueError(f"casnet: sem_seg {tuple(sem_seg.shape)} and masks {(h, w)} differ in size")
    dev = boxes.device
    ys = torch.arange(hh, device=dev) * stride + stride // 2  # location y in input pixels
    xs = torch.arange(ww, device=dev) * stride + stride // 2
    valid = (ys < h)[:, None] & (xs < w)[None, :]  # (H', W') inside the un-padded image
    yi, xi = ys.clamp(max=h - 1), xs.clamp(max=w - 1)
    n = int(labels.numel())
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_things):
        raise ValueError(f"casnet: instance labels must be in [0, {num_things}), got {labels.tolist()}")

    on_mask = masks[:, yi][:, :, xi] & valid if n else torch.zeros((0, hh, ww), dtype=torch.bool, device=dev)
    yy, xx = ys.float()[None, :, None], xs.float()[None, None, :]
    bx = boxes[:, :, None, None]  # (N, 4, 1, 1)
    cx, cy = (bx[:, 0] + bx[:, 2]) / 2, (bx[:, 1] + bx[:, 3]) / 2  # (N, 1, 1)
    r = center_radius * stride
    centre = ((xx - cx).abs() <= r) & ((yy - cy).abs() <= r)
    centre &= (xx >= bx[:, 0]) & (xx <= bx[:, 2]) & (yy >= bx[:, 1]) & (yy <= bx[:, 3])
    if n:  # the cell holding the box centre is always a positive
        ci = (cy.view(-1) // stride).long().clamp(0, hh - 1)
        cj = (cx.view(-1) // stride).long().clamp(0, ww - 1)
        centre[torch.arange(n, device=dev), ci, cj] = True
    centre &= valid
    area = masks.flatten(1).sum(1).float() if n else boxes.new_zeros(0)
    big = float(area.max()) + 1.0 if n else 1.0
    a = area[:, None, None]
    cost = torch.where(centre, a + big, torch.full(centre.shape, math.inf, device=dev))  # (N, H', W')
    cost = torch.where(on_mask, a, cost)  # masks claim first, then centre areas; smallest area wins
    if n:
        best, owner = cost.min(dim=0)
        owned = torch.isfinite(best)
    else:
        owner = torch.zeros((hh, ww), dtype=torch.long, device=dev)
        owned = torch.zeros((hh, ww), dtype=torch.bool, device=dev)

    prob_t = torch.zeros((num_things, hh, ww), device=dev)
    dist_t = torch.zeros((4, hh, ww), device=dev)
    if not n and positives is not None:
        positives.append(torch.zeros(0, dtype=torch.long))
    if n:
        mine = owned[None] & (owner[None] == torch.arange(n, device=dev)[:, None, None])  # (N, H', W')
        pos = centre & mine
        if positive_fallback == "nearest_owned":
            k = (~pos.flatten(1).any(1) & mine.flatten(1).any(1)).nonzero().view(-1)  # no positive, owns a location
            if k.numel():
                d2 = (xx - cx[k]) ** 2 + (yy - cy[k]) ** 2  # (K, H', W') squared distance to the box centre, px^2
                d2 = d2.masked_fill(~mine[k], math.inf).flatten(1)
                pos.view(n, -1)[k, d2.argmin(1)] = True
        if positives is not None:
            positives.append(pos.flatten(1).sum(1).cpu())
        for k in range(n):
            prob_t[labels[k]] = torch.maximum(prob_t[labels[k]], pos[k].float())
        ob = boxes[owner]  # (H', W', 4)
        dist_t = torch.stack([xx[0] - ob[..., 0], yy[0] - ob[..., 1], ob[..., 2] - xx[0], ob[..., 3] - yy[0]])
        dist_t = torch.where(owned[None], dist_t / stride, torch.zeros_like(dist_t))

    if sem_seg is not None:
        sem_t = sem_seg.to(dev).long()[yi][:, xi].clone()
        if mode == "instance":  # every stuff label (whatever the number of stuff classes) is background
            sem_t[(sem_t >= num_things) & (sem_t != IGNORE)] = num_things
        bad = (sem_t != IGNORE) & ((sem_t < 0) | (sem_t >= num_things + max(num_stuff, mode == "instance")))
        if bool(bad.any()):
            raise ValueError(f"casnet: sem_seg labels {torch.unique(sem_t[bad]).tolist()} outside "
                             f"[0, {num_things + num_stuff}) and != {IGNORE}")
    elif mode == "panoptic":
        raise ValueError("casnet: mode='panoptic' needs the semantic map (sem_seg) of every image")
    else:
        sem_t = torch.full((hh, ww), num_things, dtype=torch.long, device=dev)
        thing = on_mask.any(0) if n else torch.zeros_like(valid)
        if n:
            sem_t[thing] = labels[owner][thing]
    sem_t[~valid] = IGNORE
    return sem_t, dist_t, owned, prob_t, valid


# ---------------------------------------------------------------------------------------------
# network
class HighResFusion(nn.Module):
    """HRNetV2-style fusion of P2..P5 into one stride-4 map (the stand-in for HRNet's output).

    forward([P2, P3, P4, P5] each Tensor[B, C, H/s, W/s]) -> Tensor[B, out_channels, H/4, W/4]:
    bilinear upsampling to P2's size, concatenation (B, 4C, H/4, W/4), 1x1 conv + GN + ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, num_groups: int, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels
        self.proj = nn.Sequential(nn.Conv2d(in_channels * levels, out_channels, 1, bias=False),
                                  nn.GroupNorm(num_groups, out_channels), nn.ReLU(inplace=True))

    def forward(self, feats: list[Tensor]) -> Tensor:
        size = feats[0].shape[-2:]
        ups = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                            for f in feats[1:self.levels]]
        return self.proj(torch.cat(ups, dim=1))


class FCNHead(nn.Sequential):
    """``num_convs`` x (conv3x3 + GN + ReLU) then a 1x1 conv to ``out_channels`` (FCN head)."""

    def __init__(self, in_channels: int, channels: int, num_convs: int, out_channels: int, num_groups: int,
                 bias_init: float = 0.0) -> None:
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(num_convs):
            layers += [nn.Conv2d(c, channels, 3, padding=1, bias=False), nn.GroupNorm(num_groups, channels),
                       nn.ReLU(inplace=True)]
            c = channels
        out = nn.Conv2d(c, out_channels, 1)
        nn.init.normal_(out.weight, std=0.01)
        nn.init.constant_(out.bias, bias_init)
        super().__init__(*layers, out)


class SemanticNet(nn.Module):
    """Backbone + FPN + fusion + semantic head; the attribute names match CASNet's, so a CASNet
    state dict's ``backbone.* / fpn.* / fuse.* / sem_head.*`` entries load into it directly.
    """

    def __init__(self, cfg: CASNetConfig, num_sem: int) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg.backbone, cfg.pretrained)
        self.fpn = build_fpn(list(self.backbone.out_channels), cfg.fpn_channels, extra="p6")
        self.fuse = HighResFusion(cfg.fpn_channels, cfg.fuse_channels, cfg.num_groups)
        self.sem_head = FCNHead(cfg.fuse_channels, cfg.head_channels, cfg.head_convs, num_sem, cfg.num_groups)

    def features(self, images: Tensor) -> Tensor:
        """images Tensor[B, 3, H, W] -> fused Tensor[B, fuse_channels, H/4, W/4]."""
        return self.fuse(self.fpn(self.backbone(images))[:4])

    def forward(self, images: Tensor) -> Tensor:
        """images Tensor[B, 3, H, W] -> semantic logits Tensor[B, num_sem, H/4, W/4]."""
        return self.sem_head(self.features(images))


def _read_state_dict(path: str) -> dict[str, Tensor]:
    """The model state dict in a checkpoint file (plain, or under "model" / "state_dict").

    Tries ``weights_only=True`` first; the harness's resumable checkpoints hold RNG state and need
    ``weights_only=False`` (trusted files written by this project).
    Raises:
        FileNotFoundError: no such file (names the config key).
        ValueError: no state dict in the file.
    """
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            obj = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"casnet: method.semantic_checkpoint {path!r} not found") from e
    except (EOFError, RuntimeError, OSError, ValueError, pickle.UnpicklingError) as e:  # empty / truncated / garbage
        raise ValueError(f"casnet: method.semantic_checkpoint {path}: truncated or corrupt checkpoint "
                         f"({type(e).__name__}: {str(e)[:200]})") from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"casnet: {path!r} holds no model state dict")
    return {k.removeprefix("module."): v for k, v in obj.items()}


@dataclass
class CASNetOutput:
    """Raw head outputs on the stride-4 grid of the padded batch.

    Attributes:
        sem_logits: Tensor[B, C, H/4, W/4] (C = T + 1 in instance mode, T + S in panoptic mode);
            from the separate semantic model in ``train_mode="separated"``.
        dist: Tensor[B, 4, H/4, W/4], (l, t, r, b) box-border distances / 4.
        prob_logits: Tensor[B, T, H/4, W/4], box (centre) probability logits per thing class.
    """

    sem_logits: Tensor
    dist: Tensor
    prob_logits: Tensor


@dataclass
class _Decoded:
    """One image after grouping, at the grouping resolution (``scale`` input px per location)."""

    ids: Tensor  # [h_g, w_g] int64, 0 = none, k + 1 = instance k (sorted by score, <= max_per_img)
    labels: Tensor  # [K] int64
    scores: Tensor  # [K] float
    sem_labels: Tensor  # [h_g, w_g] int64 (255 = ignore in oracle mode)
    sem_probs: Tensor  # [C, h_g, w_g]
    scale: int


@register("casnet")
class CASNet(Method):
    """CASNet (module docstring).  ``uses_sem_seg``: the harness passes ``sem_segs`` to forward."""

    Config = CASNetConfig
    uses_sem_seg = True

    def __init__(self, cfg: CASNetConfig) -> None:
        super().__init__(cfg)
        if cfg.num_classes <= 0:
            raise ValueError("casnet: num_classes must be > 0 (the harness sets it from the dataset)")
        if cfg.mode == "panoptic" and cfg.num_stuff <= 0:
            raise ValueError("casnet: mode='panoptic' needs num_stuff > 0 (the harness sets it from the dataset's "
                             "stuff classes; shapes-street has 3)")
        self.num_things = cfg.num_classes
        self.num_sem = cfg.num_classes + (cfg.num_stuff if cfg.mode == "panoptic" else 1)
        self.backbone = build_backbone(cfg.backbone, cfg.pretrained)
        self.fpn = build_fpn(list(self.backbone.out_channels), cfg.fpn_channels, extra="p6")
        self.fuse = HighResFusion(cfg.fpn_channels, cfg.fuse_channels, cfg.num_groups)
        c, n, g = cfg.fuse_channels, cfg.head_channels, cfg.num_groups
        self.sem_head = FCNHead(c, n, cfg.head_convs, self.num_sem, g)
        self.common_head = FCNHead(c, n, cfg.head_convs, 4, g)
        self.prob_head = FCNHead(c, n, cfg.head_convs, self.num_things, g, bias_init=-math.log(99.0))
        self.semantic_model: SemanticNet | None = None
        # the separated semantic model's weights come from semantic_checkpoint, not from this run's weights
        self.external_state_prefixes = ("semantic_model.",)
        if cfg.train_mode == "separated":
            self.semantic_model = SemanticNet(cfg, self.num_sem)
            self.load_semantic_weights(_read_state_dict(cfg.semantic_checkpoint), cfg.semantic_checkpoint)
        self._gt_semantics: list[Tensor | None] | None = None

    # -- separated mode / oracle mode ---------------------------------------------------------
    def load_semantic_weights(self, state_dict: dict[str, Tensor], source: str = "state dict") -> None:
        """Load the semantic network of ``train_mode="separated"`` from a CASNet state dict.

        Only the ``backbone.* / fpn.* / fuse.* / sem_head.*`` entries are used; the copy is frozen.
        Raises:
            RuntimeError: not in separated mode, or the entries do not fit (other backbone,
                widths or number of semantic classes; the message names ``source``).
        """
        if self.semantic_model is None:
            raise RuntimeError("casnet: load_semantic_weights needs train_mode='separated'")
        sub = {k: v for k, v in state_dict.items() if k.startswith(_SEMANTIC_PREFIXES)}
        try:
            self.semantic_model.load_state_dict(sub, strict=True)
        except RuntimeError as e:
            raise RuntimeError(f"casnet: semantic checkpoint {source} does not fit this config "
                               f"(backbone {self.cfg.backbone}, {self.num_sem} semantic classes): {e}") from e
        self.semantic_model.requires_grad_(False)
        self.semantic_model.eval()

    def train(self, mode: bool = True) -> CASNet:
        super().train(mode)
        if self.semantic_model is not None:  # the separate semantic model stays frozen
            self.semantic_model.eval()
        return self

    @property
    def uses_gt_semantics(self) -> bool:
        """True in oracle mode: the harness must call ``set_ground_truth_semantics`` before predict."""
        return bool(self.cfg.use_gt_semantics)

    def set_ground_truth_semantics(self, sem_segs: list[Tensor | None] | None) -> None:
        """Ground-truth semantic maps for the next ``predict`` / ``predict_panoptic`` call.

        Oracle mode (``use_gt_semantics=True``, CASNet Tables III-IV): the predicted semantic labels
        are replaced by these (as one-hot probabilities, so ``score_mode="prob_x_sem"`` reduces to
        the box probability); the common attribute and box probability heads still come from the
        network.  The maps are consumed (cleared) by the next post-processing, so a stale batch
        cannot leak into the next one.  Ignored unless ``use_gt_semantics``.

        Args:
            sem_segs: one Tensor[h, w] int64 per image of the next batch, in the input frame
                (``Sample.sem_seg`` / ``Batch.sem_segs`` convention: things 0..T-1, stuff T..T+S-1,
                255 ignore; in instance mode stuff is read as background), or None to clear.
        """
        self._gt_semantics = None if sem_segs is None else list(sem_segs)

    def _take_gt_semantics(self, n_images: int, image_sizes: list[tuple[int, int]]) -> list[Tensor] | None:
        gts, self._gt_semantics = self._gt_semantics, None
        if not self.cfg.use_gt_semantics:
            return None
        if gts is None:
            raise RuntimeError("casnet: use_gt_semantics=True needs set_ground_truth_semantics(sem_segs) "
                               "before each predict")
        if len(gts) != n_images:
            raise ValueError(f"casnet: {len(gts)} ground-truth semantic maps for {n_images} images")
        for i, (g, hw) in enumerate(zip(gts, image_sizes)):
            if g is None or tuple(g.shape) != tuple(hw):
                raise ValueError(f"casnet: ground-truth semantics of image #{i} is "
                                 f"{None if g is None else tuple(g.shape)}, expected {tuple(hw)}")
        return gts

    # -- network ------------------------------------------------------------------------------
    def forward_test(self, images: Tensor) -> CASNetOutput:
        """images Tensor[B, 3, H, W] (H, W multiples of 32) -> CASNetOutput on the stride-4 grid."""
        feat = self.fuse(self.fpn(self.backbone(images))[:4])
        sem = self.semantic_model(images) if self.semantic_model is not None else self.sem_head(feat)
        return CASNetOutput(sem, self.common_head(feat), self.prob_head(feat))

    def forward(self, images: Tensor, targets: list[Targets],
                sem_segs: list[Tensor | None] | None = None) -> dict[str, Tensor]:
        """Training losses (Eq. 1-4).

        Args:
            images: Tensor[B, 3, H, W], normalised, padded.
            targets: per image ``Targets`` in the input frame.
            sem_segs: per image Tensor[h, w] int64 semantic map or None (then, in instance mode,
                derived from the instance masks; panoptic mode needs them).
        Returns:
            ``loss_sem`` (alpha x CE), ``loss_common`` (beta x L1), ``loss_prob`` (gamma x focal or BCE).
        Raises:
            ValueError: bad targets (see ``casnet_targets``), or len(sem_segs) != B.
        """
        feat = self.fuse(self.fpn(self.backbone(images))[:4])
        sem_logits, dist, prob_logits = self.sem_head(feat), self.common_head(feat), self.prob_head(feat)
        out_hw = (int(feat.shape[-2]), int(feat.shape[-1]))
        if sem_segs is not None and len(sem_segs) != len(targets):
            raise ValueError(f"casnet: {len(sem_segs)} sem_segs for {len(targets)} images")
        n_pos: list[Tensor] = []
        per_image = [casnet_targets(t, sem_segs[i] if sem_segs is not None else None, out_hw, self.num_things,
                                    self.cfg.mode, self.cfg.num_stuff, self.cfg.center_radius, positives=n_pos,
                                    positive_fallback=self.cfg.positive_fallback)
                     for i, t in enumerate(targets)]
        self.last_positives_per_gt = torch.cat(n_pos) if n_pos else None
        sem_t = torch.stack([p[0] for p in per_image])  # (B, H', W')
        dist_t = torch.stack([p[1] for p in per_image])  # (B, 4, H', W')
        owned = torch.stack([p[2] for p in per_image])  # (B, H', W')
        prob_t = torch.stack([p[3] for p in per_image])  # (B, T, H', W')
        n_sem = (sem_t != IGNORE).sum().clamp(min=1)
        loss_sem = F.cross_entropy(sem_logits.float(), sem_t, ignore_index=IGNORE, reduction="sum") / n_sem
        n_own = (owned.sum() * 4).clamp(min=1)
        loss_common = (dist.float() - dist_t).abs().mul(owned[:, None]).sum() / n_own
        inside = torch.stack([p[4] for p in per_image])  # (B, H', W') un-padded locations
        if self.cfg.prob_loss == "focal":  # FCOS: sum over locations / number of positives
            focal = sigmoid_focal_loss(prob_logits.float(), prob_t, 0.25, 2.0, reduction="none")
            n_pos = (prob_t * inside[:, None]).sum().clamp(min=1)
            loss_prob = focal.mul(inside[:, None]).sum() / n_pos
        else:
            bce = F.binary_cross_entropy_with_logits(prob_logits.float(), prob_t, reduction="none")
            loss_prob = bce.mul(inside[:, None]).sum() / (inside.sum() * self.num_things).clamp(min=1)
        return {"loss_sem": self.cfg.alpha * loss_sem, "loss_common": self.cfg.beta * loss_common,
                "loss_prob": self.cfg.gamma * loss_prob}

    # -- inference ----------------------------------------------------------------------------
    def _inputs_of_image(self, raw: CASNetOutput, i: int, h: int, w: int,
                         gt: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
        """Semantic labels / probs, per-pixel boxes (input px) and box probs at the grouping resolution.

        Returns (sem_labels [h_g, w_g], sem_probs [C, h_g, w_g], boxes [4, h_g, w_g],
        box_prob [T, h_g, w_g], scale) with scale = 1 (full resolution, h_g x w_g = h x w) or 4.
        """
        s = OUTPUT_STRIDE
        sem, dist, prob = raw.sem_logits[i:i + 1].float(), raw.dist[i:i + 1].float(), raw.prob_logits[i:i + 1].float()
        if self.cfg.use_full_res_grouping:
            def up(x: Tensor) -> Tensor:  # (1, C, H/4, W/4) -> (C, h, w), HRNet-style bilinear
                return F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)[0, :, :h, :w]

            sem, dist, prob = up(sem), up(dist), up(prob)
            boxes = distances_to_boxes(dist * s)  # pixel x's box: x - l * s .. x + r * s
            scale = 1
        else:
            hg, wg = -(-h // s), -(-w // s)
            sem, dist, prob = sem[0, :, :hg, :wg], dist[0, :, :hg, :wg], prob[0, :, :hg, :wg]
            boxes = distances_to_boxes(dist, stride=s, offset=s // 2)
            scale = s
        sem_probs = sem.softmax(dim=0)
        sem_labels = sem_probs.argmax(dim=0)
        if gt is not None:
            gt = gt.to(sem.device).long()
            if scale > 1:
                yi = (torch.arange(sem.shape[-2], device=gt.device) * s + s // 2).clamp(max=h - 1)
                xi = (torch.arange(sem.shape[-1], device=gt.device) * s + s // 2).clamp(max=w - 1)
                gt = gt[yi][:, xi]
            sem_labels = gt.clone()
            if self.cfg.mode == "instance":
                sem_labels[(gt >= self.num_things) & (gt != IGNORE)] = self.num_things
            known = (sem_labels >= 0) & (sem_labels < self.num_sem)
            sem_probs = F.one_hot(sem_labels.clamp(0, self.num_sem - 1), self.num_sem).permute(2, 0, 1).float()
            sem_probs = sem_probs * known  # ignore pixels: no class
            sem_labels = torch.where(known, sem_labels, torch.full_like(sem_labels, IGNORE))
        return sem_labels, sem_probs, boxes, prob.sigmoid(), scale

    def _decode(self, raw: CASNetOutput, i: int, h: int, w: int, gt: Tensor | None) -> _Decoded:
        """Group one image (casnet_group_ids) and keep the ``max_per_img`` best instances."""
        cfg = self.cfg
        sem_labels, sem_probs, boxes, box_prob, scale = self._inputs_of_image(raw, i, h, w, gt)
        ids, labels, scores = casnet_group_ids(
            sem_labels, sem_probs, boxes, box_prob, list(range(self.num_things)), cfg.seed_thr, cfg.nms_thr,
            nms_pre=cfg.nms_pre, use_nms=cfg.postprocess != "none", tie_iou_eps=cfg.tie_iou_eps,
            score_mode=cfg.score_mode)
        order = scores.argsort(descending=True)[:cfg.max_per_img]
        remap = torch.zeros(labels.numel() + 1, dtype=torch.long, device=ids.device)
        remap[order + 1] = torch.arange(1, order.numel() + 1, device=ids.device)
        return _Decoded(remap[ids], labels[order], scores[order], sem_labels, sem_probs, scale)

    @staticmethod
    def _to_original(id_map: Tensor, scale: int, h: int, w: int, orig: tuple[int, int]) -> Tensor:
        """Id map at the grouping resolution -> Tensor[H0, W0] int64 (nearest, so ids stay disjoint)."""
        if scale > 1:
            id_map = id_map.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
        id_map = id_map[:h, :w]
        if tuple(id_map.shape) != tuple(orig):
            id_map = F.interpolate(id_map[None, None].float(), size=tuple(orig), mode="nearest")[0, 0].long()
        return id_map

    def postprocess(self, raw: CASNetOutput, image_sizes: list[tuple[int, int]],
                    orig_sizes: list[tuple[int, int]]) -> list[Instances]:
        """Instances per image (masks at ``orig_sizes``, disjoint, scores descending).

        Raises:
            RuntimeError / ValueError: oracle mode without matching ground-truth semantics.
        """
        gts = self._take_gt_semantics(len(image_sizes), image_sizes)
        out = []
        for i, ((h, w), orig) in enumerate(zip(image_sizes, orig_sizes)):
            d = self._decode(raw, i, h, w, gts[i] if gts is not None else None)
            ids = self._to_original(d.ids, d.scale, h, w, orig)
            masks = ids[None] == torch.arange(1, d.labels.numel() + 1, device=ids.device)[:, None, None]
            keep = masks.flatten(1).any(dim=1)  # an instance can vanish when shrunk to the original size
            out.append(Instances(masks[keep], d.scores[keep], d.labels[keep]))
        return out

    @torch.no_grad()
    def predict_panoptic(self, images: Tensor, image_sizes: list[tuple[int, int]],
                         orig_sizes: list[tuple[int, int]] | None = None) -> list[tuple[Tensor, list[dict]]]:
        """Panoptic segmentation (section IV, "minor modification" of the semantic head).

        Args:
            images: Tensor[B, 3, H_pad, W_pad], normalised.
            image_sizes: (h, w) per image in the input frame.
            orig_sizes: (H0, W0) per image; defaults to ``image_sizes``.
        Returns:
            per image ``(panoptic_ids Tensor[H0, W0] int64, segments_info)``: id 0 = void; things
            have ids 1..N (descending score), stuff class s (panoptic mode) the id N + 1 + (s - T);
            ``segments_info`` lists the segments present in the map as dicts ``id``, ``category``
            (contiguous over things + stuff: the semantic id), ``isthing`` and ``score`` (things:
            instance score; stuff: mean semantic probability of the segment).
        """
        if orig_sizes is None:
            orig_sizes = list(image_sizes)
        raw = self.forward_test(images)
        gts = self._take_gt_semantics(len(image_sizes), image_sizes)
        results = []
        for i, ((h, w), orig) in enumerate(zip(image_sizes, orig_sizes)):
            d = self._decode(raw, i, h, w, gts[i] if gts is not None else None)
            n_things = d.labels.numel()
            pan = d.ids.clone()
            info = {k + 1: {"id": k + 1, "category": int(d.labels[k]), "isthing": True,
                            "score": float(d.scores[k])} for k in range(n_things)}
            if self.cfg.mode == "panoptic":
                for s in range(self.num_things, self.num_sem):
                    region = d.sem_labels == s
                    if bool(region.any()):
                        sid = n_things + 1 + (s - self.num_things)
                        pan[region] = sid
                        info[sid] = {"id": sid, "category": s, "isthing": False,
                                     "score": float(d.sem_probs[s][region].mean())}
            pan = self._to_original(pan, d.scale, h, w, orig)
            present = set(torch.unique(pan).tolist()) - {0}
            results.append((pan, [info[k] for k in sorted(present)]))
        return results
