"""TWFPN (two-way FPN) and CSMF (cross-stage mask feature fusion) of the improved SOLOv2.

Liu & Kong, "Real-Time Instance Segmentation Method Based on Location Attention" (2024), section 2.2
and Fig. 4.  No public code exists; the choices where the paper is open are listed in each class.

* ``TwoWayFPN``: torchvision's ``FeaturePyramidNetwork`` (top-down, P2-P5, P6 = stride-2 max-pool of P5)
  plus a PANet-style bottom-up path (Liu et al. 2018): N2 = P2, N_{i+1} = conv3x3(conv3x3_s2(N_i) +
  P_{i+1}), each conv followed by ReLU (as PANet), N6 = stride-2 max-pool of N5.
* ``CSMFMaskBranch``: replaces SOLOv2's mask feature branch; output (B, E, ceil(H/4), ceil(W/4)).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool


class TwoWayOutput(NamedTuple):
    """Outputs of ``TwoWayFPN``; both lists have strides 4, 8, 16, 32, 64 and ``out_channels`` channels.

    Attributes:
        top_down: [P2, P3, P4, P5, P6], each (B, out_channels, ceil(H / s), ceil(W / s)).
        bottom_up: [N2, N3, N4, N5, N6], same shapes as ``top_down``.
    """

    top_down: list[Tensor]
    bottom_up: list[Tensor]


class TwoWayFPN(nn.Module):
    """Two-way feature pyramid network TWFPN (paper section 2.2).

    forward([C2, C3, C4, C5]) -> TwoWayOutput.  Level sizes follow the backbone (ceil(H / s) for inputs
    not divisible by 32); if a stride-2 conv output ever differs in size from P_{i+1} it is resized to it
    (nearest).  P6 and N6 use ``max_pool2d(kernel 1, stride 2)`` as SOLOv2's / torchvision's P6.

    Args:
        in_channels: channels of C2..C5 (e.g. ``backbone.out_channels``).
        out_channels: channels of every P and N level.

    Raises:
        ValueError: ``in_channels`` does not have four entries.
    """

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"TwoWayFPN expects the channels of C2..C5 (4 entries), got {in_channels}")
        self.top_down = FeaturePyramidNetwork(list(in_channels), out_channels,
                                              extra_blocks=LastLevelMaxPool())
        self.downsample = nn.ModuleList(
            Conv2dNormActivation(out_channels, out_channels, 3, 2, norm_layer=None) for _ in range(3))
        self.fuse = nn.ModuleList(
            Conv2dNormActivation(out_channels, out_channels, 3, 1, norm_layer=None) for _ in range(3))
        self.out_channels = out_channels
        self.strides = [4, 8, 16, 32, 64]

    def forward(self, feats: list[Tensor]) -> TwoWayOutput:
        """feats: [C2, C3, C4, C5] (B, in_channels[i], H_i, W_i) -> TwoWayOutput."""
        td = list(self.top_down(OrderedDict((str(i), f) for i, f in enumerate(feats))).values())
        bu = [td[0]]
        for down, fuse, p in zip(self.downsample, self.fuse, td[1:4]):
            n = down(bu[-1])
            if n.shape[-2:] != p.shape[-2:]:
                n = F.interpolate(n, size=p.shape[-2:], mode="nearest")
            bu.append(fuse(n + p))
        bu.append(F.max_pool2d(bu[-1], kernel_size=1, stride=2))
        return TwoWayOutput(td, bu)


def coord_features(x: Tensor) -> Tensor:
    """CoordConv channels for ``x`` (B, C, H, W): (B, 2, H, W), [x, y] each linspace(-1, 1) (SOLOv2)."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy])[None].expand(b, -1, -1, -1)


def _conv_gn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    # GroupNorm(32) as SOLOv2's mask branch; fewer groups when the width is not a multiple of 32.
    groups = math.gcd(32, out_channels)
    return Conv2dNormActivation(in_channels, out_channels, kernel_size, bias=False,
                                norm_layer=lambda c: nn.GroupNorm(groups, c))


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class CSMFMaskBranch(nn.Module):
    """Cross-stage mask feature fusion CSMF (paper section 2.2, Fig. 4), SOLOv2's unified mask features.

    forward(top_down=[P2..P6], bottom_up=[N2..N6]) -> (B, out_channels, H2, W2) at stride 4, where
    (H2, W2) is the size of N2 (= P2).  Every upsampling is bilinear to the exact size of the target
    level (2x, 4x, 8x up to the rounding of odd sizes)::

        level 2:  conv3x3(N2) + up_8x(conv1x1(P5))          P5 as the global semantic guide of P2
        level 3:  up_2x(conv3x3(N3))
        level 4:  up_2x(conv3x3(up_2x(conv3x3(concat(up_2x(P5), N4, coords)))))   P5 2x concat N4
        out:      conv1x1(level 2 + level 3 + level 4)

    Every conv is conv-GN-ReLU (as SOLOv2's mask branch; GroupNorm with gcd(32, channels) groups); the
    CoordConv channels (x, y in [-1, 1]) are appended to the deepest input, as SOLOv2 appends them to P5.

    Choices where the paper is open: the guide is added (not multiplied); the fused level 4 gets two
    conv + 2x-up rounds and level 3 one (SOLOv2's schedule); N5 and the level-6 maps are not used (the
    paper names only P5, N4 and P2); the branch reads N2 and N3 from the bottom-up path (N2 = P2).

    Args:
        in_channels: channels of the P and N levels (``TwoWayFPN.out_channels``).
        mid_channels: width of the fusion convs (SOLOv2: 128).
        out_channels: E, the mask feature channels (SOLOv2: 256 for R50).
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.level2 = _conv_gn_relu(in_channels, mid_channels, 3)
        self.guide = _conv_gn_relu(in_channels, mid_channels, 1)
        self.level3 = _conv_gn_relu(in_channels, mid_channels, 3)
        self.level4 = nn.ModuleList([_conv_gn_relu(2 * in_channels + 2, mid_channels, 3),
                                     _conv_gn_relu(mid_channels, mid_channels, 3)])
        self.pred = _conv_gn_relu(mid_channels, out_channels, 1)

    def forward(self, top_down: list[Tensor], bottom_up: list[Tensor]) -> Tensor:
        """top_down [P2..P6], bottom_up [N2..N6] (at least 4 levels each) -> (B, E, H2, W2)."""
        p5 = top_down[3]
        n2, n3, n4 = bottom_up[:3]
        fused = torch.cat([_up(p5, n4), n4], dim=1)
        fused = torch.cat([fused, coord_features(fused)], dim=1)  # (B, 2 * in + 2, H4, W4)
        lvl4 = _up(self.level4[1](_up(self.level4[0](fused), n3)), n2)
        lvl3 = _up(self.level3(n3), n2)
        lvl2 = self.level2(n2) + _up(self.guide(p5), n2)
        return self.pred(lvl2 + lvl3 + lvl4)
