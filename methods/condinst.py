"""CondInst (Tian et al., "Instance and Panoptic Segmentation Using Conditional Convolutions",
TPAMI 2022; "Conditional Convolutions for Instance Segmentation", ECCV 2020).

An FCOS detector on P3-P7 (classification, ltrb box regression, centre-ness) whose box tower also
feeds a *controller* predicting, at every location, the 169 parameters of a tiny dynamic mask head
(3 x 1x1 conv, 8 channels). The mask head runs on a shared mask branch (8 channels, stride 8) with
two relative-coordinate channels and yields the instance's mask logits, upsampled x2 to stride 4.

Training: FCOS targets with centre sampling (``methods.assign.fcos_targets``), sigmoid focal loss
(loss_cls), GIoU loss weighted by centre-ness targets (loss_box), centre-ness BCE (loss_ctr), and
the dice loss of at most ``max_proposals`` randomly sampled positives (loss_mask).
Inference: ``sigmoid(cls) * sigmoid(ctr) > score_thr``, top ``nms_pre`` per level, the configured
post-processing (default class-wise box NMS at ``box_nms_thr``), top ``max_per_img``, score
``sqrt(cls * ctr)``; masks only for the kept detections, resized to the original size, > ``mask_thr``.

Reusable pieces for UniInst (``methods/uniinst.py`` subclasses ``CondInst``): the dynamic mask head
(``dynamic_param_count``, ``split_dynamic_params``, ``dynamic_mask_head``), ``MaskBranch``,
``conv_tower``, ``CondInst._mask_logits`` and the candidate -> Instances decoding
(``CondInst._finalize``). Choices where the reference has details we simplify: the mask branch
upsamples with plain bilinear interpolation (AdelaiDet: "aligned bilinear"); ground-truth masks at
stride 4 are area-averaged and binarised at 0.5 (AdelaiDet samples the pixel at the cell centre).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import generalized_box_iou_loss

from methods import register
from methods.assign import (
    centerness_targets,
    fcos_targets,
    grid_locations,
    mask_centers,
    masks_at_stride,
    relative_coords,
)
from methods.backbones import build_backbone
from methods.base import Instances, Method, Targets
from methods.config import MethodConfig
from methods.dmf3d import group_norm
from methods.losses import dice_loss, sigmoid_focal_loss
from methods.necks import build_fpn
from methods.postprocess import apply_postprocess

MASK_OUT_STRIDE = 4  # mask logits are upsampled x2 from the stride-8 mask branch

__all__ = ["CondInst", "CondInstConfig", "MaskBranch", "conv_tower", "dynamic_mask_head",
           "dynamic_param_count", "split_dynamic_params"]


@dataclass(frozen=True)
class CondInstConfig(MethodConfig):
    """CondInst hyper-parameters (defaults = AdelaiDet's R50 CondInst, MS_R_50_1x).

    Attributes:
        fpn_channels: FPN / head width (256).
        num_tower_convs: conv3x3 + GN + ReLU layers per head tower (4).
        sizes_of_interest: FCOS level boundaries on max(l, t, r, b), px: P3 [0, s0], P4 [s0, s1], ...,
            P7 [s3, inf). Relative coordinates are divided by (s0, s1, s2, s3, 2 * s3) (AdelaiDet's
            ``sizes_of_interest`` normaliser, ``rel_coord_norm="soi"``).  The reference values are 8 x the
            stride of P3-P6 (8, 16, 32, 64): a rule in stride units, so every profile keeps them whatever
            its image size (``harness.config.SCALE_RULES``).  Shrinking them with the image while the
            strides stay 8-128 sends objects to levels ~6x too coarse for them (quick profile, 128 px:
            1.2 positives per object, 11.8 % of objects never positive; with 8 x stride 7.2 and 0 %).
        center_sample_radius: centre-sampling radius in strides (1.5).
        prior_prob: initial foreground probability of the classifier bias (0.01).
        focal_alpha / focal_gamma: sigmoid focal loss (0.25, 2.0).
        mask_branch_channels / mask_branch_num_convs: mask branch width (128) and depth (4).
        mask_channels: mask-branch output channels fed to the dynamic head (8).
        dynamic_channels / dynamic_num_layers: dynamic mask head width (8) and 1x1 conv layers (3).
        max_proposals: positives sampled for the mask loss per batch (500).
        dice_eps: dice-loss epsilon (1e-5).
        score_thr: candidate threshold on sigmoid(cls) * sigmoid(ctr) (0.05).
        nms_pre: candidates kept per level before post-processing (1000).
        mask_nms_pre: candidates whose masks are computed for mask-based post-processing (500).
        box_nms_thr / mask_nms_thr: IoU thresholds of box NMS (0.6) and mask NMS (0.5).
        mask_thr: binarisation threshold of mask probabilities (0.5).
        rel_coord_norm: divide relative coordinates by the level's size of interest ("soi",
            CondInst) or by its stride ("stride", UniInst's code).
    """

    fpn_channels: int = 256
    num_tower_convs: int = 4
    sizes_of_interest: tuple[int, ...] = (64, 128, 256, 512)
    center_sample_radius: float = 1.5
    prior_prob: float = 0.01
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    mask_branch_channels: int = 128
    mask_branch_num_convs: int = 4
    mask_channels: int = 8
    dynamic_channels: int = 8
    dynamic_num_layers: int = 3
    max_proposals: int = 500
    dice_eps: float = 1e-5
    score_thr: float = 0.05
    nms_pre: int = 1000
    mask_nms_pre: int = 500
    box_nms_thr: float = 0.6
    mask_nms_thr: float = 0.5
    mask_thr: float = 0.5
    rel_coord_norm: Literal["soi", "stride"] = "soi"

    # Widths and tower depths shrink so that a 2-core CPU trains the smoke / quick profiles in minutes;
    # the sizes of interest are not scaled (they are 8 x stride, see the docstring and
    # harness.config.SCALE_RULES: until 2026-12-02 they were scaled by image size to (5, 10, 20, 40) /
    # (10, 20, 40, 80) with unscaled strides, which starved CondInst of positives).
    PROFILE_OVERRIDES: ClassVar[dict[str, dict]] = {
        "smoke": {"fpn_channels": 32, "num_tower_convs": 1, "mask_branch_channels": 16,
                  "mask_branch_num_convs": 1, "nms_pre": 100},
        "quick": {"fpn_channels": 64, "num_tower_convs": 2, "mask_branch_channels": 32,
                  "mask_branch_num_convs": 2},
        "paper": {},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        soi = self.sizes_of_interest
        if len(soi) != 4 or any(b <= a for a, b in zip(soi, soi[1:])) or soi[0] <= 0:
            raise ValueError(f"method.sizes_of_interest must be 4 increasing positive px values (P3-P7 "
                             f"boundaries), got {soi}")
        for name in ("fpn_channels", "mask_branch_channels", "mask_channels", "dynamic_channels",
                     "dynamic_num_layers", "max_proposals", "nms_pre", "mask_nms_pre"):
            if getattr(self, name) <= 0:
                raise ValueError(f"method.{name} must be > 0, got {getattr(self, name)}")
        for name in ("score_thr", "box_nms_thr", "mask_nms_thr", "mask_thr", "prior_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"method.{name} must be in [0, 1], got {getattr(self, name)}")


# ---------------------------------------------------------------------------------------------
# dynamic mask head (CondInst Sec. 3.2)
def dynamic_param_count(in_channels: int = 10, channels: int = 8, num_layers: int = 3) -> int:
    """Number of dynamic parameters: (10*8+8) + (8*8+8) + (8*1+1) = 169 for the defaults."""
    dims = [in_channels] + [channels] * (num_layers - 1) + [1]
    return sum(i * o + o for i, o in zip(dims[:-1], dims[1:]))


def split_dynamic_params(params: Tensor, in_channels: int = 10, channels: int = 8,
                         num_layers: int = 3) -> tuple[list[Tensor], list[Tensor]]:
    """Split the controller output into per-layer weights and biases.

    Layout (as AdelaiDet): all weights first (layer by layer, each row-major [out, in]), then all
    biases.

    Args:
        params: Tensor[n, P], P = ``dynamic_param_count(in_channels, channels, num_layers)``.
    Returns:
        weights: per layer Tensor[n, out, in]; biases: per layer Tensor[n, out].
    Raises:
        ValueError: P does not match.
    """
    dims = [in_channels] + [channels] * (num_layers - 1) + [1]
    w_nums = [i * o for i, o in zip(dims[:-1], dims[1:])]
    b_nums = dims[1:]
    if params.shape[-1] != sum(w_nums) + sum(b_nums):
        raise ValueError(f"dynamic params: expected {sum(w_nums) + sum(b_nums)} per instance, got "
                         f"{params.shape[-1]}")
    chunks = params.split(w_nums + b_nums, dim=1)
    n = params.shape[0]
    weights = [c.reshape(n, o, i) for c, i, o in zip(chunks[:num_layers], dims[:-1], dims[1:])]
    return weights, list(chunks[num_layers:])


def dynamic_mask_head(x: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
    """Per-instance 1x1 convolutions with ReLU between layers (none after the last).

    Args:
        x: Tensor[n, C_in, P], float: each instance's input (relative coords + mask features) over
            P pixels.
        weights / biases: from ``split_dynamic_params``.
    Returns:
        Tensor[n, P], mask logits.
    """
    for k, (w, b) in enumerate(zip(weights, biases)):
        x = torch.bmm(w, x) + b[:, :, None]  # (n, out, P)
        if k < len(weights) - 1:
            x = F.relu(x)
    return x[:, 0]


# ---------------------------------------------------------------------------------------------
# network blocks
def conv_tower(channels: int, num_convs: int) -> nn.Sequential:
    """``num_convs`` x (conv3x3 + GroupNorm + ReLU), FCOS head tower; weights N(0, 0.01)."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        conv = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.normal_(conv.weight, std=0.01)
        nn.init.zeros_(conv.bias)
        layers += [conv, group_norm(channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def head_conv(in_channels: int, out_channels: int, std: float = 0.01, bias: float = 0.0) -> nn.Conv2d:
    """conv3x3 prediction layer with N(0, std) weights and constant bias."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    nn.init.normal_(conv.weight, std=std)
    nn.init.constant_(conv.bias, bias)
    return conv


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class MaskBranch(nn.Module):
    """CondInst mask branch: P3-P5 -> refine conv (BN) -> resize to P3 -> sum -> convs -> 1x1.

    Args:
        in_channels: FPN width; channels: branch width (128); num_convs: convs after the sum (4);
        out_channels: mask feature channels (8).
    forward(feats: [P3, P4, P5, ...]) -> Tensor[B, out_channels, H3, W3] (stride of P3 = 8).
    """

    def __init__(self, in_channels: int, channels: int, num_convs: int, out_channels: int) -> None:
        super().__init__()
        self.refine = nn.ModuleList(_conv_bn_relu(in_channels, channels) for _ in range(3))
        self.tower = nn.Sequential(*[_conv_bn_relu(channels, channels) for _ in range(num_convs)],
                                   nn.Conv2d(channels, out_channels, 1))

    def forward(self, feats: list[Tensor]) -> Tensor:
        x = self.refine[0](feats[0])
        for refine, f in zip(self.refine[1:], feats[1:3]):
            x = x + F.interpolate(refine(f), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.tower(x)


def flatten_levels(maps: list[Tensor]) -> Tensor:
    """Per level Tensor[B, C, H_l, W_l] -> Tensor[B, sum_l H_l*W_l, C] (level-major, row-major)."""
    b = maps[0].shape[0]
    return torch.cat([m.permute(0, 2, 3, 1).reshape(b, -1, m.shape[1]) for m in maps], dim=1)


def topk_candidates(scores: Tensor, score_thr: float, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """The ``k`` best (location, class) pairs with score > ``score_thr``.

    Args:
        scores: Tensor[N, K], float scores of N locations for K classes.
    Returns:
        loc_idx (Tensor[m], int64), labels (Tensor[m], int64), values (Tensor[m]), m <= k,
        sorted by score descending.
    """
    flat = scores.reshape(-1)
    vals, idx = flat.topk(min(k, flat.numel()))
    keep = vals > score_thr
    vals, idx = vals[keep], idx[keep]
    num_classes = scores.shape[1]
    return idx // num_classes, idx % num_classes, vals


def zero_loss(*tensors: Tensor) -> Tensor:
    """0 attached to the graph of every tensor (keeps DDP's unused-parameter check happy)."""
    return sum(t.sum() * 0.0 for t in tensors)


def check_targets(targets: list[Targets], batch_size: int, num_classes: int, method: str) -> None:
    """Validate training targets.

    Raises:
        ValueError: wrong number of targets, inconsistent N, or a label outside [0, num_classes)
            (the message names the image's position in the batch).
    """
    if len(targets) != batch_size:
        raise ValueError(f"{method}: {len(targets)} targets for a batch of {batch_size} images")
    for i, t in enumerate(targets):
        n = t.labels.shape[0]
        if t.masks.shape[0] != n or t.boxes.shape[0] != n:
            raise ValueError(f"{method}: image {i} of the batch has {t.masks.shape[0]} masks, "
                             f"{t.boxes.shape[0]} boxes and {n} labels")
        if n and (int(t.labels.min()) < 0 or int(t.labels.max()) >= num_classes):
            raise ValueError(f"{method}: image {i} of the batch has labels {t.labels.tolist()} outside "
                             f"[0, {num_classes})")


# ---------------------------------------------------------------------------------------------
@register("condinst")
class CondInst(Method):
    """CondInst; see the module docstring.

    ``forward_test`` returns a dict of per-level head maps (``cls``, ``params``, ...) plus
    ``mask_feats`` (Tensor[B, mask_channels, H/8, W/8]) and ``input_hw`` (padded size).
    """

    Config = CondInstConfig
    default_postprocess: ClassVar[str] = "box"
    has_boxes: ClassVar[bool] = True  # the head predicts boxes (UniInst: boxes from masks)

    def __init__(self, cfg: CondInstConfig) -> None:
        super().__init__(cfg)
        if cfg.num_classes <= 0:
            raise ValueError(f"{cfg.name}: method.num_classes must be set (> 0), got {cfg.num_classes}")
        self.backbone = build_backbone(cfg.backbone, cfg.pretrained)
        self.fpn = build_fpn(self.backbone.out_channels, cfg.fpn_channels, extra="p6p7", start_level=1)
        self.strides: list[int] = list(self.fpn.strides)  # [8, 16, 32, 64, 128]
        self.mask_branch = MaskBranch(cfg.fpn_channels, cfg.mask_branch_channels, cfg.mask_branch_num_convs,
                                      cfg.mask_channels)
        self.num_dynamic_params = dynamic_param_count(cfg.mask_channels + 2, cfg.dynamic_channels,
                                                      cfg.dynamic_num_layers)
        self.build_head()

    # -- network -----------------------------------------------------------------------------
    def build_head(self) -> None:
        """FCOS head: class tower -> cls; box tower -> ltrb, centre-ness, controller."""
        c, cfg = self.cfg.fpn_channels, self.cfg
        self.cls_tower = conv_tower(c, cfg.num_tower_convs)
        self.box_tower = conv_tower(c, cfg.num_tower_convs)
        self.cls_logits = head_conv(c, cfg.num_classes, bias=-math.log((1 - cfg.prior_prob) / cfg.prior_prob))
        self.bbox_pred = head_conv(c, 4)
        self.ctrness = head_conv(c, 1)
        self.controller = head_conv(c, self.num_dynamic_params)
        self.scales = nn.Parameter(torch.ones(len(self.strides)))

    def head(self, feats: list[Tensor]) -> dict[str, list[Tensor]]:
        """Per level: cls (B, K, H, W) logits; reg (B, 4, H, W) ltrb in px; ctr (B, 1, H, W) logits;
        params (B, 169, H, W)."""
        out: dict[str, list[Tensor]] = {"cls": [], "reg": [], "ctr": [], "params": []}
        for lvl, f in enumerate(feats):
            c, b = self.cls_tower(f), self.box_tower(f)
            out["cls"].append(self.cls_logits(c))
            out["reg"].append(F.relu(self.scales[lvl] * self.bbox_pred(b)) * self.strides[lvl])
            out["ctr"].append(self.ctrness(b))
            out["params"].append(self.controller(b))
        return out

    def features(self, images: Tensor) -> tuple[list[Tensor], Tensor]:
        """[P3..P7] and the mask features (B, mask_channels, H/8, W/8)."""
        feats = self.fpn(self.backbone(images))
        return feats, self.mask_branch(feats[:3])

    def locations(self, feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        """All head locations: (x, y) Tensor[N, 2] in input px, and their level Tensor[N] int64."""
        locs, lvls = [], []
        for lvl, f in enumerate(feats):
            h, w = f.shape[-2:]
            locs.append(grid_locations(h, w, self.strides[lvl], f.device))
            lvls.append(torch.full((h * w,), lvl, dtype=torch.long, device=f.device))
        return torch.cat(locs), torch.cat(lvls)

    def rel_coord_norms(self, device: torch.device) -> Tensor:
        """Normaliser of the relative coordinates per level (Tensor[L], float)."""
        if self.cfg.rel_coord_norm == "stride":
            return torch.tensor(self.strides, dtype=torch.float32, device=device)
        soi = list(self.cfg.sizes_of_interest)
        return torch.tensor(soi + [2 * soi[-1]], dtype=torch.float32, device=device)

    def mask_logits(self, mask_feats: Tensor, params: Tensor, locations: Tensor, norms: Tensor) -> Tensor:
        """Dynamic mask head of n instances on one image's mask features (CondInst Eq. 1).

        Args:
            mask_feats: Tensor[C, h, w], mask features of the image (stride 8).
            params: Tensor[n, 169], controller outputs at the instances' locations.
            locations: Tensor[n, 2], float, instance locations (x, y) in input px.
            norms: Tensor[n], float, relative-coordinate normaliser per instance.
        Returns:
            Tensor[n, 2h, 2w], mask logits at stride 4.
        """
        c, h, w = mask_feats.shape
        n = params.shape[0]
        if n == 0:
            return mask_feats.new_zeros((0, 2 * h, 2 * w))
        stride = self.strides[0]
        pix = grid_locations(h, w, stride, mask_feats.device)
        rel = relative_coords(locations, pix, norms).to(mask_feats.dtype)  # (n, 2, h*w)
        x = torch.cat([rel, mask_feats.reshape(1, c, h * w).expand(n, c, h * w)], dim=1)  # (n, 2+C, hw)
        weights, biases = split_dynamic_params(params, c + 2, self.cfg.dynamic_channels,
                                               self.cfg.dynamic_num_layers)
        logits = dynamic_mask_head(x, weights, biases).reshape(n, 1, h, w)
        logits = F.interpolate(logits, scale_factor=stride // MASK_OUT_STRIDE, mode="bilinear",
                               align_corners=False)
        return logits[:, 0]

    # -- training ----------------------------------------------------------------------------
    def size_ranges(self, device: torch.device) -> Tensor:
        """FCOS size range per level, Tensor[L, 2] px."""
        soi = [0.0] + [float(s) for s in self.cfg.sizes_of_interest] + [float("inf")]
        return torch.tensor([[soi[i], soi[i + 1]] for i in range(len(self.strides))], device=device)

    def forward(self, images: Tensor, targets: list[Targets]) -> dict[str, Tensor]:
        """Training losses loss_cls, loss_box, loss_ctr, loss_mask (see the module docstring).

        Raises:
            ValueError: bad targets (``check_targets``).
        """
        cfg = self.cfg
        check_targets(targets, images.shape[0], cfg.num_classes, cfg.name)
        feats, mask_feats = self.features(images)
        out = self.head(feats)
        cls, reg, ctr, params = (flatten_levels(out[k]) for k in ("cls", "reg", "ctr", "params"))
        locs, lvls = self.locations(feats)
        strides = torch.tensor(self.strides, dtype=torch.float32, device=images.device)[lvls]
        ranges = self.size_ranges(images.device)[lvls]
        norms = self.rel_coord_norms(images.device)[lvls]

        cls_t = torch.zeros_like(cls)
        pos_img, pos_loc, pos_gt, pos_ltrb = [], [], [], []
        for i, t in enumerate(targets):
            t = t.to(images.device)
            boxes = t.boxes.float()
            gt_idx, ltrb = fcos_targets(locs, strides, ranges, boxes, mask_centers(t.masks, boxes),
                                        cfg.center_sample_radius)
            loc = (gt_idx >= 0).nonzero(as_tuple=True)[0]
            cls_t[i, loc, t.labels[gt_idx[loc]]] = 1.0
            pos_img.append(torch.full_like(loc, i))
            pos_loc.append(loc)
            pos_gt.append(gt_idx[loc])
            pos_ltrb.append(ltrb[loc])
        self.last_positives_per_gt = torch.cat([torch.bincount(g.cpu(), minlength=len(t.labels))
                                                for g, t in zip(pos_gt, targets)])
        pos_img, pos_loc, pos_gt, pos_ltrb = (torch.cat(x) for x in (pos_img, pos_loc, pos_gt, pos_ltrb))
        num_pos = pos_loc.numel()

        losses = {"loss_cls": sigmoid_focal_loss(cls, cls_t, cfg.focal_alpha, cfg.focal_gamma, "sum")
                  / max(num_pos, 1)}
        if num_pos:
            ctr_t = centerness_targets(pos_ltrb)
            p_loc = locs[pos_loc]
            pred = reg[pos_img, pos_loc].float()
            pred_boxes = torch.cat([p_loc - pred[:, :2], p_loc + pred[:, 2:]], dim=1)
            tgt_boxes = torch.cat([p_loc - pos_ltrb[:, :2], p_loc + pos_ltrb[:, 2:]], dim=1)
            giou = generalized_box_iou_loss(pred_boxes, tgt_boxes, reduction="none")
            losses["loss_box"] = (giou * ctr_t).sum() / ctr_t.sum().clamp(min=1e-6)
            losses["loss_ctr"] = F.binary_cross_entropy_with_logits(
                ctr[pos_img, pos_loc, 0], ctr_t, reduction="sum") / num_pos
        else:
            losses["loss_box"] = zero_loss(reg)
            losses["loss_ctr"] = zero_loss(ctr)
        losses["loss_mask"] = self.mask_loss(mask_feats, params, targets, locs, norms,
                                             pos_img, pos_loc, pos_gt)
        return losses

    def mask_loss(self, mask_feats: Tensor, params: Tensor, targets: list[Targets], locs: Tensor,
                  norms: Tensor, pos_img: Tensor, pos_loc: Tensor, pos_gt: Tensor) -> Tensor:
        """Mean dice loss over at most ``max_proposals`` randomly sampled positives.

        Args:
            mask_feats: Tensor[B, C, h, w]; params: Tensor[B, N, 169] (flattened levels);
            locs / norms: Tensor[N, 2] / Tensor[N]; pos_img / pos_loc / pos_gt: Tensor[M] int64 giving
            each positive's image, location and ground-truth index.
        Returns:
            scalar Tensor (0 attached to the graph when M == 0).
        """
        if pos_loc.numel() > self.cfg.max_proposals:
            sel = torch.randperm(pos_loc.numel(), device=pos_loc.device)[: self.cfg.max_proposals]
            pos_img, pos_loc, pos_gt = pos_img[sel], pos_loc[sel], pos_gt[sel]
        per_inst = []
        for i in torch.unique(pos_img).tolist():
            m = pos_img == i
            loc, gt = pos_loc[m], pos_gt[m]
            logits = self.mask_logits(mask_feats[i], params[i, loc], locs[loc], norms[loc])
            gt_masks = masks_at_stride(targets[i].masks.to(logits.device)[gt], logits.shape[-2:],
                                       MASK_OUT_STRIDE)
            per_inst.append(dice_loss(logits.sigmoid(), gt_masks, eps=self.cfg.dice_eps))
        if not per_inst:
            return zero_loss(mask_feats, params)
        return torch.cat(per_inst).mean()

    # -- inference ---------------------------------------------------------------------------
    def forward_test(self, images: Tensor) -> dict:
        """The network: per-level head maps, mask features and the padded input size."""
        feats, mask_feats = self.features(images)
        out: dict = self.head(feats)
        out["mask_feats"] = mask_feats
        out["input_hw"] = tuple(images.shape[-2:])
        return out

    def postprocess_kind(self) -> str:
        kind = self.cfg.postprocess
        return self.default_postprocess if kind == "default" else kind

    def candidates(self, raw: dict, i: int, image_size: tuple[int, int]) -> dict[str, Tensor | None]:
        """Image ``i``'s scored candidates: per level cls*ctr > score_thr, top nms_pre.

        Returns:
            dict with scores (Tensor[n], sqrt(cls*ctr)), labels (Tensor[n]), locations (Tensor[n, 2]),
            levels (Tensor[n]), params (Tensor[n, 169]), boxes (Tensor[n, 4] x1y1x2y2 clipped to the
            image, input px).
        """
        h, w = image_size
        parts: dict[str, list[Tensor]] = {k: [] for k in ("scores", "labels", "locations", "levels",
                                                          "params", "boxes")}
        for lvl in range(len(self.strides)):
            cls = raw["cls"][lvl][i].sigmoid()  # (K, H, W)
            ctr = raw["ctr"][lvl][i].sigmoid()
            k, hh, ww = cls.shape
            scores = (cls * ctr).permute(1, 2, 0).reshape(hh * ww, k)
            loc_idx, labels, vals = topk_candidates(scores, self.cfg.score_thr, self.cfg.nms_pre)
            loc = grid_locations(hh, ww, self.strides[lvl], cls.device)[loc_idx]
            ltrb = raw["reg"][lvl][i].permute(1, 2, 0).reshape(hh * ww, 4)[loc_idx]
            boxes = torch.cat([loc - ltrb[:, :2], loc + ltrb[:, 2:]], dim=1)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            parts["scores"].append(vals.sqrt())
            parts["labels"].append(labels)
            parts["locations"].append(loc)
            parts["levels"].append(torch.full_like(labels, lvl))
            parts["params"].append(raw["params"][lvl][i].flatten(1).t()[loc_idx])
            parts["boxes"].append(boxes)
        return {k: torch.cat(v) for k, v in parts.items()}

    def postprocess(self, raw: dict, image_sizes: list[tuple[int, int]],
                    orig_sizes: list[tuple[int, int]]) -> list[Instances]:
        """Candidates -> post-processing (``cfg.postprocess``) -> masks at the original size."""
        return [self.finalize(raw["mask_feats"][i], self.candidates(raw, i, image_sizes[i]),
                              image_sizes[i], orig_sizes[i])
                for i in range(raw["mask_feats"].shape[0])]

    def finalize(self, mask_feats: Tensor, cand: dict[str, Tensor | None], image_size: tuple[int, int],
                 orig_size: tuple[int, int]) -> Instances:
        """Apply the post-processing to one image's candidates and paste the kept masks.

        Box NMS (when the head has boxes) and "none" run before any mask is computed, so masks are
        computed for the kept detections only; mask-based kinds (and box NMS for a box-free head,
        with boxes taken from the masks) compute the masks of the ``mask_nms_pre`` best candidates
        first, binarised at stride 4 inside the image.
        """
        cfg, kind = self.cfg, self.postprocess_kind()
        h0, w0 = orig_size
        scores, labels = cand["scores"], cand["labels"]
        if scores.numel() == 0:
            return Instances.empty(h0, w0, device=scores.device)
        norms = self.rel_coord_norms(scores.device)[cand["levels"]]
        masks_first = kind not in ("box", "none") or (kind == "box" and not self.has_boxes)
        common = dict(max_per_img=cfg.max_per_img, mask_iou_thr=cfg.mask_nms_thr, box_iou_thr=cfg.box_nms_thr)
        if masks_first:
            order = scores.argsort(descending=True)[: cfg.mask_nms_pre]
            cand = {k: (v[order] if v is not None else None) for k, v in cand.items()}
            scores, labels = cand["scores"], cand["labels"]
            probs = self.mask_logits(mask_feats, cand["params"], cand["locations"], norms[order]).sigmoid()
            h4, w4 = -(-image_size[0] // MASK_OUT_STRIDE), -(-image_size[1] // MASK_OUT_STRIDE)
            binary = probs[:, :h4, :w4] > cfg.mask_thr
            # boxes None (box-free head): apply_postprocess takes them from the stride-4 masks
            keep, new_scores = apply_postprocess(kind, masks=binary, scores=scores, labels=labels,
                                                 boxes=cand["boxes"], **common)
            probs = probs[keep]
        else:  # box NMS with predicted boxes, or "none": no mask needed (placeholder [n, 1, 1])
            keep, new_scores = apply_postprocess(kind, masks=scores.new_zeros((scores.numel(), 1, 1)),
                                                 scores=scores, labels=labels, boxes=cand["boxes"], **common)
            probs = self.mask_logits(mask_feats, cand["params"][keep], cand["locations"][keep],
                                     norms[keep]).sigmoid()
        masks = self.paste_masks(probs, image_size, orig_size)
        return Instances(masks=masks, scores=new_scores.clamp(0, 1).float(), labels=labels[keep].long())

    def paste_masks(self, probs: Tensor, image_size: tuple[int, int], orig_size: tuple[int, int]) -> Tensor:
        """Stride-4 mask probabilities (Tensor[m, H4, W4]) -> bool Tensor[m, H0, W0] (> mask_thr)."""
        h, w = image_size
        if probs.shape[0] == 0:
            return torch.zeros((0, *orig_size), dtype=torch.bool, device=probs.device)
        up = F.interpolate(probs[:, None], scale_factor=MASK_OUT_STRIDE, mode="bilinear", align_corners=False)
        up = up[:, :, :h, :w]
        if (h, w) != tuple(orig_size):
            up = F.interpolate(up, size=tuple(orig_size), mode="bilinear", align_corners=False)
        return up[:, 0] > self.cfg.mask_thr
