"""HR and LR forward latency of the AR-Seg networks on this CPU; prints one JSON object on stdout.

For each architecture, two ways of running the same network with the same (random) weights:
- `eager`: the "official-like" baseline, the network as written (BatchNorm separate, NCHW tensors),
  eval mode under `torch.no_grad()`, scores resized to the image as the official evaluation does;
- `arseg`: arseg's inference path, `ARSeg.optimize_for_inference()` then `keyframe` / `lowres` under
  `torch.inference_mode()` (BatchNorm folded into the convolutions, channels-last tensors).
HR: the network on the (H, W) image; LR: on the (int(H*s), int(W*s)) image, scores resized to (H, W).
Runs alternate between the two ways (so machine load hits both alike); medians of `--repeats` runs
after one warm-up each, and minima too (on a machine shared with other work, the minimum is the run least
disturbed by it). MACs (conv + linear, arseg_cli.model.flops) are given beside every latency.

Usage: `python benchmarks/bench_model.py [--archs camvid-psp18 camvid-bise18] [--height 720 --width 960]
[--scale 0.5] [--repeats 5]`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from arseg_cli.bench.timing import cpu_name
from arseg_cli.model import ARSeg, arch_config
from arseg_cli.model._segnet import SegNet
from arseg_cli.model.flops import branch_costs


def _randomise(model: nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics, so that folding them changes the arithmetic."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
            module.running_var.copy_(0.5 + torch.rand(n, generator=gen))


def _model(arch: str, scale: float) -> ARSeg:
    meta = arch_config(arch).model_meta(scale=scale, has_creff=False)
    model = ARSeg(meta)
    _randomise(model, seed=0)
    return model.eval()


def _eager(net: SegNet, x: Tensor, size: tuple[int, int]) -> Tensor:
    with torch.no_grad():
        return net.to_image_size(net.classify(net.features(x)), size)


def _timed(run: Callable[[], Tensor]) -> tuple[float, Tensor]:
    """(milliseconds, output) of one call of `run`."""
    start = time.perf_counter()
    out = run()
    return 1000.0 * (time.perf_counter() - start), out


def bench_arch(arch: str, height: int, width: int, scale: float, repeats: int) -> dict[str, object]:
    torch.manual_seed(0)
    model = _model(arch, scale)
    assert model.hr is not None and model.lr is not None
    x_hr = torch.randn(1, 3, height, width)
    x_lr = model.downscale(x_hr)
    size = (height, width)
    costs = branch_costs(arch, height, width, scale)
    model.optimize_for_inference()

    def fast_hr() -> Tensor:
        with torch.inference_mode():
            return model.keyframe(x_hr)[0]

    def fast_lr() -> Tensor:
        with torch.inference_mode():
            return model.lowres(x_lr, size)

    cases = {
        "hr": (costs.hr, lambda: _eager(model.hr, x_hr, size), fast_hr),  # type: ignore[arg-type]
        "lr": (costs.lr, lambda: _eager(model.lr, x_lr, size), fast_lr),  # type: ignore[arg-type]
    }
    result: dict[str, object] = {}
    for name, (cost, eager, fast) in cases.items():
        eager(), fast()  # warm-up: allocator, oneDNN primitives, the folded copies
        eager_times: list[float] = []
        fast_times: list[float] = []
        eager_out = fast_out = torch.empty(0)
        for _ in range(repeats):  # alternate, so that load from other processes hits both alike
            ms, eager_out = _timed(eager)
            eager_times.append(ms)
            ms, fast_out = _timed(fast)
            fast_times.append(ms)
        eager_ms, fast_ms = statistics.median(eager_times), statistics.median(fast_times)
        result[name] = {
            "input_hw": list(cost.input_hw),
            "gmacs": round(cost.gmacs, 2),
            "eager_ms": round(eager_ms, 1),
            "arseg_ms": round(fast_ms, 1),
            "speedup": round(eager_ms / fast_ms, 3),
            "eager_min_ms": round(min(eager_times), 1),
            "arseg_min_ms": round(min(fast_times), 1),
            "speedup_of_minima": round(min(eager_times) / min(fast_times), 3),
            "eager_runs_ms": [round(t, 1) for t in eager_times],
            "arseg_runs_ms": [round(t, 1) for t in fast_times],
            "max_abs_diff": float((eager_out - fast_out).abs().max()),
        }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["camvid-psp18", "camvid-bise18"])
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    report = {
        "benchmark": "model forward latency, batch 1, float32, CPU",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "image_hw": [args.height, args.width],
        "scale": args.scale,
        "repeats": args.repeats,
        "baseline": "eager: same net, BN unfolded, NCHW, torch.no_grad()",
        "arseg": "ARSeg.optimize_for_inference(): BN folded, channels-last, torch.inference_mode()",
        "macs": "conv + linear MACs (arseg_cli.model.flops.branch_costs); FLOPs = 2 x MACs",
        "archs": {arch: bench_arch(arch, args.height, args.width, args.scale, args.repeats) for arch in args.archs},
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
