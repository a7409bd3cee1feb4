"""CReFF's training attention: the definition's values and gradients (float64), what CReFF trains with,
and the plain ops while a graph is recorded (tracing, ONNX export)."""

from __future__ import annotations

import pytest
import torch

from arseg_cli.model import creff as creff_module
from arseg_cli.model._attention_autograd import local_attention_for_training
from arseg_cli.model.creff import CReFF, local_attention


@pytest.mark.parametrize(("window", "height", "width"), [(3, 5, 6), (7, 5, 6), (7, 9, 4)])
def test_values_and_gradients_equal_the_definitions_in_float64(window: int, height: int, width: int) -> None:
    torch.manual_seed(window + height)
    q, k, v = (torch.randn(2, 3, height, width, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda a, b, c: local_attention_for_training(a, b, c, window), (q, k, v))
    grad = torch.randn(2, 3, height, width, dtype=torch.float64)
    ours = local_attention_for_training(q, k, v, window)
    plain = local_attention(q, k, v, window)
    torch.testing.assert_close(ours, plain, rtol=0, atol=1e-12)
    for a, b in zip(torch.autograd.grad(ours, (q, k, v), grad), torch.autograd.grad(plain, (q, k, v), grad)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def _inputs(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(2, 8, 4, 6, dtype=dtype), torch.randn(2, 8, 8, 12, dtype=dtype), torch.randn(2, 2, 64, 96, dtype=dtype) * 3


def test_creff_trains_through_it_and_its_gradients_are_the_plain_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    module = CReFF(8, warp="exact").double()
    lr_feat, key_feat, flow = _inputs()
    calls: list[int] = []

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int = 7) -> torch.Tensor:
        calls.append(window)
        return local_attention_for_training(q, k, v, window)

    monkeypatch.setattr(creff_module, "local_attention_for_training", spy)
    out = module(lr_feat, key_feat, flow)
    out.square().sum().backward()
    assert calls == [7]
    ours = {n: p.grad.clone() for n, p in module.named_parameters()}
    module.zero_grad()
    monkeypatch.setattr(creff_module, "local_attention_for_training", local_attention)  # the definition
    plain = module(lr_feat, key_feat, flow)
    plain.square().sum().backward()
    torch.testing.assert_close(out, plain, rtol=0, atol=1e-12)
    for name, parameter in module.named_parameters():
        torch.testing.assert_close(ours[name], parameter.grad, rtol=0, atol=1e-10, msg=name)


def test_a_traced_creff_records_the_plain_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> torch.Tensor:
        raise AssertionError("the training attention ran while a graph was recorded")

    monkeypatch.setattr(creff_module, "local_attention_for_training", refuse)
    module = CReFF(8, warp="exact")
    lr_feat, key_feat, flow = _inputs(torch.float32)
    traced = torch.jit.trace(module, (lr_feat, key_feat, flow), check_trace=False)
    with torch.no_grad():
        torch.testing.assert_close(traced(lr_feat, key_feat, flow), module(lr_feat, key_feat, flow), rtol=0, atol=1e-4)
