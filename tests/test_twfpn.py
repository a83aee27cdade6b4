"""Tests of TWFPN and the CSMF mask branch (methods/necks/twfpn.py)."""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from methods.backbones.cspam import build_cspam_backbone
from methods.necks.twfpn import CSMFMaskBranch, TwoWayFPN, TwoWayOutput, coord_features

IN_CHANNELS = [8, 8, 16, 16]  # resnet_tiny's C2..C5


def _ceil_sizes(hw: tuple[int, int], strides=(4, 8, 16, 32, 64)) -> list[tuple[int, int]]:
    return [(-(-hw[0] // s), -(-hw[1] // s)) for s in strides]


def _feats(hw: tuple[int, int], batch: int = 2, requires_grad: bool = False) -> list[torch.Tensor]:
    """Random C2..C5 with the sizes a ResNet gives for an input of size hw."""
    return [torch.randn(batch, c, h, w, requires_grad=requires_grad)
            for c, (h, w) in zip(IN_CHANNELS, _ceil_sizes(hw, (4, 8, 16, 32)))]


@pytest.mark.parametrize("hw", [(96, 128), (100, 140)])
def test_twfpn_shapes_and_level6(hw):
    torch.manual_seed(0)
    out = TwoWayFPN(IN_CHANNELS, 16)(_feats(hw))
    assert isinstance(out, TwoWayOutput)
    for levels in (out.top_down, out.bottom_up):
        assert [tuple(f.shape) for f in levels] == [(2, 16, h, w) for h, w in _ceil_sizes(hw)]
    assert out.bottom_up[0] is out.top_down[0]  # N2 = P2
    assert_close(out.top_down[4], out.top_down[3][..., ::2, ::2])  # P6 = max_pool(P5, 1, stride 2)
    assert_close(out.bottom_up[4], out.bottom_up[3][..., ::2, ::2])  # N6 = max_pool(N5, 1, stride 2)


def test_twfpn_bottom_up_carries_shallow_information_to_level5():
    torch.manual_seed(0)
    feats = _feats((64, 64), requires_grad=True)
    out = TwoWayFPN(IN_CHANNELS, 16)(feats)
    grad_p5 = torch.autograd.grad(out.top_down[3].sum(), feats[0], allow_unused=True)[0]
    grad_n5 = torch.autograd.grad(out.bottom_up[3].sum(), feats[0])[0]
    assert grad_p5 is None  # top-down P5 sees only C5
    assert grad_n5.abs().sum() > 0  # N5 sees C2 through the bottom-up path


def test_twfpn_bottom_up_recurrence():
    torch.manual_seed(0)
    fpn = TwoWayFPN(IN_CHANNELS, 16)
    out = fpn(_feats((96, 128)))
    td, bu = out
    for i in range(3):  # N_{i+1} = conv(conv_s2(N_i) + P_{i+1}), each conv with ReLU
        assert_close(bu[i + 1], fpn.fuse[i](fpn.downsample[i](bu[i]) + td[i + 1]))
    assert all((n >= 0).all() for n in bu[1:])


def test_twfpn_rejects_wrong_number_of_levels():
    with pytest.raises(ValueError, match="4 entries"):
        TwoWayFPN([8, 16, 16], 16)


def test_coord_features_values():
    coords = coord_features(torch.zeros(2, 5, 2, 3))
    assert coords.shape == (2, 2, 2, 3)
    assert_close(coords[1, 0], torch.tensor([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]))
    assert_close(coords[1, 1], torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))


@pytest.mark.parametrize("hw", [(96, 128), (100, 140)])
def test_csmf_output_at_stride4(hw):
    torch.manual_seed(0)
    out = TwoWayFPN(IN_CHANNELS, 16)(_feats(hw))
    mask_feat = CSMFMaskBranch(16, 8, 12)(*out)
    assert mask_feat.shape == (2, 12, *_ceil_sizes(hw)[0])
    assert torch.isfinite(mask_feat).all()


def test_csmf_reads_exactly_p5_n2_n3_n4():
    """Paper 2.2: P5 (2x up, concat N4; 8x up, guide of P2) plus the bottom-up levels N2..N4."""
    torch.manual_seed(0)
    sizes = _ceil_sizes((64, 96))
    td = [torch.randn(1, 16, h, w, requires_grad=True) for h, w in sizes]
    bu = [torch.randn(1, 16, h, w, requires_grad=True) for h, w in sizes]
    CSMFMaskBranch(16, 16, 8).train()(td, bu).square().sum().backward()
    used = {name for name, t in [*zip(["P2", "P3", "P4", "P5", "P6"], td), *zip(["N2", "N3", "N4", "N5", "N6"], bu)]
            if t.grad is not None and t.grad.abs().sum() > 0}
    assert used == {"P5", "N2", "N3", "N4"}


def test_cspam_twfpn_csmf_backward():
    torch.manual_seed(0)
    backbone = build_cspam_backbone("resnet_tiny")
    neck = TwoWayFPN(backbone.out_channels, 16)
    branch = CSMFMaskBranch(16, 8, 8)
    x = torch.randn(2, 3, 100, 76)
    out = neck(backbone(x))
    mask_feat = branch(*out)
    assert mask_feat.shape == (2, 8, 25, 19)
    # the heads read the pyramid levels, the mask head reads mask_feat
    (mask_feat.square().mean() + sum(n.mean() for n in out.bottom_up)).backward()
    for module in (neck, branch):
        for name, p in module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
