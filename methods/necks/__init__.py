"""Necks: torchvision's FeaturePyramidNetwork with the extra levels the methods need.

``build_fpn(in_channels, out_channels, extra="p6") -> FPN``; ``FPN.forward([C2..C5])`` returns
``[P2, P3, P4, P5, P6]`` (``extra="p6"``, P6 = stride-2 max-pool of P5, as SOLOv2) or, with
``extra="p6p7"`` and ``start_level=1`` (FCOS / CondInst), ``[P3, P4, P5, P6, P7]``.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn
from torchvision.ops.feature_pyramid_network import (
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)


class FPN(nn.Module):
    """FPN over backbone stages ``start_level..3`` of [C2, C3, C4, C5].

    Args:
        in_channels: channels of C2..C5 (all four, even if start_level > 0).
        out_channels: FPN width.
        extra: "p6" (max-pool P6) or "p6p7" (P6, P7 from P5 by stride-2 convs, FCOS style).
        start_level: 0 -> outputs start at P2 (stride 4); 1 -> at P3 (stride 8).
    """

    def __init__(self, in_channels: list[int], out_channels: int, extra: str = "p6",
                 start_level: int = 0) -> None:
        super().__init__()
        if extra == "p6":
            block = LastLevelMaxPool()
        elif extra == "p6p7":
            block = LastLevelP6P7(out_channels, out_channels)
        else:
            raise ValueError(f"unknown FPN extra levels {extra!r}; valid: p6, p6p7")
        self.start_level = start_level
        self.fpn = FeaturePyramidNetwork(list(in_channels[start_level:]), out_channels, extra_blocks=block)
        self.out_channels = out_channels
        self.strides = [4 * 2**i for i in range(start_level, 4)] + (
            [64] if extra == "p6" else [64, 128])

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        x = OrderedDict((str(i), f) for i, f in enumerate(feats[self.start_level:]))
        return list(self.fpn(x).values())


def build_fpn(in_channels: list[int], out_channels: int, extra: str = "p6", start_level: int = 0) -> FPN:
    return FPN(in_channels, out_channels, extra, start_level)
