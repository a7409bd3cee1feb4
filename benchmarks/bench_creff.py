"""CReFF forward on CPU: the tiled kernel against the plain 49-shift path; prints one JSON object on stdout.

1. camvid-psp18 size: C=64 fused at 720x960 (LR feature 360x480, flow 720x960). Both CReFF paths run in
   the same process, interleaved, `--repeats` times each (inference mode); medians are reported with
   their ratio. The plain path is `warp_feature` + `local_attention` (49 shifted products, logits kept).
   Features are channels-last, as ARSeg's inference path makes them; `fast_nchw_inputs_s` is the
   tiled kernel on contiguous (NCHW) features, which it transposes first.
2. Peak extra memory of each path at that size: the rise of the peak RSS of a fresh child process over
   its RSS once the inputs exist (the 177 MB output is included).
3. bise18 size: C=256 fused at 90x120 (LR feature 46x60, flow 720x960) against the LR network's own
   forward at 360x480 (camvid-bise18, BatchNorm folded, channels-last, inference mode): ratio of medians.
4. Unless --no-compile: the tiled kernel with its attention compiled (a CReFF's `compiled_attention`, the CLI's
   `--compile`), interleaved with the others at both sizes (`*_compiled`); the one-off compile falls in
   the warm-up call. Needs a C++ compiler; without one the figures are absent and `compiled` says why.

The CPU is shared: medians of interleaved runs; ratios within one run are the figures to trust.
The tiled kernel runs its tiles in one Python thread per torch thread (each single-threaded); the LR
network's forward uses intra-op threads, which on 2 cores that other jobs also use wait for a descheduled
thread in every parallel region: its time (and so the bise18 ratio) swings with the load average, which
is reported at start and end.
Usage: `python benchmarks/bench_creff.py [--repeats 5] [--threads 1] [--no-compile]`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable

import torch

from arseg_cli.bench.timing import interleaved
from arseg_cli.model._compiled_attention import compile_failed
from arseg_cli.model.creff import CReFF

PSP = {"channels": 64, "feature": (720, 960), "lr_feature": (360, 480), "image": (720, 960)}
BISE = {"channels": 256, "feature": (90, 120), "lr_feature": (46, 60), "image": (720, 960), "lr_input": (360, 480)}


Inputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def make_inputs(spec: dict, seed: int = 0, channels_last: bool = True) -> Inputs:
    """(lr_feat, key_feat, flow_px) float32 of the sizes in `spec`; flow of a few pixels, as in video.
    Features are channels-last by default: what ARSeg's inference path (folded, channels-last) produces."""
    gen = torch.Generator().manual_seed(seed)
    c = spec["channels"]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    lr = torch.randn(1, c, *spec["lr_feature"], generator=gen).contiguous(memory_format=fmt)
    key = torch.randn(1, c, *spec["feature"], generator=gen).contiguous(memory_format=fmt)
    flow = 3.0 * torch.randn(1, 2, *spec["image"], generator=gen)
    return lr, key, flow


def plain(creff: CReFF) -> Callable[..., torch.Tensor]:
    """The module's plain path (what training and export run), forced."""

    def run(*args: torch.Tensor) -> torch.Tensor:
        creff._takes_fast_path = lambda *_: False  # type: ignore[method-assign]
        try:
            return creff(*args)
        finally:
            del creff._takes_fast_path

    return run


def compiled_copy(creff: CReFF) -> CReFF:
    """The same CReFF (shared weights) running its attention compiled."""
    twin = copy.copy(creff)
    twin.compiled_attention = True
    return twin


def compiled_status() -> str:
    """Whether the compiled runs really ran compiled (a failed compile falls back, with a warning)."""
    return "compile failed: the *_compiled figures are the uncompiled kernel" if compile_failed() else "compiled"


def interleaved_medians(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall seconds of each call, the calls taking turns (one warm-up each)."""
    return {name: stats.median_s for name, stats in interleaved(calls, repeats=repeats, warmup=1).items()}


def memory_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, MB. (Not getrusage's ru_maxrss:
    it survives exec, so a child would report its parent's peak.)"""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def peak_extra_mb(path: str) -> float:
    """Child process: inputs at the psp size, one forward of `path`; peak RSS minus RSS before it.
    'compiled' compiles in a first call on tiny inputs, then resets the peak (Linux clear_refs)."""
    lr, key, flow = make_inputs(PSP)
    creff = CReFF(PSP["channels"]).eval()
    call = plain(creff) if path == "plain" else creff
    with torch.inference_mode():
        if path == "compiled":
            call = compiled_copy(creff)
            call(lr[..., :4, :4], key[..., :8, :8], flow[..., :8, :8])
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")  # VmHWM := VmRSS
        before = memory_mb("VmRSS")
        call(lr, key, flow)
    return memory_mb("VmHWM") - before


def child_peak_extra_mb(path: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--peak-extra", path], capture_output=True, text=True, check=True)
    return float(out.stdout)


def bise_ratio(repeats: int, compile_too: bool) -> dict[str, object]:
    from arseg_cli.model import build
    from arseg_cli.model._fold import fold_batchnorms

    net = fold_batchnorms(build("camvid-bise18").eval(), channels_last=True)
    x_lr = torch.randn(1, 3, *BISE["lr_input"]).contiguous(memory_format=torch.channels_last)
    lr, key, flow = make_inputs(BISE)
    creff = CReFF(BISE["channels"]).eval()
    calls = {"lr_forward": lambda: net(x_lr), "creff": lambda: creff(lr, key, flow)}
    if compile_too:
        calls["creff_compiled"] = lambda: compiled_copy(creff)(lr, key, flow)
    with torch.inference_mode():
        med = interleaved_medians(calls, repeats)
    result = {
        "sizes": BISE,
        "lr_forward_s": round(med["lr_forward"], 4),
        "lr_forward": "camvid-bise18 net(x) at 360x480: BN folded, channels-last, inference mode",
        "creff_s": round(med["creff"], 4),
        "creff_over_lr_forward": round(med["creff"] / med["lr_forward"], 3),
    }
    if compile_too:
        result["creff_compiled_s"] = round(med["creff_compiled"], 4)
        result["creff_compiled_over_lr_forward"] = round(med["creff_compiled"] / med["lr_forward"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled-attention runs")
    parser.add_argument("--peak-extra", choices=["fast", "plain", "compiled"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peak_extra:
        print(peak_extra_mb(args.peak_extra))
        return

    load = os.getloadavg()[0]
    lr, key, flow = make_inputs(PSP)
    creff = CReFF(PSP["channels"]).eval()
    with torch.inference_mode():
        lr_nchw, key_nchw = lr.contiguous(), key.contiguous()
        calls = {
            "plain": lambda: plain(creff)(lr, key, flow),
            "fast": lambda: creff(lr, key, flow),
            "fast_nchw": lambda: creff(lr_nchw, key_nchw, flow),
        }
        if not args.no_compile:
            calls["fast_compiled"] = lambda: compiled_copy(creff)(lr, key, flow)
        med = interleaved_medians(calls, args.repeats)
        reference = plain(creff)(lr, key, flow)
        error = (reference - creff(lr, key, flow)).abs().max().item()
        compiled_error = None if args.no_compile else (reference - calls["fast_compiled"]()).abs().max().item()
    report = {
        "benchmark": "creff",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average_at_start": load,
        "repeats": args.repeats,
        "psp": {
            "sizes": PSP,
            "plain_49_shift_s": round(med["plain"], 4),
            "fast_s": round(med["fast"], 4),
            "fast_nchw_inputs_s": round(med["fast_nchw"], 4),
            "speedup": round(med["plain"] / med["fast"], 2),
            "max_abs_difference": error,
            **({} if args.no_compile else {"fast_compiled_s": round(med["fast_compiled"], 4), "compiled_max_abs_difference": compiled_error}),
            "output_max_abs": round(reference.abs().max().item(), 2),
            "peak_extra_mb": {path: round(child_peak_extra_mb(path)) for path in ("fast", "plain", *(() if args.no_compile else ("compiled",)))},
        },
        "bise18": bise_ratio(args.repeats, not args.no_compile),
        "compiled": "not measured (--no-compile)" if args.no_compile else compiled_status(),
        "load_average_at_end": os.getloadavg()[0],
        "note": "wall-clock medians of interleaved runs on a CPU shared with other jobs; float32",
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
