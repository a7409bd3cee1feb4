"""The fusion gate (arseg's extension): a new gate changes nothing, a trained one weighs CReFF's two terms
per pixel, and a gated model computes the same through the inference kernels as through autograd."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from arseg_cli.errors import OptionsError
from arseg_cli.model import build_arseg
from arseg_cli.model.fusion_gate import FusionGate
from tests._train_fixtures import camvid_meta


def test_a_new_gate_passes_the_fusion_through_and_a_set_one_weighs_the_three_terms() -> None:
    torch.manual_seed(0)
    gate = FusionGate(8)
    up, fused, warped = torch.randn(2, 8, 5, 6), torch.randn(2, 8, 5, 6), torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        assert torch.allclose(gate(up, fused, warped), fused, rtol=0, atol=1e-6)  # a = b = 1, c = 0
        # 2 sigmoid(bias): a = 0.5, b = 1.5, c = 1.5 - 1 = 0.5
        gate.weigh.bias.copy_(torch.tensor([math.log(1 / 3), math.log(3), math.log(3)]))
        weighed = gate(up, fused, warped)
    assert torch.allclose(weighed, 0.5 * up + 1.5 * (fused - up) + 0.5 * warped, rtol=0, atol=1e-5)


def test_a_gated_model_computes_the_same_in_inference_as_with_autograd() -> None:
    torch.manual_seed(0)
    model = build_arseg(dataclasses.replace(camvid_meta(scale=0.5), fusion_gate=True)).eval()
    with torch.no_grad():
        for parameter in model.lr.fusion_gate.parameters():
            parameter.normal_(0.0, 0.05)
    x = torch.randn(1, 3, 32, 48)
    feat = torch.randn(1, model.lr.feature_channels, 8, 12)
    flow = 2 * torch.randn(1, 2, 64, 96)
    with torch.inference_mode():
        fast = model.nonkeyframe(x, feat, flow)  # the folded copy and CReFF's inference kernel
        plain = model.nonkeyframe(x, feat, flow * 0)
    with torch.enable_grad():
        graphed = model.lr.to_image_size(model.lr.classify(model.lr.fuse(model.lr.features(x), feat, flow)), (64, 96))
    assert torch.allclose(fast, graphed, rtol=0, atol=1e-3)
    assert not torch.allclose(fast, plain, atol=1e-3)  # the flow reaches the output through the gate


def test_a_gate_needs_creff() -> None:
    with pytest.raises(OptionsError, match="needs has_creff"):
        build_arseg(dataclasses.replace(camvid_meta(scale=0.5), has_creff=False, fusion_gate=True))
