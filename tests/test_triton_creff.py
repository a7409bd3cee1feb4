"""The Triton CReFF kernels (`_triton_creff.py`) against CReFF's plain definition.

Without a GPU they run on CPU tensors through Triton's interpreter (TRITON_INTERPRET=1), in a process of
their own (tests/_triton_checks.py, which says why): the kernels' logic (indexing, masks, the online
softmax, the warp's coordinates) is what is checked; the interpreter computes in NumPy with the dtypes
the kernels ask for, float64 included. The CUDA tests at the end (skipped without a GPU) check that
inference on CUDA takes these kernels, that they compile there and equal the plain path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from arseg_cli.model import creff as creff_module
from arseg_cli.model.creff import CReFF

pytest.importorskip("triton", reason="Triton is not installed (the `triton` extra: Linux x86-64 only)")

CHECKS = Path(__file__).with_name("_triton_checks.py")


@pytest.fixture(scope="module")
def interpreted() -> dict:
    """Every check of tests/_triton_checks.py, run once in one interpreter process."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(CHECKS)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("warp", ["official", "exact"])
def test_kernels_equal_the_plain_definition_in_float64(interpreted: dict, warp: str) -> None:
    result = interpreted["creff_float64"][warp]
    assert result["dtype"] == "torch.float64" and result["shape_ok"] and result["channels_last"]
    assert result["max_diff"] <= 1e-10, result


def test_attention_with_several_programs_per_row_and_windows_3_and_7(interpreted: dict) -> None:
    for window, max_diff in interpreted["attention_blocks"].items():
        assert max_diff <= 1e-10, (window, max_diff)


def test_warp_equals_grid_sample_outside_on_the_edges_and_for_a_shared_feature(interpreted: dict) -> None:
    for warp, max_diff in interpreted["warp_outside"].items():
        assert max_diff <= 1e-12, (warp, max_diff)


def test_float32_kernels_agree_with_the_plain_path(interpreted: dict) -> None:
    result = interpreted["creff_float32"]
    assert result["dtype"] == "torch.float32"
    # Both compute in float32, in different orders (online softmax, other sums): a few float32 ulps
    # (1.2e-7 relative) of outputs up to `max_abs` (~5) each, through a dozen operations.
    assert result["max_diff"] <= 1e-5 * max(1.0, result["max_abs"]), result


def test_float16_kernels_are_no_less_accurate_than_the_plain_path(interpreted: dict) -> None:
    result = interpreted["creff_float16"]
    assert result["dtypes"] == ["torch.float16", "torch.float16"]
    # The kernels read float16 and compute in float32; the plain path rounds products, logits and
    # softmax weights to float16. Their error against the float64 model may not exceed the plain path's.
    assert result["fast_error"] <= result["plain_error"], result


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _cuda_inputs(dtype: torch.dtype, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lr = torch.randn(2, channels, 13, 17, generator=gen, dtype=dtype)
    key = torch.randn(2, channels, 26, 33, generator=gen, dtype=dtype)
    flow = 4 * torch.randn(2, 2, 52, 66, generator=gen, dtype=dtype)
    return lr.cuda(), key.cuda(), flow.cuda()


def _plain(creff: CReFF, lr: torch.Tensor, key: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        return creff(lr, key, flow.clone().requires_grad_()).detach()


@cuda
@pytest.mark.parametrize("warp", ["official", "exact"])
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_cuda_inference_takes_the_triton_kernels(
    monkeypatch: pytest.MonkeyPatch, warp: str, dtype: torch.dtype, tolerance: float
) -> None:
    from arseg_cli.model import _triton_creff

    calls = []
    original = _triton_creff.window_attention
    monkeypatch.setattr(_triton_creff, "window_attention", lambda *a, **k: calls.append(1) or original(*a, **k))
    torch.manual_seed(8)
    creff = CReFF(64, warp=warp).eval().to("cuda", dtype)  # type: ignore[arg-type]
    lr, key, flow = _cuda_inputs(dtype, 64, seed=9)
    with torch.inference_mode():
        fast = creff(lr, key, flow)
    assert calls, "CUDA inference did not take the Triton kernel"
    torch.testing.assert_close(fast, _plain(creff, lr, key, flow), rtol=tolerance, atol=tolerance)


@cuda
def test_cuda_float16_kernels_are_no_less_accurate_than_the_plain_path() -> None:
    torch.manual_seed(4)
    creff = CReFF(64).eval().cuda()
    lr, key, flow = _cuda_inputs(torch.float32, 64, seed=11)
    with torch.inference_mode():
        exact = creff.double()(lr.double(), key.double(), flow.double())
    creff.half()
    with torch.inference_mode():
        fast = creff(lr.half(), key.half(), flow.half())
    plain = _plain(creff, lr.half(), key.half(), flow.half())
    fast_error, plain_error = (float((t.double() - exact).abs().mean()) for t in (fast, plain))
    assert fast_error <= plain_error, (fast_error, plain_error)


@cuda
def test_cuda_takes_the_tiled_kernel_when_triton_is_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from arseg_cli.model import _triton_creff

    monkeypatch.setattr(_triton_creff, "triton_creff", lambda *a, **k: pytest.fail("Triton kernel called"))
    creff_module.use_triton_kernel(False)
    try:
        creff = CReFF(16).eval().cuda()
        lr, key, flow = _cuda_inputs(torch.float32, 16, seed=10)
        with torch.inference_mode():
            fast = creff(lr, key, flow)
        torch.testing.assert_close(fast, _plain(creff, lr, key, flow), rtol=1e-5, atol=1e-5)
    finally:
        creff_module.use_triton_kernel(True)
