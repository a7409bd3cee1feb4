"""Compute accounting: the published MAC counts reproduced, thop's rules, CReFF's analytic count against
an explicitly counted naive implementation, and the arithmetic of the per-frame costs. All on the meta
device (no memory, fast)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from arseg_cli.model import arch_config, flops
from arseg_cli.model.resize import lr_size
from arseg_cli.model.flops import (
    ar_average_macs,
    branch_costs,
    count_macs,
    creff_attention_macs,
    creff_conv_macs,
    paper_costs,
    thop_convention_macs,
)

# The paper's MACs (thop, CReFF attention not counted), in G: (H, W, HR, LR at 0.5x).
PUBLISHED = {
    "camvid-psp18": (720, 960, 309.3, 77.2),
    "camvid-bise18": (720, 960, 60.2, 15.2),
    "cityscapes-psp18": (1024, 2048, 561.4, 135.2),
    "cityscapes-bise18": (1024, 2048, 183.3, 45.2),
}


@pytest.mark.parametrize("arch", sorted(PUBLISHED))
def test_paper_convention_reproduces_the_published_counts_within_1_percent(arch: str) -> None:
    height, width, hr, lr = PUBLISHED[arch]
    costs = paper_costs(arch, height, width, 0.5)
    assert costs["hr"].gmacs == pytest.approx(hr, rel=0.01)
    assert costs["lr"].gmacs == pytest.approx(lr, rel=0.01)
    assert costs["lr"].input_hw == (height // 2, width // 2)


@pytest.mark.parametrize("arch", sorted(PUBLISHED))
def test_the_architecture_records_carry_the_published_counts(arch: str) -> None:
    height, width, hr, lr = PUBLISHED[arch]
    config = arch_config(arch)
    assert config.data.frame_hw == (height, width)
    assert (config.paper.hr_gmacs, config.paper.lr_gmacs, config.paper.scale) == (hr, lr, 0.5)


@pytest.mark.parametrize(("arch", "branch"), [("camvid-psp18", "hr"), ("camvid-psp18", "lr"), ("cityscapes-psp18", "lr")])
def test_arseg_count_matches_the_paper_where_thop_adds_nothing_structural(arch: str, branch: str) -> None:
    """Where the paper's thop run had no aux head and no aliased module to inflate it, conv + linear
    alone is within 1% of the published figure (the rest is thop's BN/PReLU charges)."""
    height, width, hr, lr = PUBLISHED[arch]
    cost = getattr(branch_costs(arch, height, width, 0.5), branch)
    assert cost.gmacs == pytest.approx(hr if branch == "hr" else lr, rel=0.01)


def test_bisenet_paper_count_is_inflated_by_the_aliased_head() -> None:
    """thop counts `feat_conv_out` (= `conv_out.conv`, a 3x3 256->256 conv at OS 8) 4 times; the
    network runs it once. That, the aux heads and thop's BN/upsample charges are the whole gap."""
    costs = branch_costs("camvid-bise18", 720, 960, 0.5)
    head = 256 * 256 * 9 * 90 * 120 + 256 * 12 * 90 * 120  # feat_conv_out's conv and final_conv, both aliased
    aux = 128 * 64 * 9 * (90 * 120 + 45 * 60) + 64 * 12 * (90 * 120 + 45 * 60)
    paper = paper_costs("camvid-bise18", 720, 960, 0.5)["hr"].macs
    explained = costs.hr.macs + 3 * head + aux
    assert 0 < paper - explained < 0.01 * paper  # the rest: BN (4/element) and resizing (11/element)


# --- thop's rules ----------------------------------------------------------------------------------


class _Aliased(nn.Module):
    """conv -> BN -> PReLU -> adaptive average pool -> linear, the conv also registered as `again`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=True)
        self.again = self.conv
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.PReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.act(self.bn(self.conv(x))))
        y = nn.functional.interpolate(y, scale_factor=2.0, mode="bilinear")
        return self.fc(nn.functional.adaptive_avg_pool2d(y, 2).flatten(1))


def test_thop_convention_rules_on_a_hand_counted_module() -> None:
    net = _Aliased().eval()
    x = torch.zeros(1, 3, 6, 8)
    conv = 4 * 6 * 8 * 3 * 9  # output elements x input channels x kernel; bias not counted
    bn = 4 * (4 * 6 * 8)  # 2 per element, doubled for the affine part
    prelu = 4 * 6 * 8
    pool = (3 * 4 + 1) * (4 * 2 * 2)  # (in/out area + 1) per output element
    fc = 16 * 5
    expected = 2**2 * conv + bn + prelu + pool + fc  # two names: counted 2^2 times
    assert thop_convention_macs(net, lambda: net(x), count_resizing=False) == expected
    resized = 11 * (4 * 4 * 4)  # bilinear: 11 per output element
    assert thop_convention_macs(net, lambda: net(x), count_resizing=True) == expected + resized
    assert all(not m._forward_hooks for m in net.modules())  # hooks removed


# --- arseg's counter -------------------------------------------------------------------------------


def test_counter_counts_conv_and_linear_exactly_and_nothing_else() -> None:
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, groups=1)
    x = torch.zeros(1, 3, 9, 13)
    assert count_macs(lambda: conv(x)) == 8 * 5 * 7 * 3 * 9  # output 5x7
    dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
    assert count_macs(lambda: dw(torch.zeros(2, 6, 4, 5))) == 2 * 6 * 4 * 5 * 9
    fc = nn.Linear(10, 7)
    assert count_macs(lambda: fc(torch.zeros(3, 10))) == 3 * 10 * 7
    q, k = torch.zeros(1, 5, 4), torch.zeros(1, 4, 6)
    assert count_macs(lambda: torch.bmm(q, k)) == 0  # batched products (attention code) are not counted
    assert count_macs(lambda: nn.BatchNorm2d(3).eval()(x).relu()) == 0


def test_creff_conv_count_is_three_depthwise_3x3() -> None:
    assert creff_conv_macs(64, 720, 960) == 3 * 9 * 64 * 720 * 960


def test_creff_conv_count_matches_the_real_module() -> None:
    creff_module = pytest.importorskip("arseg_cli.model.creff", reason="CReFF not landed yet")
    CReFF = creff_module.CReFF

    with torch.device("meta"):
        creff = CReFF(16)
    x = torch.empty(1, 16, 10, 12, device="meta")
    convs = [creff.lr_query_conv, creff.hr_key_conv, creff.hr_value_conv]
    assert sum(count_macs(lambda c=c: c(x)) for c in convs) == creff_conv_macs(16, 10, 12)


def test_creff_total_at_camvid_psp18_size_is_about_5_5_gmacs() -> None:
    costs = branch_costs("camvid-psp18", 720, 960, 0.5)
    assert costs.feature == (64, 720, 960)
    assert costs.creff_attention.macs == 2 * 49 * 64 * 720 * 960
    assert costs.creff.gmacs == pytest.approx(5.5, abs=0.1)


# --- CReFF's attention: analytic count against a naive, explicitly counted implementation ------------


def _naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, skip_outside: bool) -> tuple[torch.Tensor, int]:
    """(output (C, H, W), multiply-adds performed) of CReFF's local attention, one scalar at a time.

    Out-of-image neighbours have logit 0 and value 0; with skip_outside they are not computed (their
    logit still enters the softmax), otherwise they are multiplied as zeros like a padded implementation.
    """
    channels, height, width = q.shape
    radius = window // 2
    out = torch.zeros_like(q)
    macs = 0
    for y in range(height):
        for x in range(width):
            logits, values = [], []
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    yy, xx = y + dy, x + dx
                    inside = 0 <= yy < height and 0 <= xx < width
                    key = k[:, yy, xx] if inside else torch.zeros(channels, dtype=q.dtype)
                    logit = torch.zeros((), dtype=q.dtype)
                    if inside or not skip_outside:
                        for c in range(channels):
                            logit = logit + q[c, y, x] * key[c]
                            macs += 1
                    logits.append(logit)
                    values.append((k.new_zeros(channels) if not inside else v[:, yy, xx], inside))
            weights = torch.softmax(torch.stack(logits), dim=0)
            for weight, (value, inside) in zip(weights, values):
                if inside or not skip_outside:
                    for c in range(channels):
                        out[c, y, x] += weight * value[c]
                        macs += 1
    return out, macs


def _vectorised_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """The same attention with zero padding (to check the naive loop computes what CReFF computes)."""
    channels, height, width = q.shape
    pad = window // 2
    keys = nn.functional.unfold(k[None], window, padding=pad).view(channels, window * window, height, width)
    values = nn.functional.unfold(v[None], window, padding=pad).view(channels, window * window, height, width)
    weights = torch.softmax((q[:, None] * keys).sum(0), dim=0)
    return (weights[None] * values).sum(1)


@pytest.mark.parametrize(("channels", "height", "width", "window"), [(2, 4, 5, 3), (3, 5, 9, 7), (1, 2, 3, 7)])
def test_analytic_attention_count_equals_the_naive_loops_multiply_adds(channels: int, height: int, width: int, window: int) -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(channels, height, width, generator=gen, dtype=torch.float64) for _ in range(3))
    reference = _vectorised_attention(q, k, v, window)
    for skip_outside in (False, True):
        out, macs = _naive_attention(q, k, v, window, skip_outside)
        torch.testing.assert_close(out, reference, rtol=0, atol=1e-12)
        assert macs == creff_attention_macs(channels, height, width, window=window, count_outside=not skip_outside)
    assert creff_attention_macs(channels, height, width, window=window) == 2 * window**2 * channels * height * width


# --- per-frame arithmetic ----------------------------------------------------------------------------


def test_costs_add_up_and_the_ar_average_weights_one_keyframe_per_interval() -> None:
    costs = branch_costs("cityscapes-bise18", 256, 512, 0.5)
    channels, hf, wf = costs.feature
    assert (channels, hf, wf) == (256, 32, 64)
    assert costs.classifier.macs == 256 * 19 * hf * wf
    assert costs.lr.macs == costs.lr_features.macs + 256 * 19 * 16 * 32  # LR classifier at the LR feature size
    nonkey = costs.lr_features.macs + costs.creff_convs.macs + costs.creff_attention.macs + costs.classifier.macs
    assert costs.nonkeyframe.macs == nonkey
    assert costs.ar_average(1) == costs.hr.macs
    assert costs.ar_average(12) == pytest.approx((costs.hr.macs + 11 * nonkey) / 12)
    assert costs.hr.flops == 2 * costs.hr.macs
    record = costs.to_json(keyframe_interval=12)
    assert record["parts"]["nonkeyframe"]["macs"] == nonkey and record["ar_average_macs"] == costs.ar_average(12)


def test_lr_size_truncates_like_the_official_evaluation() -> None:
    assert lr_size(720, 960, 0.3) == (216, 288)
    assert lr_size(721, 961, 0.5) == (360, 480)
    with pytest.raises(ValueError):
        lr_size(720, 960, 0.0)


def test_ar_average_rejects_an_interval_below_one() -> None:
    assert ar_average_macs(120, 20, 6) == pytest.approx((120 + 5 * 20) / 6)
    with pytest.raises(ValueError):
        ar_average_macs(1, 1, 0)


def test_counting_allocates_no_real_tensors() -> None:
    net = flops._meta_net("camvid-psp18")
    assert all(p.device.type == "meta" for p in net.parameters())


def test_the_fusion_gate_costs_its_two_convolutions_per_feature_pixel() -> None:
    plain = branch_costs("camvid-bise18", 360, 480, 0.5)
    gated = branch_costs("camvid-bise18", 360, 480, 0.5, fusion_gate=True)
    channels, hf, wf = gated.feature
    per_pixel = (3 * channels) * 32 + 32 * 3 * 3 * 3  # 1x1 over the three terms to 32, then 3x3 to the three weights
    assert gated.fusion_gate is not None and gated.fusion_gate.macs == per_pixel * hf * wf
    assert gated.nonkeyframe.macs == plain.nonkeyframe.macs + gated.fusion_gate.macs
    assert plain.fusion_gate is None and "fusion_gate" not in plain.parts() and gated.hr == plain.hr
