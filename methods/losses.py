"""Losses shared by the methods: pure functions.

* ``dice_loss``           SOLOv2 / CondInst dice loss (Milletari et al., V-Net, 2016, Eq. 1 as used by
                          SOLO Sec. 3.3): ``1 - 2 sum(p t) / (sum(p^2) + sum(t^2) + eps)``.
* ``sigmoid_focal_loss``  RetinaNet focal loss (Lin et al., ICCV 2017, Eq. 5), a thin wrapper over
                          ``torchvision.ops.sigmoid_focal_loss``.
* ``aml_mask_loss``       the improved SOLOv2's mask term with the centroid factor epsilon
                          (Liu & Kong, "improved SOLOv2 ... location attention", Sec. 2.3, Eq. 1-2).
* ``aml_matching_cost``   its combined matching cost ``sigmoid(L_cate) + sigmoid(lambda L_mask)`` (Eq. 3).
"""
from __future__ import annotations

from typing import Literal

import torch
import torchvision
from torch import Tensor


def dice_loss(pred_sigmoid: Tensor, target: Tensor, eps: float = 2e-3) -> Tensor:
    """Per-instance dice loss.

    ``loss_n = 1 - 2 * sum(p * t) / (sum(p^2) + sum(t^2) + eps)`` over the pixels of instance n
    (the reference implementations add 1e-3 to each sum of squares, hence eps = 2e-3).

    Args:
        pred_sigmoid: Tensor[N, H, W], float in [0, 1] (mask probabilities, after sigmoid).
        target: Tensor[N, H, W], bool or float in [0, 1].
        eps: smoothing added to the denominator.
    Returns:
        Tensor[N], float: loss in [0, 1] per instance (not reduced).
    Raises:
        ValueError: shapes differ.
    """
    if pred_sigmoid.shape != target.shape:
        raise ValueError(f"dice_loss: pred {tuple(pred_sigmoid.shape)} vs target {tuple(target.shape)}")
    p = pred_sigmoid.flatten(1).float()  # (N, H*W)
    t = target.flatten(1).float()
    inter = (p * t).sum(1)
    denom = (p * p).sum(1) + (t * t).sum(1) + eps
    return 1.0 - 2.0 * inter / denom


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "sum") -> Tensor:
    """Sigmoid focal loss ``-alpha_t (1 - p_t)^gamma log(p_t)`` (``torchvision.ops.sigmoid_focal_loss``).

    Args:
        logits: Tensor[...], float, raw classification logits.
        targets: Tensor[...], same shape, {0, 1} (one-hot over classes; all-zero rows = background).
        alpha / gamma: focal parameters (RetinaNet: 0.25, 2).
        reduction: "sum" (default, normalise by the number of positives yourself), "mean" or "none".
    Returns:
        scalar Tensor, or Tensor[...] for reduction "none".
    """
    return torchvision.ops.sigmoid_focal_loss(logits, targets.to(logits.dtype), alpha=alpha, gamma=gamma,
                                              reduction=reduction)


def _centroids(masks: Tensor, units: str) -> Tensor:
    """Centre of mass of (soft) masks. masks: Tensor[N, H, W] -> Tensor[N, 2] (x, y).

    ``units="mask_px"``: pixel centres at ``i + 0.5`` in the masks' own pixel frame;
    ``"normalized"``: the same divided by (W, H), i.e. in [0, 1].
    """
    n, h, w = masks.shape
    m = masks.float()
    ys = torch.arange(h, device=m.device, dtype=m.dtype) + 0.5
    xs = torch.arange(w, device=m.device, dtype=m.dtype) + 0.5
    if units == "normalized":
        ys, xs = ys / h, xs / w
    total = m.sum((1, 2)).clamp_min(1e-6)
    cx = (m.sum(1) * xs).sum(1) / total  # m.sum(1): (N, W) column mass
    cy = (m.sum(2) * ys).sum(1) / total  # m.sum(2): (N, H) row mass
    return torch.stack([cx, cy], dim=1)


def aml_mask_loss(pred_sigmoid: Tensor, target: Tensor, *, pairwise: bool = False,
                  centroid_units: Literal["mask_px", "normalized"] = "normalized",
                  dice_form: Literal["squared", "linear"] = "squared") -> Tensor:
    """Improved-SOLOv2 mask loss term with the centroid factor (Sec. 2.3, Eq. 1 summand and Eq. 2).

    ``L = D(m, g) + epsilon``.  ``dice_form="squared"`` (default): ``D`` is SOLOv2's own dice, the loss AML
    replaces, ``1 - 2 sum(m g) / (sum(m^2) + sum(g^2) + 2e-3)`` (``dice_loss``; AdelaiDet / mmdet).
    ``dice_form="linear"``: Eq. 2 as printed, ``D = 1 - (2 sum(m g) + 1) / (sum(m) + sum(g) + 1)``; and
    ``epsilon = ((C_Px - C_Gx)^2 + (C_Py - C_Gy)^2) / (|sum(m g)| + 1)``, where ``C_P`` is the centre
    of mass of the soft predicted mask ``m`` (differentiable) and ``C_G`` that of the target ``g``.
    Eq. 1's ``1 / N_pos`` average is left to the caller.  The paper does not state the unit of the
    centroid coordinates; ``centroid_units`` picks "mask_px" (pixels of the mask map, the literal
    reading) or "normalized" (coordinates divided by the map size).

    Args:
        pred_sigmoid: Tensor[N, H, W] (or [K, H, W] when ``pairwise``), float in [0, 1].
        target: Tensor[N, H, W], bool or float in {0, 1}.
        pairwise: False -> element-wise pairs, returns Tensor[N]; True -> every prediction against
            every target, returns Tensor[K, N].
        centroid_units: "mask_px" or "normalized".
        dice_form: "squared" or "linear".
    Returns:
        Tensor[N] or Tensor[K, N], float, >= 0.
    Raises:
        ValueError: shapes incompatible, unknown ``centroid_units`` or ``dice_form``.
    """
    if centroid_units not in ("mask_px", "normalized"):
        raise ValueError(f"aml_mask_loss: centroid_units must be mask_px or normalized, got {centroid_units!r}")
    if dice_form not in ("squared", "linear"):
        raise ValueError(f"aml_mask_loss: dice_form must be squared or linear, got {dice_form!r}")
    if pred_sigmoid.shape[-2:] != target.shape[-2:] or (not pairwise and pred_sigmoid.shape != target.shape):
        raise ValueError(f"aml_mask_loss: pred {tuple(pred_sigmoid.shape)} vs target {tuple(target.shape)}"
                         f" (pairwise={pairwise})")
    m = pred_sigmoid.flatten(1).float()  # (K, H*W)
    g = target.flatten(1).float()  # (N, H*W)
    cp = _centroids(pred_sigmoid, centroid_units)  # (K, 2)
    cg = _centroids(target, centroid_units)  # (N, 2)
    mp, gp = (m, g) if dice_form == "linear" else (m * m, g * g)
    if pairwise:
        inter = m @ g.T  # (K, N)
        m_sum, g_sum = mp.sum(1)[:, None], gp.sum(1)[None, :]
        dist2 = ((cp[:, None, :] - cg[None, :, :]) ** 2).sum(-1)  # (K, N)
    else:
        inter = (m * g).sum(1)
        m_sum, g_sum = mp.sum(1), gp.sum(1)
        dist2 = ((cp - cg) ** 2).sum(-1)
    if dice_form == "linear":
        dice = 1.0 - (2.0 * inter + 1.0) / (m_sum + g_sum + 1.0)
    else:  # the same expression as dice_loss (eps 2e-3)
        dice = 1.0 - 2.0 * inter / (m_sum + g_sum + 2e-3)
    epsilon = dist2 / (inter.abs() + 1.0)
    return dice + epsilon


def aml_matching_cost(cate_loss: Tensor, mask_loss: Tensor, aml_lambda: float) -> Tensor:
    """Improved-SOLOv2 Eq. 3: ``sigmoid(L_cate) + sigmoid(lambda * L_mask)`` (element-wise, broadcasts).

    Used to assign a grid cell claimed by several objects to the one with the minimum cost.
    """
    return torch.sigmoid(cate_loss) + torch.sigmoid(aml_lambda * mask_loss)
