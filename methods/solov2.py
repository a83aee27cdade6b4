"""SOLOv2: dynamic, fast instance segmentation (Wang et al., NeurIPS 2020), and the improved SOLOv2.

Architecture (reference facts: AdelaiDet / mmdetection SOLOv2):
backbone [C2..C5] -> FPN [P2..P6]; the category / kernel branches see five levels
[P2 resized x0.5, P3, P4, P5, P6 resized to P5] (strides 8, 8, 16, 32, 32), each resized to its
S x S grid (``num_grids``).  The kernel branch gets two CoordConv channels (x, y in [-1, 1]); the
category branch drops them.  Towers of conv3x3 + GN + ReLU; the category head predicts
``num_classes`` logits per cell, the kernel head an E-dim 1x1 dynamic kernel per cell.  The unified
mask feature branch fuses P2..P5 (coord channels on P5) into E channels at stride 4; the mask of
cell k is ``sigmoid(kernel_k . F)``.

Training: a cell is positive for an object when it lies in the object's centre region (centre of
mass +- 0.5 * sigma * box size, clamped to the 3 x 3 cells around the centre cell) on every level
whose ``scale_ranges`` contains sqrt(box w * h) (input pixels).  Where several objects claim a cell
the later object overwrites the earlier (reference behaviour), or, with ``use_aml``, the object of
minimum matching cost wins.  Losses: focal over all cells / (num_pos + 1) and
``ins_loss_weight`` * mean dice over positives (mask targets at stride 4).

Improved SOLOv2 (Liu & Kong, "real-time instance segmentation ... location attention"): three
toggles, all off by default.
* ``use_cspam``: the CSPAM backbone (``methods.backbones.cspam.build_cspam_backbone``).
* ``use_twfpn_csmf``: the two-way FPN (category / kernel branches read its bottom-up levels
  N2..N6) and the cross-stage mask-feature fusion branch (``methods.necks.twfpn``).
* ``use_aml``: adaptive minimum-loss matching (Sec. 2.3), implemented here.  Choices where the
  paper is open (each a config field or stated here):
  - the mask loss becomes Eq. 1 (smoothed dice on sums + centroid factor epsilon, Eq. 2), averaged
    over positives and still weighted by ``ins_loss_weight``; the category loss stays focal;
  - C_P is the centre of mass of the soft (sigmoid) predicted mask, so epsilon is differentiable;
    the coordinate unit is ``aml_centroid_units`` ("mask_px": stride-4 mask pixels, the literal
    reading and the default; "normalized": divided by the mask map size).  With "mask_px" epsilon
    is large while predicted masks are far off (initial gradient norm ~1000 vs ~11 on a 128 px toy
    batch), so keep the warm-up and gradient clipping; "normalized" is the gentler option;
  - Eq. 3 ``sigmoid(L_cate) + sigmoid(aml_lambda * L_mask)`` is a per-cell matching cost: L_cate is
    the cell's focal loss summed over classes with the candidate's class as target, L_mask the
    Eq. 1 term of the cell's current (detached) predicted mask vs the candidate's mask.  Only cells
    claimed by two or more objects on a level are re-assigned; the argmin wins.  ``aml_lambda``
    defaults to 3 (the role of SOLOv2's mask weight; the paper gives no value).

Coordinate frames: the grid spans the padded input (4 x the mask-feature size), as in the
reference, so a cell means the same region in training and inference.  Centres of mass use pixel
centres at ``i + 0.5``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods import register, register_preset
from methods.backbones import build_backbone
from methods.base import Instances, Method, Targets
from methods.config import MethodConfig, PostProcess
from methods.losses import aml_mask_loss, aml_matching_cost, dice_loss, sigmoid_focal_loss
from methods.necks import build_fpn
from methods.postprocess import apply_postprocess

LEVEL_STRIDES = (8, 8, 16, 32, 32)  # strides of the five category / kernel levels


@dataclass(frozen=True)
class SOLOv2Config(MethodConfig):
    """SOLOv2 config; the defaults are the reference (AdelaiDet R50) values.

    Attributes:
        fpn_channels: FPN width.
        num_grids: S per level (five levels).
        scale_ranges: (lo, hi) of sqrt(box w * h) in input pixels per level (overlapping).
        sigma: centre-region scale (half extent = 0.5 * box size * sigma).
        ins_convs / cate_convs: depth of the kernel / category towers.
        head_channels: tower width.
        mask_feat_channels: E, channels of the unified mask feature = dynamic kernel length.
        mask_branch_channels: inner width of the mask feature branch.
        num_groups: GroupNorm groups (must divide the tower, branch and E widths).
        focal_alpha / focal_gamma: category focal loss.
        ins_loss_weight: weight of the mask (dice) loss.
        score_thr: category score threshold at inference.
        mask_thr: mask binarisation threshold.
        nms_pre: candidates kept before the NMS variant.
        update_thr: minimum score after Matrix NMS.
        matrix_sigma: Matrix NMS gaussian sigma.
        min_area_factor: a predicted mask is kept when its area (stride-4 pixels) exceeds
            ``min_area_factor`` x its level stride.  1.0 is the reference rule (AdelaiDet, for ~800 px
            images); the quick / smoke profiles use 0.25 because their canvases are 128 / 64 px and the
            reference rule would drop every object under ~11 px (our "small" objects are 8-16 px).
        use_cspam / use_twfpn_csmf / use_aml: improved-SOLOv2 toggles (module docstring).
        aml_lambda: lambda of Eq. 3.
        aml_centroid_units: unit of the centroids in Eq. 2 ("normalized", the default: coordinates divided
            by the mask map's size; or "mask_px", stride-4 mask pixels).  The paper states no unit.  In
            mask pixels the centroid term dominates: the mask loss starts at ~77 against ~2.5 and the
            gradient norm at ~3,100 against ~8, and the model learns nothing (AP 0.0); no study uses it
            but the reading-sensitivity run.
        aml_dice_form: the dice part of Eq. 2: "squared" (the default: SOLOv2's own dice, sums of squares in
            the denominator, ``methods.losses.dice_loss``, which AML replaces; AdelaiDet / mmdet SOLOv2) or
            "linear" (sum(m) + sum(g) + 1, Eq. 2 as printed).  Quick profile of 2026-12-01, seeds 0 / 1:
            squared 24.6 / 26.0 against the baseline's 24.7 / 25.9; linear 17.1 +- 11.2 over 3 seeds.
        cspam_pam_after: with ``use_cspam``, the stages (1-3) followed by a position attention module;
            () keeps the CSP + Mish stages alone (a diagnostic, not a row of the paper).
        cspam_theta_on: with ``use_cspam``, where the PAM's theta acts: "residual" (the default, DANet /
            SAGAN: X + theta x concat(T1, T2), identity at initialisation), "reduced" (the paper's text read
            literally: theta x T1, so the module starts as the attention path alone) or "attention"
            (theta x T2, the module starts as the reduced map).  See
            ``methods.backbones.cspam.PositionAttention``.
        cspam_pam_init: "default" (PyTorch's init of the PAM's 1x1 convs, as DANet) or "kaiming".
        cspam_logit_scale: "none" (P^T A unscaled, paper and DANet) or "sqrt" (divided by sqrt(C1)).
        cspam_min_reduced_channels: floor on the PAM's C1 = C / 8 (1 = no floor, the paper).
        cspam_csp_width: "half" (CSP blocks at half the stage width: the paper's "the number of parameters
            ... is reduced") or "full" (the ResNet's 3x3 widths, as timm's cspresnet50).
    """

    postprocess: PostProcess = "matrix"
    fpn_channels: int = 256
    num_grids: tuple[int, ...] = (40, 36, 24, 16, 12)
    scale_ranges: tuple[tuple[int, int], ...] = ((1, 96), (48, 192), (96, 384), (192, 768), (384, 2048))
    sigma: float = 0.2
    ins_convs: int = 4
    cate_convs: int = 4
    head_channels: int = 512
    mask_feat_channels: int = 256
    mask_branch_channels: int = 128
    num_groups: int = 32
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    ins_loss_weight: float = 3.0
    score_thr: float = 0.1
    mask_thr: float = 0.5
    nms_pre: int = 500
    update_thr: float = 0.05
    matrix_sigma: float = 2.0
    min_area_factor: float = 1.0
    use_cspam: bool = False
    use_twfpn_csmf: bool = False
    use_aml: bool = False
    aml_lambda: float = 3.0
    aml_centroid_units: Literal["mask_px", "normalized"] = "normalized"
    aml_dice_form: Literal["squared", "linear"] = "squared"
    cspam_pam_after: tuple[int, ...] = (2, 3)
    cspam_theta_on: Literal["reduced", "attention", "residual"] = "residual"
    cspam_pam_init: Literal["default", "kaiming"] = "default"
    cspam_logit_scale: Literal["none", "sqrt"] = "none"
    cspam_min_reduced_channels: int = 1
    cspam_csp_width: Literal["half", "full"] = "half"

    INFERENCE_ONLY: ClassVar[tuple[str, ...]] = (
        "postprocess", "max_per_img", "score_thr", "mask_thr", "nms_pre", "update_thr", "matrix_sigma",
        "min_area_factor")
    # cspam_theta_on's default changed (reduced -> residual, 2026-12-02), so it is hashed again at every value
    HASH_OMIT_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("cspam_pam_after",)
    PROFILE_OVERRIDES: ClassVar[dict[str, dict]] = {
        # 64 px canvas: the 128 px choices below halved.
        "smoke": dict(fpn_channels=32, head_channels=32, ins_convs=1, cate_convs=1, mask_branch_channels=16,
                      mask_feat_channels=16, num_groups=4, num_grids=(8, 6, 4, 3, 2), min_area_factor=0.25,
                      scale_ranges=((1, 12), (6, 24), (12, 48), (24, 96), (48, 2048))),
        # 128 px canvas, objects with sqrt(area) ~8..100 px.  The ranges still overlap and cover
        # [1, 2048], so every object with a non-empty mask has at least one level and its centre
        # cell is always positive.  They are the reference ranges / 4 (not / 6.25 = 800 / 128) so
        # that the 8..100 px objects spread over all five levels instead of crowding levels 0-2;
        # S keeps each level's cell (128 / S = 8, 11, 16, 21, 32 px) at or below the smallest
        # object of its range, as in the reference (800 / 40 = 20 px cells for objects >= ~16 px).
        # The 192-px alternative (harness.config.quick_canvas_overrides(m, 192)) takes the ranges x 1.5.
        "quick": dict(fpn_channels=64, head_channels=64, ins_convs=2, cate_convs=2, mask_branch_channels=32,
                      mask_feat_channels=32, num_groups=8, num_grids=(16, 12, 8, 6, 4), min_area_factor=0.25,
                      scale_ranges=((1, 24), (12, 48), (24, 96), (48, 192), (96, 2048))),
        "paper": {},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        # normalise lists (JSON round trips, --set) to hashable tuples
        object.__setattr__(self, "num_grids", tuple(int(s) for s in self.num_grids))
        object.__setattr__(self, "scale_ranges", tuple((int(lo), int(hi)) for lo, hi in self.scale_ranges))
        object.__setattr__(self, "cspam_pam_after", tuple(int(k) for k in self.cspam_pam_after))
        if not set(self.cspam_pam_after) <= {1, 2, 3} or self.cspam_theta_on not in ("reduced", "attention",
                                                                                    "residual"):
            raise ValueError(f"solov2: cspam_pam_after must name stages 1-3 (got {self.cspam_pam_after}) and "
                             f"cspam_theta_on be 'reduced', 'attention' or 'residual' (got {self.cspam_theta_on!r})")
        if self.cspam_min_reduced_channels < 1:
            raise ValueError(f"solov2: cspam_min_reduced_channels must be >= 1, got {self.cspam_min_reduced_channels}")
        n = len(LEVEL_STRIDES)
        if len(self.num_grids) != n or len(self.scale_ranges) != n:
            raise ValueError(f"solov2: num_grids and scale_ranges need {n} levels, got "
                             f"{self.num_grids} / {self.scale_ranges}")
        if min(self.num_grids) < 1 or any(lo >= hi for lo, hi in self.scale_ranges):
            raise ValueError(f"solov2: bad num_grids {self.num_grids} or scale_ranges {self.scale_ranges}")
        for key in ("head_channels", "mask_branch_channels", "mask_feat_channels"):
            if getattr(self, key) % self.num_groups:
                raise ValueError(f"solov2: {key}={getattr(self, key)} not divisible by num_groups="
                                 f"{self.num_groups}")
        if self.sigma <= 0 or self.aml_lambda <= 0:
            raise ValueError("solov2: sigma and aml_lambda must be > 0")
        for key in ("score_thr", "mask_thr", "update_thr"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"solov2: {key} must be in [0, 1], got {getattr(self, key)}")
        if self.nms_pre <= 0 or self.ins_convs < 1 or self.cate_convs < 1:
            raise ValueError("solov2: nms_pre, ins_convs and cate_convs must be >= 1")


class SOLOv2Output(NamedTuple):
    """Raw network outputs (``forward_test``).

    cate_logits: per level Tensor[B, C, S, S] (raw logits).  kernel_preds: per level Tensor[B, E, S, S].
    mask_feats: Tensor[B, E, Hm, Wm], stride 4 of the padded input.
    """

    cate_logits: list[Tensor]
    kernel_preds: list[Tensor]
    mask_feats: Tensor


# ---------------------------------------------------------------------------------------------
# building blocks
def coord_features(x: Tensor) -> Tensor:
    """CoordConv channels for x: Tensor[B, C, H, W] -> Tensor[B, 2, H, W] (x then y, linspace -1..1)."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy])[None].expand(b, 2, h, w)


def points_nms(heat: Tensor) -> Tensor:
    """Keep local maxima of a 2x2 window (SOLO point NMS). heat: Tensor[B, C, S, S] -> same shape."""
    hmax = F.max_pool2d(heat, kernel_size=2, stride=1, padding=1)[..., :-1, :-1]
    return heat * (hmax == heat)


def _conv_gn_relu(cin: int, cout: int, groups: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.GroupNorm(groups, cout),
                         nn.ReLU(inplace=True))


def split_levels(feats: list[Tensor]) -> list[Tensor]:
    """[P2..P6] -> [P2 resized to P3's size (x0.5), P3, P4, P5, P6 resized to P5's size]."""
    p2, p3, p4, p5, p6 = feats
    return [F.interpolate(p2, size=p3.shape[-2:], mode="bilinear", align_corners=False), p3, p4, p5,
            F.interpolate(p6, size=p5.shape[-2:], mode="bilinear", align_corners=False)]


class SOLOv2Head(nn.Module):
    """Category and kernel branches, shared over the five levels.

    forward(levels: 5 x Tensor[B, in_channels, h_l, w_l]) -> (cate logits 5 x Tensor[B, C, S_l, S_l],
    kernels 5 x Tensor[B, E, S_l, S_l]).
    """

    def __init__(self, in_channels: int, num_classes: int, head_channels: int, kernel_channels: int,
                 num_grids: tuple[int, ...], ins_convs: int, cate_convs: int, num_groups: int,
                 prior_prob: float = 0.01) -> None:
        super().__init__()
        self.num_grids = tuple(num_grids)
        self.kernel_tower = nn.Sequential(*[
            _conv_gn_relu(in_channels + 2 if i == 0 else head_channels, head_channels, num_groups)
            for i in range(ins_convs)])
        self.cate_tower = nn.Sequential(*[
            _conv_gn_relu(in_channels if i == 0 else head_channels, head_channels, num_groups)
            for i in range(cate_convs)])
        self.kernel_pred = nn.Conv2d(head_channels, kernel_channels, 3, padding=1)
        self.cate_pred = nn.Conv2d(head_channels, num_classes, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.cate_pred.bias, -float(torch.log(torch.tensor((1 - prior_prob) / prior_prob))))

    def forward(self, levels: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        cates, kernels = [], []
        for x, s in zip(levels, self.num_grids):
            x = torch.cat([x, coord_features(x)], dim=1)
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
            kernels.append(self.kernel_pred(self.kernel_tower(x)))
            cates.append(self.cate_pred(self.cate_tower(x[:, :-2])))
        return cates, kernels


class MaskFeatBranch(nn.Module):
    """Unified mask feature branch: P2..P5 -> Tensor[B, E, H_P2, W_P2] (stride 4).

    Level i gets max(1, i) rounds of conv3x3 + GN + ReLU, each followed (for i >= 1) by a 2x
    bilinear upsampling to the next finer level's size; coord channels are concatenated on P5;
    the four maps are summed; a 1x1 conv + GN + ReLU gives E channels.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, num_groups: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList()
        for i in range(4):
            convs = nn.ModuleList()
            for j in range(max(1, i)):
                cin = (in_channels + (2 if i == 3 else 0)) if j == 0 else mid_channels
                convs.append(_conv_gn_relu(cin, mid_channels, num_groups))
            self.levels.append(convs)
        self.pred = _conv_gn_relu(mid_channels, out_channels, num_groups, k=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)

    def forward(self, feats: list[Tensor]) -> Tensor:
        out = None
        for i, convs in enumerate(self.levels):
            x = feats[i]
            if i == 3:
                x = torch.cat([x, coord_features(x)], dim=1)
            for j, conv in enumerate(convs):
                x = conv(x)
                if i > 0:
                    x = F.interpolate(x, size=feats[i - j - 1].shape[-2:], mode="bilinear", align_corners=False)
            out = x if out is None else out + x
        return self.pred(out)


# ---------------------------------------------------------------------------------------------
# target assignment
class GridTargets(NamedTuple):
    """Targets of one image over all grid cells (levels concatenated, row-major within a level).

    labels: Tensor[T], int64, T = sum S_l^2, class per cell, ``num_classes`` = background.
    pos_cells: Tensor[P], int64, flat indices of the positive cells.
    pos_objects: Tensor[P], int64, index of each positive cell's object in the image's Targets.
    """

    labels: Tensor
    pos_cells: Tensor
    pos_objects: Tensor


def centers_of_mass(masks: Tensor) -> Tensor:
    """masks: Tensor[N, h, w] -> Tensor[N, 2] float (x, y) in input pixels, pixel centres at i + 0.5."""
    n, h, w = masks.shape
    m = masks.float()
    area = m.sum((1, 2)).clamp_min(1.0)
    xs = torch.arange(w, device=m.device, dtype=m.dtype) + 0.5
    ys = torch.arange(h, device=m.device, dtype=m.dtype) + 0.5
    return torch.stack([(m.sum(1) * xs).sum(1) / area, (m.sum(2) * ys).sum(1) / area], dim=1)


def assign_grid_targets(boxes: Tensor, centers: Tensor, labels: Tensor, valid: Tensor, *, num_classes: int,
                        num_grids: tuple[int, ...], scale_ranges: tuple[tuple[int, int], ...], sigma: float,
                        pad_size: tuple[int, int], cost_fn=None) -> GridTargets:
    """SOLO grid assignment for one image (vectorised over objects and cells, looped over levels).

    On level l (grid S = ``num_grids[l]`` over the padded input of ``pad_size``), an object with
    ``lo <= sqrt(w * h) <= hi`` claims the cells whose index lies in
    ``[floor((c - 0.5 * sigma * size) / cell), floor((c + 0.5 * sigma * size) / cell)]`` per axis,
    clamped to the grid and to +-1 cell around its centre cell ``floor(c / cell)``.

    Args:
        boxes: Tensor[N, 4], x1y1x2y2 in input pixels.
        centers: Tensor[N, 2], (x, y) mask centres of mass in input pixels.
        labels: Tensor[N], int64.
        valid: Tensor[N], bool; False = empty mask, never assigned.
        num_classes: background label value.
        num_grids / scale_ranges / sigma: see ``SOLOv2Config``.
        pad_size: (H, W) of the grid's frame (the padded input), pixels.
        cost_fn: None (a later object overwrites an earlier one on shared cells, as the reference) or
            ``cost_fn(cells: Tensor[K] flat cell indices, objects: Tensor[n] object indices) ->
            Tensor[K, n]``; each cell claimed by >= 2 objects goes to the claimant of minimum cost.
    Returns:
        GridTargets.
    """
    device = boxes.device
    total = sum(s * s for s in num_grids)
    cell_labels = torch.full((total,), num_classes, dtype=torch.int64, device=device)
    pos_cells, pos_objects = [], []
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp_min(0)  # (N, 2)
    size = (wh[:, 0] * wh[:, 1]).sqrt()
    half = 0.5 * sigma * wh  # (N, 2) half extents (x, y)
    frame = torch.tensor([pad_size[1], pad_size[0]], device=device, dtype=boxes.dtype)  # (W, H)
    offset = 0
    for s, (lo, hi) in zip(num_grids, scale_ranges):
        hit = (valid & (size >= lo) & (size <= hi)).nonzero().flatten()
        if hit.numel():
            cell = frame / s  # (2,) cell width, height in px
            c = centers[hit]
            ctr = (c / cell).floor().long().clamp(0, s - 1)  # (n, 2)
            lo_idx = torch.maximum(((c - half[hit]) / cell).floor().long().clamp(min=0), ctr - 1)
            hi_idx = torch.minimum(((c + half[hit]) / cell).floor().long().clamp(max=s - 1), ctr + 1)
            r = torch.arange(s, device=device)
            in_x = (r[None] >= lo_idx[:, :1]) & (r[None] <= hi_idx[:, :1])  # (n, S) columns
            in_y = (r[None] >= lo_idx[:, 1:]) & (r[None] <= hi_idx[:, 1:])  # (n, S) rows
            cover = (in_y[:, :, None] & in_x[:, None, :]).flatten(1)  # (n, S*S)
            rank = torch.arange(1, hit.numel() + 1, device=device)[:, None]
            owner = (cover * rank).argmax(0)  # (S*S,) the last claimant (reference overwrite)
            if cost_fn is not None:
                conflict = (cover.sum(0) >= 2).nonzero().flatten()
                if conflict.numel():
                    cost = cost_fn(conflict + offset, hit)  # (K, n)
                    cost = cost.masked_fill(~cover[:, conflict].T, float("inf"))
                    owner[conflict] = cost.argmin(1)
            cells = cover.any(0).nonzero().flatten()
            objs = hit[owner[cells]]
            cell_labels[cells + offset] = labels[objs]
            pos_cells.append(cells + offset)
            pos_objects.append(objs)
        offset += s * s
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    return GridTargets(cell_labels, torch.cat(pos_cells) if pos_cells else empty,
                       torch.cat(pos_objects) if pos_objects else empty)


def masks_at_stride4(masks: Tensor, mask_size: tuple[int, int]) -> Tensor:
    """GT masks Tensor[N, h, w] (input frame) -> Tensor[N, Hm, Wm] float {0, 1} at stride 4.

    Pads (zeros right / bottom) or crops to (4 Hm, 4 Wm); a stride-4 pixel is 1 when at least half
    (8) of its 4 x 4 input pixels are foreground.
    """
    hm, wm = mask_size
    n = masks.shape[0]
    m = masks[:, : 4 * hm, : 4 * wm].float()
    m = F.pad(m, (0, 4 * wm - m.shape[-1], 0, 4 * hm - m.shape[-2]))
    return (m.view(n, hm, 4, wm, 4).sum((2, 4)) >= 8).float()  # (N, Hm, Wm)


# ---------------------------------------------------------------------------------------------
def _lazy(toggle: str, module: str, names: list[str]) -> list:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise ImportError(f"solov2: {toggle}=True needs {module} ({', '.join(names)}), which does not "
                          "exist in this checkout") from e
    return [getattr(mod, n) for n in names]


@register("solov2")
class SOLOv2(Method):
    """SOLOv2 with the improved-SOLOv2 toggles (module docstring)."""

    Config = SOLOv2Config

    def __init__(self, cfg: SOLOv2Config) -> None:
        super().__init__(cfg)
        if cfg.num_classes <= 0:
            raise ValueError("solov2: num_classes must be > 0 (the harness sets it from the dataset)")
        if cfg.use_cspam:
            (build_cspam_backbone,) = _lazy("use_cspam", "methods.backbones.cspam", ["build_cspam_backbone"])
            self.backbone = build_cspam_backbone(cfg.backbone, cfg.pretrained,
                                                 pam_after=tuple(cfg.cspam_pam_after),
                                                 theta_on=cfg.cspam_theta_on, logit_scale=cfg.cspam_logit_scale,
                                                 min_reduced_channels=cfg.cspam_min_reduced_channels,
                                                 pam_init=cfg.cspam_pam_init, csp_width=cfg.cspam_csp_width)
        else:
            self.backbone = build_backbone(cfg.backbone, cfg.pretrained)
        in_channels = list(self.backbone.out_channels)
        if cfg.use_twfpn_csmf:
            two_way, csmf = _lazy("use_twfpn_csmf", "methods.necks.twfpn", ["TwoWayFPN", "CSMFMaskBranch"])
            self.neck = two_way(in_channels, cfg.fpn_channels)
            self.mask_branch = csmf(cfg.fpn_channels, cfg.mask_branch_channels, cfg.mask_feat_channels)
        else:
            self.neck = build_fpn(in_channels, cfg.fpn_channels, extra="p6")
            self.mask_branch = MaskFeatBranch(cfg.fpn_channels, cfg.mask_branch_channels, cfg.mask_feat_channels,
                                              cfg.num_groups)
        self.head = SOLOv2Head(cfg.fpn_channels, cfg.num_classes, cfg.head_channels, cfg.mask_feat_channels,
                               cfg.num_grids, cfg.ins_convs, cfg.cate_convs, cfg.num_groups)

    # -- network ----------------------------------------------------------------------------
    def forward_test(self, images: Tensor) -> SOLOv2Output:
        """images: Tensor[B, 3, H, W] -> SOLOv2Output (raw logits, kernels, mask features)."""
        feats = self.backbone(images)
        if self.cfg.use_twfpn_csmf:
            out = self.neck(feats)
            levels, mask_feats = list(out.bottom_up), self.mask_branch(out.top_down, out.bottom_up)
        else:
            pyramid = self.neck(feats)
            levels, mask_feats = pyramid, self.mask_branch(pyramid[:4])
        cates, kernels = self.head(split_levels(levels))
        return SOLOv2Output(cates, kernels, mask_feats)

    @staticmethod
    def _flatten(preds: list[Tensor]) -> Tensor:
        """5 x Tensor[B, D, S, S] -> Tensor[B, T, D] (levels concatenated, cells row-major)."""
        return torch.cat([p.flatten(2).transpose(1, 2) for p in preds], dim=1)

    # -- training ---------------------------------------------------------------------------
    def forward(self, images: Tensor, targets: list[Targets]) -> dict[str, Tensor]:
        """Training losses ``{"loss_cate", "loss_mask"}`` (scalars) for a padded batch.

        Raises:
            ValueError: len(targets) != B, a mask larger than the padded image, or a label out of
                range (the message names the batch index).
        """
        cfg = self.cfg
        if len(targets) != images.shape[0]:
            raise ValueError(f"solov2: {images.shape[0]} images but {len(targets)} targets")
        out = self.forward_test(images)
        cate = self._flatten(out.cate_logits)  # (B, T, C)
        kern = self._flatten(out.kernel_preds)  # (B, T, E)
        feats = out.mask_feats  # (B, E, Hm, Wm)
        hm, wm = feats.shape[-2:]
        pad_size = (4 * hm, 4 * wm)
        cell_labels, pred_masks, gt_masks, n_pos = [], [], [], []
        for b, t in enumerate(targets):
            self._check_targets(b, t, images.shape[-2:])
            gt4 = masks_at_stride4(t.masks, (hm, wm))  # (N, Hm, Wm)
            cost_fn = self._aml_cost_fn(cate[b], kern[b], feats[b], gt4, t.labels) if cfg.use_aml else None
            g = assign_grid_targets(t.boxes.float(), centers_of_mass(t.masks), t.labels, t.masks.flatten(1).any(1),
                                    num_classes=cfg.num_classes, num_grids=cfg.num_grids,
                                    scale_ranges=cfg.scale_ranges, sigma=cfg.sigma, pad_size=pad_size,
                                    cost_fn=cost_fn)
            cell_labels.append(g.labels)
            logits = kern[b, g.pos_cells] @ feats[b].flatten(1)  # (P_b, Hm*Wm)
            pred_masks.append(logits.view(-1, hm, wm))
            gt_masks.append(gt4[g.pos_objects])
            n_pos.append(torch.bincount(g.pos_objects.cpu(), minlength=len(t.labels)))
        self.last_positives_per_gt = torch.cat(n_pos) if n_pos else None
        labels = torch.stack(cell_labels)  # (B, T)
        num_pos = int((labels < cfg.num_classes).sum())
        onehot = F.one_hot(labels, cfg.num_classes + 1)[..., : cfg.num_classes]  # background row = 0
        loss_cate = sigmoid_focal_loss(cate.float(), onehot, cfg.focal_alpha, cfg.focal_gamma) / (num_pos + 1)
        pred = torch.cat(pred_masks).float().sigmoid()
        if pred.shape[0] == 0:  # no instances: zero, but connected to the graph (DDP, backward)
            loss_mask = (kern.sum() + feats.sum()) * 0.0
        elif cfg.use_aml:
            loss_mask = aml_mask_loss(pred, torch.cat(gt_masks), centroid_units=cfg.aml_centroid_units,
                                      dice_form=cfg.aml_dice_form).mean()
        else:
            loss_mask = dice_loss(pred, torch.cat(gt_masks)).mean()
        return {"loss_cate": loss_cate, "loss_mask": loss_mask * cfg.ins_loss_weight}

    def _check_targets(self, b: int, t: Targets, pad_hw) -> None:
        n = len(t)
        if t.masks.dim() != 3 or t.masks.shape[0] != n or t.boxes.shape != (n, 4):
            raise ValueError(f"solov2: targets of batch image {b}: masks {tuple(t.masks.shape)}, boxes "
                             f"{tuple(t.boxes.shape)}, labels {tuple(t.labels.shape)} are inconsistent")
        if t.masks.shape[-2] > pad_hw[0] or t.masks.shape[-1] > pad_hw[1]:
            raise ValueError(f"solov2: targets of batch image {b}: masks {tuple(t.masks.shape[-2:])} larger "
                             f"than the padded batch {tuple(pad_hw)}")
        if n and (int(t.labels.min()) < 0 or int(t.labels.max()) >= self.cfg.num_classes):
            raise ValueError(f"solov2: targets of batch image {b}: labels {t.labels.tolist()} outside "
                             f"[0, {self.cfg.num_classes})")

    def _aml_cost_fn(self, cate: Tensor, kern: Tensor, feats: Tensor, gt4: Tensor, labels: Tensor):
        """Eq. 3 matching cost of one image from its current (detached) predictions.

        cate: Tensor[T, C] logits; kern: Tensor[T, E]; feats: Tensor[E, Hm, Wm]; gt4: Tensor[N, Hm, Wm].
        Returns cost_fn(cells[K], objects[n]) -> Tensor[K, n].
        """
        cfg = self.cfg

        def cost_fn(cells: Tensor, objects: Tensor) -> Tensor:
            with torch.no_grad():
                x = cate[cells].detach().float()  # (K, C)
                base = sigmoid_focal_loss(x, torch.zeros_like(x), cfg.focal_alpha, cfg.focal_gamma,
                                          reduction="none").sum(1)  # (K,) all-negative loss
                xc = x[:, labels[objects]]  # (K, n) logit of each candidate's class
                pos = sigmoid_focal_loss(xc, torch.ones_like(xc), cfg.focal_alpha, cfg.focal_gamma, "none")
                neg = sigmoid_focal_loss(xc, torch.zeros_like(xc), cfg.focal_alpha, cfg.focal_gamma, "none")
                loss_cate = base[:, None] - neg + pos  # (K, n)
                m = (kern[cells].detach() @ feats.detach().flatten(1)).float().sigmoid()  # (K, Hm*Wm)
                loss_mask = aml_mask_loss(m.view(-1, *feats.shape[-2:]), gt4[objects], pairwise=True,
                                          centroid_units=cfg.aml_centroid_units,
                                          dice_form=cfg.aml_dice_form)  # (K, n)
                return aml_matching_cost(loss_cate, loss_mask, cfg.aml_lambda)

        return cost_fn

    # -- inference --------------------------------------------------------------------------
    def postprocess(self, raw: SOLOv2Output, image_sizes: list[tuple[int, int]],
                    orig_sizes: list[tuple[int, int]]) -> list[Instances]:
        """Decode raw outputs into Instances (masks at ``orig_sizes``), with ``cfg.postprocess``.

        Per image: sigmoid + point NMS; cells x classes with score > score_thr; dynamic 1x1 conv;
        binarise at mask_thr; drop masks of area (stride-4 pixels) <= the level stride; score *=
        maskness; top nms_pre; NMS variant; top max_per_img; soft masks upsampled x4, cropped to
        ``image_sizes[i]``, resized to ``orig_sizes[i]``, thresholded at mask_thr.
        """
        cfg = self.cfg
        kind = "matrix" if cfg.postprocess == "default" else cfg.postprocess
        scores_all = self._flatten([points_nms(c.float().sigmoid()) for c in raw.cate_logits])  # (B, T, C)
        kern = self._flatten(raw.kernel_preds)  # (B, T, E)
        feats = raw.mask_feats
        hm, wm = feats.shape[-2:]
        strides = torch.cat([torch.full((s * s,), st, device=feats.device, dtype=torch.float32)
                             for s, st in zip(cfg.num_grids, LEVEL_STRIDES)])  # (T,)
        results = []
        for b, ((h, w), orig) in enumerate(zip(image_sizes, orig_sizes)):
            cell, label = (scores_all[b] > cfg.score_thr).nonzero().unbind(1)
            score = scores_all[b][cell, label]
            soft = (kern[b, cell] @ feats[b].flatten(1)).float().sigmoid().view(-1, hm, wm)  # (K, Hm, Wm)
            binary = soft > cfg.mask_thr
            area = binary.sum((1, 2)).float()
            ok = area > strides[cell] * cfg.min_area_factor
            soft, binary, area, score, label = soft[ok], binary[ok], area[ok], score[ok], label[ok]
            score = score * (soft * binary).sum((1, 2)) / area  # maskness
            top = score.argsort(descending=True)[: cfg.nms_pre]
            keep, score = apply_postprocess(kind, masks=binary[top], scores=score[top], labels=label[top],
                                            max_per_img=cfg.max_per_img, update_thr=cfg.update_thr,
                                            sigma=cfg.matrix_sigma)
            keep = top[keep]
            if keep.numel() == 0:
                results.append(Instances.empty(orig[0], orig[1], device=feats.device))
                continue
            m = F.interpolate(soft[keep][None], size=(4 * hm, 4 * wm), mode="bilinear", align_corners=False)
            m = F.interpolate(m[:, :, :h, :w], size=tuple(orig), mode="bilinear", align_corners=False)[0]
            results.append(Instances(masks=m > cfg.mask_thr, scores=score.float(), labels=label[keep]))
        return results


# The improved SOLOv2 of improved-solov2-location-attention.md: SOLOv2 with all three toggles on (a preset of
# the same class, never a fork).
register_preset("solov2_improved", "solov2", use_cspam=True, use_twfpn_csmf=True, use_aml=True)
