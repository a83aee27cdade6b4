"""UniInst (Ou et al., "UniInst: Unique Representation for End-to-End Instance Segmentation",
Neurocomputing 2022; ``papers/uniinst.md``).

CondInst without box regression and centre-ness: a class tower predicts the class logits and an
instance tower feeds the controller (169 dynamic mask-head parameters), the re-ranking head (IoU,
conv3x3 -> 1, raw) and DeFCN's 3D Max Filtering + filter conv (``methods.dmf3d``). The mask branch,
dynamic mask head and mask decoding are CondInst's (this class subclasses ``CondInst``).

Training (per image):
* OYOR (Sec. 3.2.1, ``methods.assign.oyor_assign``): candidates Psi_g are the locations in the
  centre region of GT g (1.5 * stride around the mask centre of mass, clipped to the box, all
  levels); quality ``q = p^(1-alpha) * Dice^alpha`` (Eq. 2) with ``p = sigmoid(cls_c) * sigmoid(filter)``
  and the Dice (Eq. 3) of the candidate's own predicted mask (binarised at 0.5, stride 4) vs the GT
  mask; one-to-one Hungarian matching (Eq. 1). Matched locations are the only positives.
* loss_cls: sigmoid focal loss on ``sigmoid(cls) * sigmoid(filter)`` (probability space, through
  its logit) / number of positives; without 3DMF on the raw class logits.
* loss_mask: dice loss of the matched locations' masks (at most ``max_proposals``), as CondInst.
* loss_rank (Eq. 4, ``use_rerank``): L1 between the IoU head and the mask IoU (binarised 0.5) of the
  matched pairs, plus the same L1 averaged over the other candidates (each against the GT it has the
  highest quality for), as the authors' code does. Without re-ranking there is no IoU head.
* loss_aux (``use_aux``, DeFCN aux loss as modified by UniInst): same quality, candidates inside the
  centre region and the GT mask, top ``aux_topk`` per level, positives >= the mean of those
  qualities, each location to its best GT, sigmoid focal loss on the raw class logits.
* loss_ctr (``use_centerness``, Table 5 ablation): FCOS centre-ness BCE on every candidate w.r.t. the
  GT it is matched to (or has the highest quality for); the centre-ness then multiplies the score.

Inference: ``score = sigmoid(cls) * sigmoid(filter) * clamp(iou, 0, 1)`` (each factor only when its
toggle is on), top ``nms_pre`` (100) per level, ``score > score_thr`` (0.025), post-processing
"none" (default; "mask" / "matrix" / "box" evaluate the same model with NMS, boxes from the masks),
top ``max_per_img``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from methods import register
from methods.assign import (
    aux_assign,
    center_sampling,
    centerness_targets,
    grid_locations,
    ltrb_distances,
    mask_centers,
    mask_dice_iou,
    masks_at_stride,
    oyor_assign,
)
from methods.base import Targets
from methods.condinst import (
    MASK_OUT_STRIDE,
    CondInst,
    CondInstConfig,
    check_targets,
    conv_tower,
    flatten_levels,
    head_conv,
    topk_candidates,
    zero_loss,
)
from methods.dmf3d import MaxFiltering3D
from methods.losses import sigmoid_focal_loss


@dataclass(frozen=True)
class UniInstConfig(CondInstConfig):
    """UniInst hyper-parameters (defaults = the authors' R50 config); CondInst's fields apply.

    Attributes:
        alpha: weight of the mask Dice vs the class score in the OYOR quality (Eq. 2), 0.9.
        use_rerank: IoU re-ranking head and loss (Eq. 4).
        use_3dmf: 3D Max Filtering + filter score (DeFCN).
        use_aux: many-to-one auxiliary loss.
        use_centerness: optional centre-ness branch (Table 5 ablation; off in UniInst).
        aux_topk: candidates per level of the auxiliary assignment (9).
        score_thr / nms_pre: inference threshold (0.025) and candidates per level (100).
        rel_coord_norm: relative coordinates divided by the stride (the authors' code).
    """

    alpha: float = 0.9
    use_rerank: bool = True
    use_3dmf: bool = True
    use_aux: bool = True
    use_centerness: bool = False
    aux_topk: int = 9
    score_thr: float = 0.025
    nms_pre: int = 100
    rel_coord_norm: Literal["soi", "stride"] = "stride"

    # Same as CondInst's profiles: narrow widths and shallow towers for the CPU profiles.  UniInst's OYOR
    # assignment has no size-of-interest ranges (the inherited field is unused) and its relative
    # coordinates are divided by the stride: nothing to rescale (harness.config.SCALE_RULES).
    PROFILE_OVERRIDES: ClassVar[dict[str, dict]] = {
        "smoke": {"fpn_channels": 32, "num_tower_convs": 1, "mask_branch_channels": 16,
                  "mask_branch_num_convs": 1},
        "quick": {"fpn_channels": 64, "num_tower_convs": 2, "mask_branch_channels": 32,
                  "mask_branch_num_convs": 2},
        "paper": {},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"method.alpha must be in [0, 1], got {self.alpha}")
        if self.aux_topk <= 0:
            raise ValueError(f"method.aux_topk must be > 0, got {self.aux_topk}")


@register("uniinst")
class UniInst(CondInst):
    """UniInst; see the module docstring. Raw outputs: ``cls``, ``params`` and, per toggle, ``iou``,
    ``filter``, ``ctr`` (per-level lists), ``mask_feats``, ``input_hw``."""

    Config = UniInstConfig
    default_postprocess: ClassVar[str] = "none"
    has_boxes: ClassVar[bool] = False

    def build_head(self) -> None:
        """Class tower -> cls; instance tower -> controller, IoU head, 3DMF + filter, centre-ness."""
        c, cfg = self.cfg.fpn_channels, self.cfg
        self.cls_tower = conv_tower(c, cfg.num_tower_convs)
        self.ins_tower = conv_tower(c, cfg.num_tower_convs)
        self.cls_logits = head_conv(c, cfg.num_classes, bias=-math.log((1 - cfg.prior_prob) / cfg.prior_prob))
        self.controller = head_conv(c, self.num_dynamic_params)
        self.iou_pred = head_conv(c, 1) if cfg.use_rerank else None
        self.dmf = MaxFiltering3D(c) if cfg.use_3dmf else None
        self.ctrness = head_conv(c, 1) if cfg.use_centerness else None

    def head(self, feats: list[Tensor]) -> dict[str, list[Tensor]]:
        """Per level: cls (B, K, H, W), params (B, 169, H, W), iou / filter / ctr (B, 1, H, W) logits."""
        ins = [self.ins_tower(f) for f in feats]
        out = {"cls": [self.cls_logits(self.cls_tower(f)) for f in feats],
               "params": [self.controller(x) for x in ins]}
        if self.iou_pred is not None:
            out["iou"] = [self.iou_pred(x) for x in ins]
        if self.dmf is not None:
            out["filter"] = self.dmf(ins)
        if self.ctrness is not None:
            out["ctr"] = [self.ctrness(x) for x in ins]
        return out

    # -- training ----------------------------------------------------------------------------
    def forward(self, images: Tensor, targets: list[Targets]) -> dict[str, Tensor]:
        """Training losses loss_cls, loss_mask, loss_rank / loss_aux / loss_ctr (per toggle).

        Raises:
            ValueError: bad targets (``check_targets``).
        """
        cfg = self.cfg
        check_targets(targets, images.shape[0], cfg.num_classes, cfg.name)
        targets = [t.to(images.device) for t in targets]
        feats, mask_feats = self.features(images)
        flat = {k: flatten_levels(v) for k, v in self.head(feats).items()}  # (B, N, C) each
        cls = flat["cls"]
        locs, lvls = self.locations(feats)
        strides = torch.tensor(self.strides, dtype=torch.float32, device=images.device)[lvls]
        norms = self.rel_coord_norms(images.device)[lvls]
        assigns = [self.assign(flat, mask_feats[i], i, t, locs, lvls, strides, norms)
                   for i, t in enumerate(targets)]

        self.last_positives_per_gt = torch.cat([torch.bincount(a["pos_gt"].cpu(), minlength=len(t.labels))
                                                for a, t in zip(assigns, targets)])
        cls_t = torch.zeros_like(cls)
        for i, (a, t) in enumerate(zip(assigns, targets)):
            cls_t[i, a["pos_loc"], t.labels[a["pos_gt"]]] = 1.0
        num_pos = sum(a["pos_loc"].numel() for a in assigns)
        if self.dmf is not None:
            prob = cls.float().sigmoid() * flat["filter"].float().sigmoid()  # fp32: logit(1 - 1e-6) under AMP
            logits = torch.logit(prob, eps=1e-6)
        else:
            logits = cls
        losses = {"loss_cls": sigmoid_focal_loss(logits, cls_t, cfg.focal_alpha, cfg.focal_gamma, "sum")
                  / max(num_pos, 1)}

        pos_img = torch.cat([torch.full_like(a["pos_loc"], i) for i, a in enumerate(assigns)])
        pos_loc = torch.cat([a["pos_loc"] for a in assigns])
        pos_gt = torch.cat([a["pos_gt"] for a in assigns])
        losses["loss_mask"] = self.mask_loss(mask_feats, flat["params"], targets, locs, norms,
                                             pos_img, pos_loc, pos_gt)
        if cfg.use_rerank:
            losses["loss_rank"] = self.rank_loss(flat["iou"], assigns)
        if cfg.use_aux:
            aux_t = torch.zeros_like(cls)
            for i, (a, t) in enumerate(zip(assigns, targets)):
                aux_t[i, a["aux_loc"], t.labels[a["aux_gt"]]] = 1.0
            num_aux = sum(a["aux_loc"].numel() for a in assigns)
            losses["loss_aux"] = sigmoid_focal_loss(cls, aux_t, cfg.focal_alpha, cfg.focal_gamma, "sum") / max(
                num_aux, 1)
        if cfg.use_centerness:
            n_cand = sum(a["cand_loc"].numel() for a in assigns)
            terms = [F.binary_cross_entropy_with_logits(flat["ctr"][i, a["cand_loc"], 0], a["ctr_t"],
                                                        reduction="sum")
                     for i, a in enumerate(assigns) if a["cand_loc"].numel()]
            losses["loss_ctr"] = sum(terms) / n_cand if terms else zero_loss(flat["ctr"])
        return losses

    @torch.no_grad()
    def assign(self, flat: dict[str, Tensor], mask_feats: Tensor, i: int, t: Targets, locs: Tensor,
               lvls: Tensor, strides: Tensor, norms: Tensor) -> dict[str, Tensor]:
        """OYOR, auxiliary assignment and the re-ranking / centre-ness targets of image ``i``.

        Args:
            flat: flattened head outputs (each Tensor[B, N, C]); mask_feats: Tensor[C, h, w] of image i;
            t: its targets (input frame); locs / lvls / strides / norms: per location Tensor[N, 2] /
            [N] / [N] / [N].
        Returns:
            dict of int64 index tensors pos_loc / pos_gt (OYOR pairs), aux_loc / aux_gt (aux positives),
            cand_loc (all candidate locations, n) and float tensors of length n: iou_t (mask IoU of
            the candidate's mask with its GT: the matched GT, else the one of highest quality),
            ctr_t (centre-ness w.r.t. that GT), and bool ``matched``.
        """
        cfg, dev = self.cfg, locs.device
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        out = {"pos_loc": empty, "pos_gt": empty, "aux_loc": empty, "aux_gt": empty, "cand_loc": empty,
               "iou_t": locs.new_zeros(0), "ctr_t": locs.new_zeros(0),
               "matched": torch.zeros(0, dtype=torch.bool, device=dev)}
        if len(t) == 0:
            return out
        boxes = t.boxes.float()
        cand = center_sampling(locs, strides, mask_centers(t.masks, boxes), boxes, cfg.center_sample_radius)
        cand_loc = cand.any(dim=1).nonzero(as_tuple=True)[0]
        n = cand_loc.numel()
        if n == 0:
            return out
        is_cand = cand[cand_loc].t()  # (G, n)
        logits = self.mask_logits(mask_feats, flat["params"][i, cand_loc], locs[cand_loc], norms[cand_loc])
        gt_masks = masks_at_stride(t.masks, logits.shape[-2:], MASK_OUT_STRIDE)
        dice, iou = mask_dice_iou(gt_masks.flatten(1), (logits >= 0).float().flatten(1), cfg.dice_eps)
        p = flat["cls"][i, cand_loc].float().sigmoid()[:, t.labels].t()  # (G, n)
        if self.dmf is not None:
            p = p * flat["filter"][i, cand_loc, 0].float().sigmoid()[None]
        quality = p ** (1 - cfg.alpha) * dice ** cfg.alpha  # UniInst Eq. 2
        quality = torch.where(is_cand, quality, torch.full_like(quality, -1.0))
        gt_idx, col = oyor_assign(quality)

        owner = quality.argmax(dim=0)  # every column has a candidate GT (q >= 0 > -1)
        owner[col] = gt_idx
        matched = torch.zeros(n, dtype=torch.bool, device=dev)
        matched[col] = True
        ar = torch.arange(n, device=dev)
        out.update(pos_loc=cand_loc[col], pos_gt=gt_idx, cand_loc=cand_loc, matched=matched,
                   iou_t=iou[owner, ar], ctr_t=centerness_targets(ltrb_distances(locs[cand_loc], boxes)[ar, owner]))
        if cfg.use_aux:
            h, w = t.masks.shape[-2:]
            x, y = locs[cand_loc, 0].long(), locs[cand_loc, 1].long()
            inside = (x < w) & (y < h)
            in_mask = torch.zeros_like(is_cand)
            in_mask[:, inside] = t.masks[:, y[inside], x[inside]]
            aux_quality = torch.where(is_cand & in_mask, quality, torch.full_like(quality, -1.0))
            aux_gt = aux_assign(aux_quality, lvls[cand_loc], cfg.aux_topk)
            keep = aux_gt >= 0
            out.update(aux_loc=cand_loc[keep], aux_gt=aux_gt[keep])
        return out

    def rank_loss(self, iou_pred: Tensor, assigns: list[dict[str, Tensor]]) -> Tensor:
        """Re-ranking L1 (UniInst Eq. 4): mean over matched pairs + mean over the other candidates.

        Args:
            iou_pred: Tensor[B, N, 1], raw IoU head outputs; assigns: per image ``assign`` outputs.
        """
        err_m, err_o = [], []
        for i, a in enumerate(assigns):
            if a["cand_loc"].numel() == 0:
                continue
            err = (iou_pred[i, a["cand_loc"], 0] - a["iou_t"]).abs()
            err_m.append(err[a["matched"]])
            err_o.append(err[~a["matched"]])
        if not err_m:
            return zero_loss(iou_pred)
        err_m, err_o = torch.cat(err_m), torch.cat(err_o)
        return err_m.sum() / max(err_m.numel(), 1) + err_o.sum() / max(err_o.numel(), 1)

    # -- inference ---------------------------------------------------------------------------
    def candidates(self, raw: dict, i: int, image_size: tuple[int, int]) -> dict[str, Tensor | None]:
        """Image ``i``'s candidates: per level score = cls * filter * iou (* ctr), > score_thr, top
        nms_pre. Same keys as ``CondInst.candidates``; ``boxes`` is None (box-free)."""
        parts: dict[str, list[Tensor]] = {k: [] for k in ("scores", "labels", "locations", "levels", "params")}
        for lvl in range(len(self.strides)):
            score = raw["cls"][lvl][i].sigmoid()  # (K, H, W)
            if "filter" in raw:
                score = score * raw["filter"][lvl][i].sigmoid()
            if "ctr" in raw:
                score = score * raw["ctr"][lvl][i].sigmoid()
            if "iou" in raw:
                score = score * raw["iou"][lvl][i].clamp(0, 1)
            k, hh, ww = score.shape
            loc_idx, labels, vals = topk_candidates(score.permute(1, 2, 0).reshape(hh * ww, k),
                                                    self.cfg.score_thr, self.cfg.nms_pre)
            parts["scores"].append(vals)
            parts["labels"].append(labels)
            parts["locations"].append(grid_locations(hh, ww, self.strides[lvl], score.device)[loc_idx])
            parts["levels"].append(torch.full_like(labels, lvl))
            parts["params"].append(raw["params"][lvl][i].flatten(1).t()[loc_idx])
        cand: dict[str, Tensor | None] = {k: torch.cat(v) for k, v in parts.items()}
        cand["boxes"] = None
        return cand
