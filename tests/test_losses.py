"""Hand-computed cases for methods/losses.py."""
from __future__ import annotations

import math

import pytest
import torch

from methods.losses import aml_mask_loss, aml_matching_cost, dice_loss, sigmoid_focal_loss


def test_dice_perfect_disjoint_and_two_pixels():
    t = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])  # (1, 2, 2), 2 foreground pixels
    assert dice_loss(t, t).item() == pytest.approx(2e-3 / (4 + 2e-3), abs=1e-6)  # 0 up to eps
    assert dice_loss(1 - t, t).item() == pytest.approx(1.0)
    # p = [0.5, 1.0], t = [1, 0]: 1 - 2 * 0.5 / (0.25 + 1 + 1 + 0.002)
    p = torch.tensor([[[0.5, 1.0]]])
    g = torch.tensor([[[True, False]]])
    assert dice_loss(p, g).item() == pytest.approx(1 - 1 / 2.252)


def test_dice_per_instance_and_empty_target():
    p = torch.stack([torch.ones(3, 3), torch.zeros(3, 3)])
    t = torch.stack([torch.ones(3, 3), torch.zeros(3, 3)])
    loss = dice_loss(p, t)
    assert loss.shape == (2,)
    assert loss[0].item() == pytest.approx(2e-3 / (18 + 2e-3), abs=1e-6)
    assert loss[1].item() == pytest.approx(1.0)  # nothing to match: 1 - 0 / eps
    with pytest.raises(ValueError, match="dice_loss"):
        dice_loss(p, t[:1])


def test_focal_single_logits_vs_formula():
    x = torch.tensor([0.3, -1.2])
    y = torch.tensor([1.0, 0.0])
    p0, p1 = 1 / (1 + math.exp(-0.3)), 1 / (1 + math.exp(1.2))
    pos = -0.25 * (1 - p0) ** 2 * math.log(p0)  # alpha_t = alpha for the positive
    neg = -0.75 * p1**2 * math.log(1 - p1)  # 1 - alpha for the negative
    assert sigmoid_focal_loss(x, y).item() == pytest.approx(pos + neg, rel=1e-6)
    per = sigmoid_focal_loss(x, y, reduction="none")
    assert per.tolist() == pytest.approx([pos, neg], rel=1e-6)
    assert sigmoid_focal_loss(x, y, gamma=0.0).item() == pytest.approx(
        -0.25 * math.log(p0) - 0.75 * math.log(1 - p1), rel=1e-6)


def test_aml_mask_loss_by_hand():
    # m = [[1, 0], [0, 0]], g = [[1, 1], [0, 0]]: sum(mg) = 1, sum(m) = 1, sum(g) = 2
    # dice term 1 - 3/4; C_P = (0.5, 0.5), C_G = (1.0, 0.5) -> dist^2 = 0.25; eps = 0.25 / 2
    m = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    g = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    lit = dict(dice_form="linear", centroid_units="mask_px")  # Eq. 2 as printed, mask-pixel centroids
    assert aml_mask_loss(m, g, **lit).item() == pytest.approx(0.25 + 0.125)
    # normalized coordinates: dist^2 = (0.5 / 2)^2 = 0.0625 -> eps = 0.03125
    assert aml_mask_loss(m, g, dice_form="linear", centroid_units="normalized").item() == pytest.approx(
        0.25 + 0.03125)
    # the defaults: SOLOv2's squared dice (sum m^2 = 1, sum g^2 = 2: 1 - 2 / 3.002) and normalized centroids
    assert aml_mask_loss(m, g).item() == pytest.approx(1 - 2 / 3.002 + 0.03125)
    assert aml_mask_loss(m, g, centroid_units="mask_px").item() == pytest.approx(
        dice_loss(m, g).item() + 0.125)
    # soft m = [[.5, .5], [0, 0]] vs g = [[1, 0], [0, 0]]: sum(mg) = .5, dice 1 - 2/3,
    # C_P = (1.0, 0.5), C_G = (0.5, 0.5): eps = 0.25 / 1.5
    m2 = torch.tensor([[[0.5, 0.5], [0.0, 0.0]]])
    g2 = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert aml_mask_loss(m2, g2, **lit).item() == pytest.approx(1 / 3 + 1 / 6)
    # squared: sum m^2 = .5, sum g^2 = 1: 1 - 1 / 1.502
    assert aml_mask_loss(m2, g2, dice_form="squared", centroid_units="mask_px").item() == pytest.approx(
        1 - 1 / 1.502 + 1 / 6)
    with pytest.raises(ValueError, match="dice_form"):
        aml_mask_loss(m2, g2, dice_form="cubic")


def test_aml_mask_loss_pairwise_matches_elementwise_and_has_gradient():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 5, 6, generator=g).requires_grad_()
    tgt = (torch.rand(2, 5, 6, generator=g) > 0.5).float()
    pair = aml_mask_loss(pred, tgt, pairwise=True)
    assert pair.shape == (3, 2)
    for form in ("squared", "linear"):
        pf = aml_mask_loss(pred, tgt, pairwise=True, dice_form=form)
        for k in range(3):
            for n in range(2):
                single = aml_mask_loss(pred[k:k + 1], tgt[n:n + 1], dice_form=form)
                assert pf[k, n].item() == pytest.approx(single.item(), rel=1e-5)
    pair.sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    perfect = aml_mask_loss(tgt, tgt, dice_form="linear")
    assert perfect.tolist() == pytest.approx([0.0, 0.0], abs=1e-6)  # no centroid shift, smoothed dice 0
    assert aml_mask_loss(tgt, tgt).tolist() == pytest.approx([0.0, 0.0], abs=1e-3)  # squared: eps 2e-3 only
    with pytest.raises(ValueError, match="centroid_units"):
        aml_mask_loss(tgt, tgt, centroid_units="cm")
    with pytest.raises(ValueError):
        aml_mask_loss(pred, tgt)


def test_aml_matching_cost_eq3():
    assert aml_matching_cost(torch.tensor(0.0), torch.tensor(0.0), 3.0).item() == pytest.approx(1.0)
    # sigmoid(ln 3) = 0.75; lambda = 3 and L_mask = ln(3) / 3 give the same
    c = aml_matching_cost(torch.tensor(math.log(3)), torch.tensor(math.log(3) / 3), 3.0)
    assert c.item() == pytest.approx(1.5)
    cost = aml_matching_cost(torch.tensor([[0.1], [0.5]]), torch.tensor([[0.2, 0.9]]), 1.0)
    assert cost.shape == (2, 2) and cost.argmin().item() == 0
