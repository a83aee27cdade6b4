"""Backbones: torchvision ResNets (18/34/50/101) and a narrow ResNet for the CPU quick profile.

``build_backbone(name, pretrained) -> Backbone``; ``Backbone.forward(x) -> [C2, C3, C4, C5]``
with strides 4, 8, 16, 32 and ``out_channels`` listing their channel counts.
"""
from __future__ import annotations

import pickle

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, ResNet

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet_small", "resnet_narrow", "resnet_tiny")

# CPU-profile ResNets (BasicBlocks, one per stage): name -> stage widths C2..C5 (stem = C2).  ResNet-18 has
# two blocks per stage and widths 64..512.  The smoke and quick profiles use ``resnet_narrow``; ``resnet_small``
# costs 1.29x its training FLOPs in SOLOv2 at 128 px.
NARROW_WIDTHS: dict[str, tuple[int, int, int, int]] = {
    "resnet_small": (32, 64, 128, 256),
    "resnet_narrow": (16, 32, 64, 128),
    "resnet_tiny": (8, 8, 16, 16),
}

_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
}


class NarrowResNet(ResNet):
    """ResNet with BasicBlocks and reduced widths (torchvision's ResNet class, fewer channels).

    ``widths`` are the channels of stages 1-4 (ResNet-18 uses 64, 128, 256, 512).  Used by the
    smoke / quick profiles so that a CPU can train in minutes; documented in the run's config.
    """

    def __init__(self, layers=(1, 1, 1, 1), widths=(16, 32, 64, 128)) -> None:
        super().__init__(BasicBlock, list(layers), num_classes=1)
        stem = widths[0]
        self.inplanes = stem
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.layer1 = self._make_layer(BasicBlock, widths[0], layers[0])
        self.layer2 = self._make_layer(BasicBlock, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, widths[3], layers[3], stride=2)
        self.fc = nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class Backbone(nn.Module):
    """Wraps a torchvision ResNet and returns its four stage outputs.

    forward(x: Tensor[B, 3, H, W]) -> [C2 (stride 4), C3 (8), C4 (16), C5 (32)].
    """

    def __init__(self, resnet: ResNet, out_channels: list[int]) -> None:
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (resnet.layer1, resnet.layer2, resnet.layer3,
                                                              resnet.layer4)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


def _load_pretrained(model: nn.Module, name: str, pretrained: str) -> None:
    """Load ImageNet weights from a path or ``torchvision://<WeightsEnum>.<member>``.

    Raises:
        RuntimeError: the weights cannot be had (no network here, file missing) — with a message
            saying how to provide them.
    """
    if pretrained.startswith("torchvision://"):
        spec = pretrained[len("torchvision://"):]
        enum_name, _, member = spec.partition(".")
        try:
            weights = getattr(torchvision.models, enum_name)[member]
            state = weights.get_state_dict(progress=False)
        except Exception as e:  # network down, cache empty
            raise RuntimeError(
                f"backbone {name}: cannot obtain pretrained weights {pretrained!r} ({type(e).__name__}: {e}). "
                "Download them on a machine with internet (torchvision caches them under "
                "$TORCH_HOME/hub/checkpoints) or pass a local file with --set method.pretrained=PATH, "
                "or train from scratch with --set method.pretrained=''"
            ) from e
    else:
        try:
            state = torch.load(pretrained, map_location="cpu", weights_only=True)
        except FileNotFoundError as e:
            raise RuntimeError(f"backbone {name}: pretrained weights file {pretrained!r} not found") from e
        except (EOFError, RuntimeError, OSError, ValueError, pickle.UnpicklingError) as e:  # empty, truncated, garbage
            raise RuntimeError(f"backbone {name}: pretrained weights file {pretrained}: truncated or corrupt "
                               f"({type(e).__name__}: {str(e)[:200]})") from None
        state = state.get("state_dict", state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.startswith("fc.")]
    if bad:
        raise RuntimeError(f"backbone {name}: pretrained weights {pretrained!r} miss keys {bad[:5]}...")


def build_resnet(name: str, pretrained: str = "") -> ResNet:
    """The torchvision ResNet ``name`` (see ``BACKBONES``), optionally with ImageNet weights."""
    if name in NARROW_WIDTHS:
        return NarrowResNet(layers=(1, 1, 1, 1), widths=NARROW_WIDTHS[name])
    if name not in _WEIGHTS:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(BACKBONES)}")
    model = getattr(torchvision.models, name)(weights=None)
    if pretrained:
        _load_pretrained(model, name, pretrained)
    return model


def build_backbone(name: str, pretrained: str = "") -> Backbone:
    """``Backbone`` for ``name``; ``out_channels`` = channels of C2..C5."""
    resnet = build_resnet(name, pretrained)
    if name in NARROW_WIDTHS:
        chans = list(NARROW_WIDTHS[name])
    elif name in ("resnet18", "resnet34"):
        chans = [64, 128, 256, 512]
    else:
        chans = [256, 512, 1024, 2048]
    return Backbone(resnet, chans)
