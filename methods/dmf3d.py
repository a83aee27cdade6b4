"""3D Max Filtering (3DMF) of DeFCN (Wang et al., "End-to-End Object Detection with Fully
Convolutional Network", CVPR 2021, Sec. 3.3), used by UniInst on its instance tower.

For every pyramid level l: a conv3x3 shared across levels; the outputs of levels l-1, l, l+1 are
bilinearly resized to level l's size and stacked on a depth axis; a 3x3x3 max pool (stride 1,
padding 1) filters across scale and space; level l's slice is kept, the input is added as a
residual, then GroupNorm + ReLU and a conv3x3 predicts one "filter" logit per location. The filter
score multiplies the classification score (``sigmoid(cls) * sigmoid(filter)``), suppressing
duplicates in a local neighbourhood.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def max_filter_3d(feats: list[Tensor], kernel_size: int = 3) -> list[Tensor]:
    """Max filtering across neighbouring levels and space (no parameters).

    Args:
        feats: per level Tensor[B, C, H_l, W_l] (any float dtype), finest level first.
        kernel_size: size of the (depth, height, width) max-pool window (3 in DeFCN); odd.
    Returns:
        per level Tensor[B, C, H_l, W_l]: at each (l, y, x) the maximum over levels l-1..l+1
        (resized bilinearly to level l) and the kernel_size x kernel_size spatial window.
    Raises:
        ValueError: even ``kernel_size``.
    """
    if kernel_size % 2 == 0:
        raise ValueError(f"max_filter_3d: kernel_size must be odd, got {kernel_size}")
    half = kernel_size // 2
    out = []
    for lvl, f in enumerate(feats):
        size = f.shape[-2:]
        lo, hi = max(0, lvl - half), min(len(feats), lvl + half + 1)
        stack = [f if k == lvl else F.interpolate(feats[k], size=size, mode="bilinear", align_corners=False)
                 for k in range(lo, hi)]
        volume = torch.stack(stack, dim=2)  # (B, C, D, H, W)
        pooled = F.max_pool3d(volume, kernel_size, stride=1, padding=half)
        out.append(pooled[:, :, lvl - lo])
    return out


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm(32) for the papers' 256-wide heads (8 channels per group).

    Narrow smoke / quick widths keep at least 8 channels per group (32 -> 4 groups, 64 -> 8):
    with 1 channel per group a 1x1 P7 map of a single image could not be normalised.
    """
    return nn.GroupNorm(math.gcd(groups, max(1, channels // 8)), channels)


class MaxFiltering3D(nn.Module):
    """3DMF feature refinement (DeFCN Sec. 3.3) followed by the filter conv.

    Args:
        channels: width of the input features (the instance tower).
        kernel_size: 3D max-pool window (3).
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = group_norm(channels)
        self.filter = nn.Conv2d(channels, 1, 3, padding=1)
        self.kernel_size = kernel_size
        for m in (self.conv, self.filter):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    def refine(self, feats: list[Tensor]) -> list[Tensor]:
        """Shared conv3x3 -> 3D max filter -> + residual -> GN -> ReLU; shapes preserved."""
        conv = [self.conv(f) for f in feats]
        filtered = max_filter_3d(conv, self.kernel_size)
        return [F.relu(self.norm(f + x)) for f, x in zip(filtered, feats)]

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        """Filter logits.

        Args:
            feats: per level Tensor[B, C, H_l, W_l].
        Returns:
            per level Tensor[B, 1, H_l, W_l], raw logits (apply sigmoid for the filter score).
        """
        return [self.filter(f) for f in self.refine(feats)]
