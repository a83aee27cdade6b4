"""CSPAM: the cross-stage partial backbone with position attention of the improved SOLOv2.

Liu & Kong, "Real-Time Instance Segmentation Method Based on Location Attention" (2024), section 2.1,
Fig. 2 (cross-stage partial ResNet with Mish) and Fig. 3 (position attention module, PAM).

``build_cspam_backbone(name, pretrained) -> CSPAMBackbone`` is a drop-in replacement for
``methods.backbones.build_backbone``: ``forward(x: Tensor[B, 3, H, W]) -> [C2, C3, C4, C5]`` with strides
4, 8, 16, 32 (spatial sizes ceil(H / s), exactly as torchvision's ResNet, also for H, W not divisible by
32) and ``out_channels`` equal to those of the ResNet of the same name.  Each stage has the same number of
residual blocks (same block type) and the same output width as that ResNet, so that parameters and FLOPs
compare at equal depth.

The paper gives no code and leaves several details open.  The choices below are the simplest reading
that matches the text; each is a constructor argument of ``CSPAMBackbone`` / ``PositionAttention``:

* CSP stage (CSPNet, Wang et al. 2020, applied to a ResNet stage): the stage input is projected by two
  1x1 conv-BN-Mish into two halves of the stage width.  The bypass half is projected with the stage's
  stride (like ResNet's projection shortcut); the main half passes the stage's residual blocks
  (torchvision ``BasicBlock`` / ``Bottleneck`` at half width, the first one carrying the stride), then a
  1x1 transition; the two halves are concatenated and fused by a 1x1 conv-BN-Mish to the stage width.
* Mish replaces every ReLU (stem, blocks, transitions).
* PAM "between the residual blocks": one ``PositionAttention`` after stage k for k in ``pam_after``
  (default (2, 3): on C3 and on C4, whose refined maps are both returned and fed to the next stage).
  Not after stage 1 by default: attention costs O(N^2) in the number of positions N, and at stride 4 a
  1200x680 training image (the paper's size) has N = 51,000, i.e. 2.6e9 attention weights per image.
* PAM details: see ``PositionAttention``.

There are no ImageNet weights for this architecture; it is trained from scratch.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import Conv2dNormActivation

from methods.backbones import BACKBONES, NARROW_WIDTHS

ThetaOn = Literal["reduced", "attention", "residual"]
PamInit = Literal["default", "kaiming"]
LogitScale = Literal["none", "sqrt"]
CspWidth = Literal["half", "full"]

# name -> (block type, blocks per stage, stage output widths C2..C5, stem width); mirrors build_backbone.
_SPECS: dict[str, tuple[type[nn.Module], tuple[int, ...], tuple[int, ...], int]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2), (64, 128, 256, 512), 64),
    "resnet34": (BasicBlock, (3, 4, 6, 3), (64, 128, 256, 512), 64),
    "resnet50": (Bottleneck, (3, 4, 6, 3), (256, 512, 1024, 2048), 64),
    "resnet101": (Bottleneck, (3, 4, 23, 3), (256, 512, 1024, 2048), 64),
    **{name: (BasicBlock, (1, 1, 1, 1), widths, widths[0]) for name, widths in NARROW_WIDTHS.items()},
}
assert set(_SPECS) == set(BACKBONES), "CSPAM must exist for every ResNet backbone name"


def _conv_bn_mish(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> nn.Module:
    return Conv2dNormActivation(in_channels, out_channels, kernel_size, stride, activation_layer=nn.Mish,
                                inplace=None)


class PositionAttention(nn.Module):
    """Position attention module (PAM) of the improved SOLOv2 (paper section 2.1, Fig. 3).

    With X the input (B, C, H, W), N = H * W and C1 = max(1, C // reduction)::

        T1 = Conv1x1_reduce(X)                                   (B, C1, H, W)
        P, A, M = Conv1x1_p(T1), Conv1x1_a(T1), Conv1x1_m(T1)    each reshaped to (B, C1, N)
        S = softmax(P^T A, over the last axis)                   (B, N, N), S[i, j] = weight of j for i
        PAM = M S^T                                              (B, C1, N), reshaped to (B, C1, H, W)
        T2 = Conv1x1_out(PAM)                                    (B, C - C1, H, W)
        T3 = concat(theta * T1, T2)          (theta_on="reduced", the paper's literal text)
        T3 = concat(T1, theta * T2)          (theta_on="attention", DANet's placement of the scale)
        out = X + theta * concat(T1, T2)     (theta_on="residual", the default: DANet / SAGAN's
                                              identity-at-initialisation residual, out = gamma * attn + x)

    ``theta`` is a learnable scalar initialised to 0 (paper: "set to 0 at the beginning").  At theta = 0,
    exactly:

        theta_on="reduced":   T3 = concat(zeros(B, C1, H, W), T2)   (the attention path alone)
        theta_on="attention": T3 = concat(T1, zeros(B, C - C1, H, W))  (the reduced map alone)
        theta_on="residual":  out = X                                (identity: the block starts as the
                                                                      plain CSP backbone)

    Why "residual" is the default: the paper's sentence ("T1 is multiplied by the adaptive weight factor
    theta ... set to 0 at the beginning") read literally makes the module start as the attention path
    alone, a C -> C/8 -> C bottleneck that every stage's features must squeeze through (4-8 channels in a
    narrow ResNet); quick profile: AP 1.8.  "theta set to 0 at the beginning" is the device of DANet's PAM
    (Fu et al. 2019, ``PAM_Module``: ``out = gamma * out + x``, gamma = 0) and SAGAN, from which the module
    derives, whose purpose is that the network starts as its backbone; that reading gives AP 19.3 / 19.4
    (seeds 0 / 1, quick profile of 2026-12-01).  The literal reading stays ``theta_on="reduced"``; the
    study ``ablation_table1 --readings`` runs the claim under each.

    Choices where the paper is open: the paper says P, A and M are obtained from the reduced map "by
    reshape"; by default each gets its own 1x1 projection (query / key / value, as in DANet's PAM from
    which the module derives); ``use_projections=False`` takes P = A = M = T1 literally.  No 1/sqrt(C1)
    scaling of P^T A (the paper has none).  The 1x1 convs carry a bias and no normalisation.

    Args:
        channels: C, the input channels (>= 2, so that both concatenated parts are non-empty).
        reduction: C / C1 (paper: 8).
        theta_on: which part ``theta`` scales (see above).
        use_projections: separate 1x1 projections for P, A, M (True) or P = A = M = T1 (False).
        use_sdpa: compute softmax(P^T A) M^T with ``F.scaled_dot_product_attention`` (fused kernels, no
            (N, N) matrix in memory on GPU) instead of two explicit batched matmuls.  Same result; note
            that ``torch.utils.flop_counter`` counts no FLOPs for its CPU kernel, so keep it False when
            counting FLOPs on CPU.
        logit_scale: "none" (P^T A as the paper and DANet write it) or "sqrt" (divided by sqrt(C1), the
            transformer's scaled dot product).
        min_reduced_channels: floor on C1 (1 = the paper's C / 8 exactly; e.g. 16 keeps a narrow network's
            attention from working on 4-8 channels).  C1 is capped at C - 1 so that T2 is non-empty.

    Raises:
        ValueError: channels < 2, reduction < 1, an unknown ``theta_on`` or ``logit_scale``.
    """

    def __init__(self, channels: int, reduction: int = 8, theta_on: ThetaOn = "residual",
                 use_projections: bool = True, use_sdpa: bool = False, logit_scale: LogitScale = "none",
                 min_reduced_channels: int = 1) -> None:
        super().__init__()
        if channels < 2 or reduction < 1 or min_reduced_channels < 1:
            raise ValueError(f"PositionAttention needs channels >= 2, reduction >= 1 and min_reduced_channels"
                             f" >= 1, got {channels}, {reduction}, {min_reduced_channels}")
        if theta_on not in ("reduced", "attention", "residual"):
            raise ValueError(f"unknown theta_on {theta_on!r}; valid: reduced, attention, residual")
        if logit_scale not in ("none", "sqrt"):
            raise ValueError(f"unknown logit_scale {logit_scale!r}; valid: none, sqrt")
        self.channels = channels
        self.reduced_channels = min(channels - 1, max(min_reduced_channels, channels // reduction))
        c1 = self.reduced_channels
        self.theta_on = theta_on
        self.use_sdpa = use_sdpa
        self.logit_scale = 1.0 if logit_scale == "none" else c1 ** -0.5
        self.reduce = nn.Conv2d(channels, c1, 1)
        make = (lambda: nn.Conv2d(c1, c1, 1)) if use_projections else nn.Identity
        self.proj_p, self.proj_a, self.proj_m = make(), make(), make()
        self.out = nn.Conv2d(c1, channels - c1, 1)
        self.theta = nn.Parameter(torch.zeros(1))

    def attend(self, t1: Tensor) -> Tensor:
        """PAM = M softmax(P^T A)^T of the reduced map ``t1`` (B, C1, H, W) -> (B, C1, H, W)."""
        b, c1, h, w = t1.shape
        p = self.proj_p(t1).flatten(2)  # (B, C1, N)
        a = self.proj_a(t1).flatten(2)
        m = self.proj_m(t1).flatten(2)
        if self.use_sdpa:
            pam = F.scaled_dot_product_attention(  # (B, 1, N, C1), one head, queries P^T, keys A^T
                p.transpose(1, 2)[:, None], a.transpose(1, 2)[:, None], m.transpose(1, 2)[:, None],
                scale=self.logit_scale)
            return pam[:, 0].transpose(1, 2).reshape(b, c1, h, w)
        attn = torch.softmax(torch.bmm(p.transpose(1, 2), a) * self.logit_scale, dim=-1)  # (B, N, N)
        return torch.bmm(m, attn.transpose(1, 2)).reshape(b, c1, h, w)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) float -> (B, C, H, W): T3 (channels [0, C1) from T1, [C1, C) from T2), or
        X + theta * T3 with ``theta_on="residual"``."""
        t1 = self.reduce(x)
        t2 = self.out(self.attend(t1))
        if self.theta_on == "reduced":
            return torch.cat([self.theta * t1, t2], dim=1)
        if self.theta_on == "residual":
            return x + self.theta * torch.cat([t1, t2], dim=1)
        return torch.cat([t1, self.theta * t2], dim=1)


def _with_mish(block: nn.Module) -> nn.Module:
    """A torchvision residual block with its (shared) ReLU replaced by Mish."""
    block.relu = nn.Mish()
    return block


class CSPStage(nn.Module):
    """One cross-stage partial ResNet stage (CSPNet; paper Fig. 2), stride ``stride``.

    forward(x: (B, in_channels, H, W)) -> (B, out_channels, ceil(H / stride), ceil(W / stride)):
    ``fuse(concat(bypass(x), transition(blocks(main(x)))))``; ``blocks`` are ``num_blocks`` torchvision
    ``block`` modules (ReLU -> Mish) at width out_channels / 2 (``width="half"``: the paper's "the number of
    parameters of the convolutional layers is reduced") or out_channels (``width="full"``: the ResNet's own
    3x3 widths in each part, as timm's ``cspresnet50`` keeps them), the first one with the stride.
    """

    def __init__(self, block: type[nn.Module], in_channels: int, out_channels: int, num_blocks: int,
                 stride: int, width: CspWidth = "half") -> None:
        super().__init__()
        if width not in ("half", "full"):
            raise ValueError(f"unknown CSP width {width!r}; valid: half, full")
        half = out_channels // 2 if width == "half" else out_channels
        expansion = getattr(block, "expansion", 1)
        if (width == "half" and out_channels % 2) or half % expansion:
            raise ValueError(f"CSP stage width {out_channels} must split into halves divisible by the "
                             f"block expansion {expansion}")
        self.bypass = _conv_bn_mish(in_channels, half, 1, stride)
        self.main = _conv_bn_mish(in_channels, half, 1)
        blocks = []
        for i in range(num_blocks):
            s = stride if i == 0 else 1
            down = None
            if s != 1:
                down = nn.Sequential(nn.Conv2d(half, half, 1, s, bias=False), nn.BatchNorm2d(half))
            blocks.append(_with_mish(block(half, half // expansion, s, down)))
        self.blocks = nn.Sequential(*blocks)
        self.transition = _conv_bn_mish(half, half, 1)
        self.fuse = _conv_bn_mish(2 * half, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(torch.cat([self.bypass(x), self.transition(self.blocks(self.main(x)))], dim=1))


class CSPAMBackbone(nn.Module):
    """CSPAM backbone: ResNet stem (Mish), four ``CSPStage``s, ``PositionAttention`` between stages.

    forward(x: Tensor[B, 3, H, W], float, normalised image) -> [C2, C3, C4, C5], strides 4, 8, 16, 32,
    sizes ceil(H / s) x ceil(W / s) (as torchvision's ResNet), channels ``out_channels``.  C_k is the
    output of stage k after its PAM when k is in ``pam_after``.

    Args:
        block: torchvision ``BasicBlock`` or ``Bottleneck``.
        layers: residual blocks per stage (as the ResNet of the same name).
        widths: output channels of stages 1-4 (as the ResNet of the same name).
        stem_channels: channels of the 7x7 stride-2 stem conv.
        pam_after: stages (1-3) followed by a PAM, i.e. PAM between stage k and k + 1.
        reduction, theta_on, use_projections, use_sdpa, logit_scale, min_reduced_channels: of each
            ``PositionAttention``.
        pam_init: "default" (PyTorch's default init of the PAM's 1x1 convs, as DANet's ``PAM_Module``) or
            "kaiming" (the backbone's kaiming-normal fan-out init applied to them too; the code until
            2026-12-02).
        csp_width: ``CSPStage`` width ("half" or "full").

    Raises:
        ValueError: a ``pam_after`` entry outside 1-3, or widths that cannot be halved for the blocks.
    """

    def __init__(self, block: type[nn.Module], layers: tuple[int, ...], widths: tuple[int, ...],
                 stem_channels: int, pam_after: tuple[int, ...] = (2, 3), reduction: int = 8,
                 theta_on: ThetaOn = "residual", use_projections: bool = True,
                 use_sdpa: bool = False, logit_scale: LogitScale = "none", min_reduced_channels: int = 1,
                 pam_init: PamInit = "default", csp_width: CspWidth = "half") -> None:
        super().__init__()
        if not set(pam_after) <= {1, 2, 3}:
            raise ValueError(f"pam_after {pam_after!r}: a PAM goes between stages, after stage 1, 2 or 3")
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_channels, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem_channels), nn.Mish(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        ins = (stem_channels, *widths[:3])
        strides = (1, 2, 2, 2)
        if pam_init not in ("default", "kaiming"):
            raise ValueError(f"unknown pam_init {pam_init!r}; valid: default, kaiming")
        self.stages = nn.ModuleList(CSPStage(block, *args, width=csp_width)
                                    for args in zip(ins, widths, layers, strides))
        self.pam = nn.ModuleDict({
            str(k): PositionAttention(widths[k - 1], reduction, theta_on, use_projections, use_sdpa, logit_scale,
                                      min_reduced_channels)
            for k in sorted(pam_after)})
        self.out_channels = list(widths)
        skip = set() if pam_init == "kaiming" else {id(m) for m in self.pam.modules()}
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and id(m) not in skip:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        feats = []
        for k, stage in enumerate(self.stages, start=1):
            x = stage(x)
            if str(k) in self.pam:
                x = self.pam[str(k)](x)
            feats.append(x)
        return feats


def build_cspam_backbone(name: str, pretrained: str = "", *, pam_after: tuple[int, ...] = (2, 3),
                         reduction: int = 8, theta_on: ThetaOn = "residual", use_projections: bool = True,
                         use_sdpa: bool = False, logit_scale: LogitScale = "none", min_reduced_channels: int = 1,
                         pam_init: PamInit = "default", csp_width: CspWidth = "half") -> CSPAMBackbone:
    """The CSPAM variant of ResNet ``name`` (same names, depths and stage widths as ``build_backbone``).

    Raises:
        ValueError: unknown ``name`` (the message lists the valid ones).
        RuntimeError: ``pretrained`` is non-empty: no ImageNet weights exist for CSPAM.
    """
    if name not in _SPECS:
        raise ValueError(f"unknown backbone {name!r} for CSPAM; valid: {', '.join(BACKBONES)}")
    if pretrained:
        raise RuntimeError(
            f"CSPAM backbone {name}: no pretrained weights exist for CSPAM (got pretrained={pretrained!r}); "
            "train it from scratch with --set method.pretrained=''")
    block, layers, widths, stem = _SPECS[name]
    return CSPAMBackbone(block, layers, widths, stem, pam_after, reduction, theta_on, use_projections,
                         use_sdpa, logit_scale, min_reduced_channels, pam_init, csp_width)
