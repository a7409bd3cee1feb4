"""The Triton CReFF kernels run by Triton's interpreter on CPU tensors, against CReFF's plain definition.

Run as a script by tests/test_triton_creff.py, in a process of its own: TRITON_INTERPRET=1 has to be set
before Triton is first imported (its own library functions are bound to the interpreter then), which a
test process that may have imported Triton already cannot guarantee. Prints one JSON object: per check,
the figures the tests assert on.
"""

from __future__ import annotations

import json
import os
import sys

import torch

from arseg_cli.model import _triton_creff as kernels
from arseg_cli.model.creff import CReFF, local_attention, resize_flow, warp_feature


def _inputs(dtype: torch.dtype, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LR feature, keyframe feature and image flow of a few pixels, at sizes with odd, unequal sides."""
    gen = torch.Generator().manual_seed(seed)
    lr = torch.randn(2, channels, 4, 5, generator=gen, dtype=dtype)
    key = torch.randn(2, channels, 7, 9, generator=gen, dtype=dtype)
    flow = 3 * torch.randn(2, 2, 14, 18, generator=gen, dtype=dtype)
    return lr, key, flow


def _triton(creff: CReFF, lr: torch.Tensor, key: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """What CReFF.forward runs on CUDA: the flow in feature pixels, float32 at least, then the kernels."""
    flow_feat = resize_flow(flow.to(torch.promote_types(key.dtype, torch.float32)), (key.shape[-2], key.shape[-1]))
    convs = (creff.lr_query_conv, creff.hr_key_conv, creff.hr_value_conv)
    with torch.inference_mode():
        return kernels.triton_creff(lr, key, flow_feat, convs, warp=creff.warp, window=creff.window)


def _plain(creff: CReFF, lr: torch.Tensor, key: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The plain definition: autograd on an input sends CReFF down `warp_feature` + `local_attention`."""
    with torch.enable_grad():
        return creff(lr, key, flow.clone().requires_grad_()).detach()


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def creff_float64() -> dict:
    """Both warps; 6 channels (padded to 8 inside the kernels, masked)."""
    result = {}
    for warp in ("official", "exact"):
        torch.manual_seed(0)
        creff = CReFF(6, warp=warp).eval().double()  # type: ignore[arg-type]
        lr, key, flow = _inputs(torch.float64, 6, seed=1)
        fast = _triton(creff, lr, key, flow)
        result[warp] = {
            "max_diff": _max_diff(fast, _plain(creff, lr, key, flow)),
            "dtype": str(fast.dtype),
            "shape_ok": fast.shape == key.shape,
            "channels_last": fast.is_contiguous(memory_format=torch.channels_last),
        }
    return result


def attention_blocks() -> dict:
    """block 4 over 9 columns (three programs per row, the last one masked); windows 3 and 7."""
    gen = torch.Generator().manual_seed(2)
    q, k, v, up = (torch.randn(1, 5, 6, 9, generator=gen, dtype=torch.float64) for _ in range(4))
    return {
        str(window): _max_diff(kernels.window_attention(q, k, v, up, window, block=4), up + local_attention(q, k, v, window))
        for window in (3, 7)
    }


def warp_outside() -> dict:
    """Flows that carry samples far outside the feature (zero padding) and exactly onto its edges; and
    one feature shared by a batch of flows."""
    gen = torch.Generator().manual_seed(3)
    feat = torch.randn(1, 3, 5, 7, generator=gen, dtype=torch.float64)
    flow = 6 * torch.randn(1, 2, 5, 7, generator=gen, dtype=torch.float64)
    flow[0, 0, 0] = torch.tensor([-1.0, 0.0, 0.5, 4.0, 6.0, 7.0, -9.0], dtype=torch.float64)
    result = {warp: _max_diff(kernels.warp_rows(feat, flow, warp), warp_feature(feat, flow, warp)) for warp in ("official", "exact")}  # type: ignore[arg-type]
    # one keyframe feature for a batch of three flows: expanded (stride 0), read in place
    flows = torch.cat([flow, -flow, 2 * flow])
    shared = kernels.warp_rows(feat.expand(3, -1, -1, -1), flows, "official")
    result["shared_feature"] = _max_diff(shared, warp_feature(feat.expand(3, -1, -1, -1).contiguous(), flows, "official"))
    return result


def creff_float32() -> dict:
    torch.manual_seed(4)
    creff = CReFF(8).eval()
    lr, key, flow = _inputs(torch.float32, 8, seed=5)
    fast, plain = _triton(creff, lr, key, flow), _plain(creff, lr, key, flow)
    return {"max_diff": _max_diff(fast, plain), "max_abs": float(plain.abs().max()), "dtype": str(fast.dtype)}


def creff_float16() -> dict:
    """Mean |error| against the float64 model, of the kernels and of the plain path, both in float16."""
    torch.manual_seed(6)
    creff = CReFF(32).eval()
    gen = torch.Generator().manual_seed(7)
    lr, key = torch.randn(1, 32, 4, 5, generator=gen), torch.randn(1, 32, 8, 10, generator=gen)
    flow = 5 * torch.randn(1, 2, 16, 20, generator=gen)
    with torch.inference_mode():
        exact = creff.double()(lr.double(), key.double(), flow.double())
    creff.half()
    fast = _triton(creff, lr.half(), key.half(), flow.half())
    plain = _plain(creff, lr.half(), key.half(), flow.half())
    return {
        "fast_error": float((fast.double() - exact).abs().mean()),
        "plain_error": float((plain.double() - exact).abs().mean()),
        "dtypes": [str(fast.dtype), str(plain.dtype)],
    }


CHECKS = {f.__name__: f for f in (creff_float64, attention_blocks, warp_outside, creff_float32, creff_float16)}

if __name__ == "__main__":
    if os.environ.get("TRITON_INTERPRET") != "1" or not kernels.available():
        raise SystemExit("run with TRITON_INTERPRET=1 and Triton installed")
    torch.set_num_threads(1)
    names = sys.argv[1:] or list(CHECKS)
    print(json.dumps({name: CHECKS[name]() for name in names}))
