"""Tests of the CSPAM backbone and its position attention module (methods/backbones/cspam.py)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close
from torch.utils.flop_counter import FlopCounterMode

from methods.backbones import BACKBONES, build_backbone
from methods.backbones.cspam import CSPStage, PositionAttention, build_cspam_backbone


def _complexity(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, int]:
    """(parameters, forward FLOPs counted by torch.utils.flop_counter) of ``model`` on zeros of ``shape``."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(shape))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops()


def _pam_by_hand(pam: PositionAttention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(T1, T2) of the paper's Fig. 3 written out with einsum from the module's weights."""
    t1 = F.conv2d(x, pam.reduce.weight, pam.reduce.bias)
    b, c1, h, w = t1.shape

    def proj(conv):
        return F.conv2d(t1, conv.weight, conv.bias).reshape(b, c1, h * w)

    p, a, m = proj(pam.proj_p), proj(pam.proj_a), proj(pam.proj_m)
    s = torch.softmax(torch.einsum("bci,bcj->bij", p, a), dim=2)  # s[b, i, j]: weight of position j for i
    pam_map = torch.einsum("bcj,bij->bci", m, s).reshape(b, c1, h, w)
    return t1, F.conv2d(pam_map, pam.out.weight, pam.out.bias)


def test_pam_theta_zero_is_attention_path_alone():
    torch.manual_seed(0)
    pam = PositionAttention(16, reduction=8, theta_on="reduced")
    assert pam.theta.item() == 0.0 and pam.reduced_channels == 2
    x = torch.randn(2, 16, 3, 5)
    t1, t2 = _pam_by_hand(pam, x)
    out = pam(x)
    assert out.shape == x.shape
    # theta_on="reduced", theta = 0: T3 = concat(zeros(C1), T2)
    assert_close(out, torch.cat([torch.zeros_like(t1), t2], dim=1))


def test_pam_theta_zero_attention_variant_is_reduced_map_alone():
    torch.manual_seed(1)
    pam = PositionAttention(16, reduction=4, theta_on="attention")
    x = torch.randn(1, 16, 4, 4)
    t1, t2 = _pam_by_hand(pam, x)
    assert_close(pam(x), torch.cat([t1, torch.zeros_like(t2)], dim=1))
    with torch.no_grad():
        pam.theta.fill_(0.5)
    assert_close(pam(x), torch.cat([t1, 0.5 * t2], dim=1))


def test_pam_theta_scales_reduced_map():
    torch.manual_seed(2)
    pam = PositionAttention(8, reduction=2, theta_on="reduced")
    with torch.no_grad():
        pam.theta.fill_(-1.5)
    x = torch.randn(2, 8, 2, 3)
    t1, t2 = _pam_by_hand(pam, x)
    assert_close(pam(x), torch.cat([-1.5 * t1, t2], dim=1))


def test_pam_without_projections_uses_reduced_map_three_times():
    # C = 2, C1 = 1, reduce = identity on channel 0; two positions with values 1 and 2:
    # S = softmax_j(v_i v_j): row 0 softmax([1, 2]), row 1 softmax([2, 4]); PAM_i = sum_j S_ij v_j.
    pam = PositionAttention(2, reduction=2, use_projections=False, theta_on="reduced")
    with torch.no_grad():
        pam.reduce.weight.copy_(torch.tensor([[1.0, 0.0]]).reshape(1, 2, 1, 1))
        pam.reduce.bias.zero_()
        pam.out.weight.fill_(1.0)
        pam.out.bias.zero_()
    x = torch.tensor([[1.0, 2.0], [7.0, -3.0]]).reshape(1, 2, 1, 2)
    e = torch.exp(torch.tensor([1.0, 2.0, 2.0, 4.0]))
    expected = torch.tensor([(e[0] * 1 + e[1] * 2) / (e[0] + e[1]), (e[2] * 1 + e[3] * 2) / (e[2] + e[3])])
    out = pam(x)
    assert_close(out[0, 1, 0], expected)
    assert_close(out[0, 0, 0], torch.zeros(2))


def test_pam_sdpa_matches_explicit_matmuls():
    torch.manual_seed(3)
    ref = PositionAttention(32, reduction=8)
    fused = PositionAttention(32, reduction=8, use_sdpa=True)
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(2, 32, 5, 7)
    assert_close(fused(x), ref(x), rtol=1e-4, atol=1e-5)


def test_pam_flops_match_hand_count():
    c, h, w = 16, 4, 6
    n, c1 = h * w, 2
    expected = 2 * n * (c * c1 + 3 * c1 * c1 + c1 * (c - c1)) + 2 * (2 * n * n * c1)  # 1x1 convs + 2 bmm
    assert _complexity(PositionAttention(c), (1, c, h, w))[1] == expected


def test_pam_rejects_bad_arguments():
    with pytest.raises(ValueError, match="channels >= 2"):
        PositionAttention(1)
    with pytest.raises(ValueError, match="theta_on"):
        PositionAttention(16, theta_on="both")


def _strided(hw: tuple[int, int]) -> list[tuple[int, int]]:
    """Sizes of C2..C5 for an input of size hw: ceil(hw / stride), as torchvision's ResNet gives."""
    return [(-(-hw[0] // s), -(-hw[1] // s)) for s in (4, 8, 16, 32)]


@pytest.mark.parametrize("name", BACKBONES)
def test_cspam_matches_resnet_widths_depth_and_shapes(name):
    with torch.device("meta"):  # shapes only: no weights, no compute
        cspam, resnet = build_cspam_backbone(name), build_backbone(name)
        feats = cspam(torch.empty(1, 3, 100, 140))
    assert cspam.out_channels == resnet.out_channels == [f.shape[1] for f in feats]
    assert [tuple(f.shape[-2:]) for f in feats] == _strided((100, 140))
    ref_layers = [resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4]
    assert [len(stage.blocks) for stage in cspam.stages] == [len(layer) for layer in ref_layers]
    assert all(type(s.blocks[0]) is type(r[0]) for s, r in zip(cspam.stages, ref_layers))


@pytest.mark.parametrize("name", ["resnet_tiny", "resnet_narrow"])
def test_cspam_forward_shapes_equal_resnet_two_sizes(name):
    torch.manual_seed(0)
    model, resnet = build_cspam_backbone(name).eval(), build_backbone(name).eval()
    for hw in [(96, 128), (100, 140)]:
        x = torch.randn(2, 3, *hw)
        with torch.no_grad():
            feats, ref = model(x), resnet(x)
        assert [f.shape for f in feats] == [f.shape for f in ref]
        assert [tuple(f.shape[-2:]) for f in feats] == _strided(hw)
        assert all(torch.isfinite(f).all() for f in feats)


def test_cspam_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = build_cspam_backbone("resnet_tiny").train()
    loss = sum(f.square().mean() for f in model(torch.randn(2, 3, 64, 48)))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert all(pam.theta.grad.abs().item() > 0 for pam in model.pam.values())


def test_cspam_contains_pam_and_mish_and_no_relu():
    model = build_cspam_backbone("resnet_narrow")
    assert sorted(model.pam) == ["2", "3"]
    assert [m.channels for m in model.modules() if isinstance(m, PositionAttention)] == [32, 64]
    assert sum(isinstance(m, CSPStage) for m in model.modules()) == 4
    assert any(isinstance(m, nn.Mish) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    one = build_cspam_backbone("resnet_narrow", pam_after=(1,))
    assert [m.channels for m in one.modules() if isinstance(m, PositionAttention)] == [16]


def test_cspam_errors():
    with pytest.raises(RuntimeError, match="no pretrained weights exist for CSPAM"):
        build_cspam_backbone("resnet50", "torchvision://ResNet50_Weights.IMAGENET1K_V1")
    with pytest.raises(ValueError, match="resnet_narrow"):
        build_cspam_backbone("resnet200")
    with pytest.raises(ValueError, match="between stages"):
        build_cspam_backbone("resnet_tiny", pam_after=(4,))


def _compare(name: str, shape: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    torch.manual_seed(0)
    return {"cspam": _complexity(build_cspam_backbone(name), shape),
            "cspam_no_pam": _complexity(build_cspam_backbone(name, pam_after=()), shape),
            "resnet": _complexity(build_backbone(name), shape)}


def _pam_flops(c: int, h: int, w: int) -> int:
    n, c1 = h * w, c // 8
    return 2 * n * (c * c1 + 3 * c1 * c1 + c1 * (c - c1)) + 4 * n * n * c1


def test_complexity_resnet_narrow_128():
    """Params / FLOPs of CSPAM vs ResNet (a measured finding: no claim which is smaller)."""
    res = _compare("resnet_narrow", (1, 3, 128, 128))
    print("resnet_narrow 1x3x128x128 (params, FLOPs):", res)
    assert all(p > 0 and f > 0 for p, f in res.values())
    # the PAMs on C3 (32 ch, 16x16) and C4 (64 ch, 8x8) account exactly for the FLOP difference
    assert res["cspam"][1] - res["cspam_no_pam"][1] == _pam_flops(32, 16, 16) + _pam_flops(64, 8, 8)


@pytest.mark.slow
def test_complexity_resnet50_512():
    res = _compare("resnet50", (1, 3, 512, 512))
    print("resnet50 1x3x512x512 (params, FLOPs):", res)
    assert res["cspam"][1] - res["cspam_no_pam"][1] == _pam_flops(512, 64, 64) + _pam_flops(1024, 32, 32)


@pytest.mark.parametrize("overrides, pams, theta_on", [
    ((), ("2", "3"), "residual"),
    (("method.cspam_theta_on=attention",), ("2", "3"), "attention"),
    (("method.cspam_theta_on=reduced",), ("2", "3"), "reduced"),
    (("method.cspam_pam_after=[]",), (), None),
    (("method.cspam_pam_after=[3]",), ("3",), "residual"),
])
def test_solov2_cspam_fields_build_the_stated_backbone(overrides, pams, theta_on):
    import methods
    from harness.config import make_config
    cfg = make_config("solov2", "smoke", overrides=["method.use_cspam=true", "method.num_classes=3", *overrides])
    backbone = methods.build_method(cfg.method).backbone
    assert tuple(backbone.pam.keys()) == pams
    assert {m.theta_on for m in backbone.pam.values()} == ({theta_on} if pams else set())
    assert [f.shape[1] for f in backbone(torch.randn(1, 3, 64, 64))] == backbone.out_channels
    with pytest.raises(ValueError, match="cspam_pam_after"):
        make_config("solov2", "smoke", overrides=["method.cspam_pam_after=[4]"])


def test_pam_residual_reading_is_identity_at_init_and_adds_scaled_t3():
    """theta_on="residual" (the default, DANet / SAGAN): out = X + theta * concat(T1, T2); at theta = 0 exactly X."""
    torch.manual_seed(2)
    pam = PositionAttention(16, reduction=4)
    assert pam.theta_on == "residual"
    x = torch.randn(2, 16, 3, 4)
    assert torch.equal(pam(x), x)
    with torch.no_grad():
        pam.theta.fill_(0.25)
    t1, t2 = _pam_by_hand(pam, x)
    assert_close(pam(x), x + 0.25 * torch.cat([t1, t2], dim=1))


def test_pam_reading_fields_logit_scale_floor_and_init():
    torch.manual_seed(3)
    pam = PositionAttention(16, reduction=8, theta_on="reduced", logit_scale="sqrt")
    x = torch.randn(1, 16, 3, 3)
    t1 = pam.reduce(x)
    p, a, m = pam.proj_p(t1).flatten(2), pam.proj_a(t1).flatten(2), pam.proj_m(t1).flatten(2)
    s = torch.softmax(torch.einsum("bci,bcj->bij", p, a) / 2 ** 0.5, dim=2)  # C1 = 2
    t2 = pam.out(torch.einsum("bcj,bij->bci", m, s).reshape(1, 2, 3, 3))
    assert_close(pam(x), torch.cat([torch.zeros_like(t1), t2], dim=1))
    assert PositionAttention(32, reduction=8, min_reduced_channels=16).reduced_channels == 16
    assert PositionAttention(16, reduction=8, min_reduced_channels=64).reduced_channels == 15  # T2 keeps 1 channel
    with pytest.raises(ValueError, match="logit_scale"):
        PositionAttention(16, logit_scale="cube")
    # pam_init="default" leaves PyTorch's init on the PAM convs; "kaiming" re-initialises them
    torch.manual_seed(0)
    default = build_cspam_backbone("resnet_narrow", pam_init="default")
    torch.manual_seed(0)
    kaiming = build_cspam_backbone("resnet_narrow", pam_init="kaiming")
    assert torch.equal(default.stem[0].weight, kaiming.stem[0].weight)
    assert not torch.equal(default.pam["2"].reduce.weight, kaiming.pam["2"].reduce.weight)


def test_csp_full_width_keeps_resnet_3x3_widths():
    half = build_cspam_backbone("resnet_narrow", pam_after=(), csp_width="half")
    full = build_cspam_backbone("resnet_narrow", pam_after=(), csp_width="full")
    w = full.stages[1].blocks[0].conv1.weight.shape
    assert half.stages[1].blocks[0].conv1.weight.shape[0] * 2 == w[0] == full.out_channels[1]
    assert [f.shape[1] for f in full(torch.randn(1, 3, 64, 64))] == full.out_channels
