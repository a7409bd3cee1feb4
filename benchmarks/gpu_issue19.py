"""Issue 19's GPU figures in one run: prints progress on stderr, writes JSON under --out (default $OUT).

Run from the repository root on a CUDA machine with torch (and Triton, which CUDA builds of torch ship):
`bash benchmarks/gpu_issue19.sh` (tests first, then this, then the end-to-end runs), or this alone:
`python3 benchmarks/gpu_issue19.py --out DIR`. Needs no PyAV and no arseg install (PYTHONPATH=.).

Measured, random weights, 720x960, s = 0.5, L = 12, CUDA events around each call, calls interleaved,
medians of `--repeats` after `--warmup`:
1. `model`: per arch (camvid-bise18, camvid-psp18) and precision (float32, float16 = `--half`):
   - per frame (batch 1): HR `keyframe(x)`; non-keyframe `nonkeyframe(downscale(x), feat, flow)`;
     AR per frame = (HR + 11 non-keyframes) / 12; ratio = HR / AR per frame;
   - batched (one keyframe group): HR on 12 frames at once (per frame: / 12) against AR = HR on the
     keyframe + one non-keyframe call on 11 frames (the keyframe feature shared, stride 0), / 12;
   - each with CReFF's Triton kernels (`fused`) and with the tiled kernel (`unfused`, use_triton_kernel
     False), and the batched non-keyframe call replayed as a CUDA graph (`graph`).
2. `creff`: CReFF alone at each arch's shapes, batch 1 and 11, float32 and float16: Triton kernels,
   tiled kernel, plain definition (49 shifted products); psp18 batch 1 is the "<= 2 ms" target.
3. `grouped`: `GroupStep.labels` on one keyframe group of L synthetic frames (HR on the keyframe, the
   other 11 in LR + CReFF calls of 4, 4 and 3 frames), host side included (normalisation, frames and
   flows copied to the GPU, labels back), with CUDA graphs off and on (`cuda_graphs=True`,
   arseg_cli/graphed_step.py: the shipped path), against per-frame HR the same way; frames per second,
   label agreement of graphs on vs off, and whether the capture fell back. Also the non-keyframe call
   alone at the group batch (4) and at 1, eager and through `GraphedNonkey`.
4. `attention_launch`: the attention kernel alone at psp18's shape for a few (block, warps) settings.
TF32 stays at torch's defaults (as `arseg segment` runs). `--smoke` runs the same code on the CPU at a
tiny size, once (no graphs, no Triton): a check of the script itself where no GPU is lent. Usage:
`python3 benchmarks/gpu_issue19.py [--out DIR] [--repeats 15] [--warmup 3] [--parts creff,model,grouped,attention_launch] [--smoke]`.
The report ends with `targets`: the issue's GPU targets, each with the figure it was decided on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from arseg_cli.frame_step import FrameStep
from arseg_cli.model import arch_config, build_arseg
from arseg_cli.model import creff as creff_module
from arseg_cli.model.creff import local_attention, warp_feature

SCALE, L = 0.5, 12
ARCHS = ("camvid-bise18", "camvid-psp18")
SIZE = {"height": 720, "width": 960, "device": torch.device("cuda")}  # --smoke: 64 x 96 on the CPU


def machine() -> dict[str, Any]:
    """What the figures were taken on (arseg_cli.bench imports PyAV, which this script does without)."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(), "device": str(SIZE["device"])}
    if SIZE["device"].type == "cuda":
        info |= {"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda}
    return info


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def random_model(arch: str) -> Any:
    torch.manual_seed(0)
    return build_arseg(arch_config(arch).model_meta(scale=SCALE)).eval().to(SIZE["device"])


def cuda_times(calls: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, float]:
    """Median milliseconds of each call (CUDA events; the wall clock on the CPU), calls taking turns."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    on_cuda = SIZE["device"].type == "cuda"
    if on_cuda:
        torch.cuda.synchronize()
    runs: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            if not on_cuda:
                tick = time.perf_counter()
                call()
                runs[name].append(1000 * (time.perf_counter() - tick))
                continue
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            end.synchronize()
            runs[name].append(start.elapsed_time(end))
    return {name: round(statistics.median(times), 4) for name, times in runs.items()}


def as_graph(call: Callable[[], object]) -> Callable[[], object]:
    """`call` captured once as a CUDA graph (static inputs), replayed on each call."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            call()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call()
    return graph.replay


def frames(n: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    device, height, width = SIZE["device"], SIZE["height"], SIZE["width"]
    gen = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(n, 3, height, width, device=device, generator=gen).to(dtype)
    flow = (2.0 * torch.randn(n, 2, height, width, device=device, generator=gen)).to(dtype)
    return x, flow


def arch_steps(part: str) -> Iterator[tuple[str, FrameStep]]:
    """(name, FrameStep on a fresh random model) for each arch and precision (float16 on CUDA only)."""
    for arch in ARCHS:
        for half in (False, True) if SIZE["device"].type == "cuda" else (False,):
            name = f"{arch} {'float16' if half else 'float32'}"
            log(f"{part}: {name}")
            yield name, FrameStep(random_model(arch), SCALE, half=half)


def model_part(repeats: int, warmup: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, step in arch_steps("model"):
        dtype = step.dtype
        x1, flow1 = frames(1, dtype, 1)
        x12, _ = frames(L, dtype, 2)
        x11, flow11 = frames(L - 1, dtype, 3)
        results[name] = {}
        with torch.inference_mode():
            _, feat = step.key(x1)
            shared = feat.expand(L - 1, -1, -1, -1)
            for kernel in ("fused", "unfused"):
                creff_module.use_triton_kernel(kernel == "fused")
                calls: dict[str, Callable[[], object]] = {
                    "hr_1": lambda: step.key(x1),
                    "nonkey_1": lambda: step.nonkey(x1, feat, flow1),
                    "hr_12": lambda: step.key(x12),
                    "nonkey_11": lambda: step.nonkey(x11, shared, flow11),
                }
                try:
                    if SIZE["device"].type != "cuda":
                        raise RuntimeError("CUDA graphs need CUDA")
                    calls["nonkey_1_graph"] = as_graph(lambda: step.nonkey(x1, feat, flow1))
                    calls["nonkey_11_graph"] = as_graph(lambda: step.nonkey(x11, shared, flow11))
                    calls["hr_1_graph"] = as_graph(lambda: step.key(x1))
                    calls["hr_12_graph"] = as_graph(lambda: step.key(x12))
                except Exception as error:  # noqa: BLE001 - report, measure the rest
                    results[name][f"{kernel}_graph_error"] = repr(error)[:300]
                ms = cuda_times(calls, repeats, warmup)
                results[name][kernel] = ms | _ratios(ms)
                log(f"  {kernel}: {json.dumps(results[name][kernel])}")
        creff_module.use_triton_kernel(True)
        del step
        torch.cuda.empty_cache()
    return results


def _ratios(ms: dict[str, float]) -> dict[str, float]:
    """AR 0.5x (L = 12) per frame and its speed-up over HR: per frame, batched, and both as graphs."""
    out = {}
    for suffix in ("", "_graph"):
        if f"hr_1{suffix}" not in ms:
            continue
        hr, nonkey = ms[f"hr_1{suffix}"], ms[f"nonkey_1{suffix}"]
        ar = (hr + (L - 1) * nonkey) / L
        out[f"per_frame{suffix}_hr_ms"], out[f"per_frame{suffix}_ar_ms"] = hr, round(ar, 4)
        out[f"per_frame{suffix}_speedup"] = round(hr / ar, 3)
        hr_batched = ms[f"hr_12{suffix}"] / L
        ar_batched = (hr + ms[f"nonkey_11{suffix}"]) / L
        out[f"batched{suffix}_hr_ms"], out[f"batched{suffix}_ar_ms"] = round(hr_batched, 4), round(ar_batched, 4)
        out[f"batched{suffix}_speedup"] = round(hr_batched / ar_batched, 3)
    return out


CREFF_SHAPES = {  # channels, LR feature, HR (keyframe) feature of each arch at 720x960, s = 0.5
    "camvid-psp18": (64, (360, 480), (720, 960)),
    "camvid-bise18": (256, (46, 60), (90, 120)),
}
SMOKE_CREFF_SHAPES = {"camvid-psp18": (64, (32, 48), (64, 96)), "camvid-bise18": (256, (4, 6), (8, 12))}


def creff_part(repeats: int, warmup: int) -> dict[str, Any]:
    from arseg_cli.model.creff import CReFF

    results: dict[str, Any] = {}
    device, height, width = SIZE["device"], SIZE["height"], SIZE["width"]
    shapes = CREFF_SHAPES if device.type == "cuda" else SMOKE_CREFF_SHAPES
    for arch, (channels, lr_size, key_size) in shapes.items():
        for dtype in (torch.float32, torch.float16) if device.type == "cuda" else (torch.float32,):
            for batch in (1, L - 1):
                name = f"{arch} {str(dtype).removeprefix('torch.')} batch {batch}"
                log(f"creff: {name}")
                torch.manual_seed(0)
                creff = CReFF(channels).eval().to(device, dtype)
                gen = torch.Generator(device=device).manual_seed(5)
                lr = torch.randn(batch, channels, *lr_size, device=device, generator=gen).to(dtype)
                key = torch.randn(1, channels, *key_size, device=device, generator=gen).to(dtype).expand(batch, -1, -1, -1)
                flow = (2.0 * torch.randn(batch, 2, height, width, device=device, generator=gen)).to(dtype)
                lr, key = (t.contiguous(memory_format=torch.channels_last) if t.stride(0) else t for t in (lr, key))

                def switched(fused: bool) -> Callable[[], object]:
                    def call() -> object:
                        creff_module.use_triton_kernel(fused)
                        return creff(lr, key, flow)
                    return call

                def plain() -> object:
                    up = torch.nn.functional.interpolate(lr, size=key_size, mode="bilinear", align_corners=True)
                    warped = warp_feature(key, flow, "official")
                    q, k, v = creff.lr_query_conv(up), creff.hr_key_conv(warped), creff.hr_value_conv(warped)
                    return up + local_attention(q, k, v, 7)

                with torch.inference_mode():
                    calls = {"fused": switched(True), "unfused": switched(False), "plain": plain}
                    if batch > 1 and arch == "camvid-psp18":
                        calls.pop("plain")  # 11 x 49 full-size maps: seconds, and the point is made at batch 1
                    results[name] = cuda_times(calls, repeats, warmup)
                    creff_module.use_triton_kernel(True)
                    fused, reference = creff(lr, key, flow), plain()
                    results[name]["max_abs_diff_fused_vs_plain"] = float((fused.float() - reference.float()).abs().max())
                log(f"  {json.dumps(results[name])}")
                del creff, lr, key, flow
                torch.cuda.empty_cache()
    return results


def attention_launch_part(repeats: int, warmup: int) -> dict[str, Any]:
    from arseg_cli.model import _triton_creff

    channels, _, (height, width) = CREFF_SHAPES["camvid-psp18"]
    results: dict[str, Any] = {}
    if SIZE["device"].type != "cuda":
        return {"skipped": "the Triton kernels run on CUDA (tests/test_triton_creff.py runs them interpreted)"}
    for dtype in (torch.float32, torch.float16):
        gen = torch.Generator(device="cuda").manual_seed(6)
        q, k, v, up = (
            torch.randn(1, channels, height, width, device="cuda", generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
            for _ in range(4)
        )
        calls = {
            f"block {block} warps {warps}": (lambda block=block, warps=warps: _triton_creff.window_attention(q, k, v, up, 7, block=block, warps=warps))
            for block in (16, 32, 64)
            for warps in (4, 8)
        }
        log(f"attention_launch: {dtype}")
        with torch.inference_mode():
            results[str(dtype)] = cuda_times(calls, repeats, warmup)
        log(f"  {json.dumps(results[str(dtype)])}")
    return results


def synthetic_group(seed: int) -> list[Any]:
    """One keyframe group of L frames: random RGB, random backward flows (a few pixels)."""
    import numpy as np

    from arseg_cli.groups import ScheduledFrame
    from arseg_cli.schedule import Decision, FrameKind
    from arseg_cli.video.records import DecodedFrame

    rng, size = np.random.default_rng(seed), (SIZE["height"], SIZE["width"])
    group = []
    for index in range(L):
        frame = DecodedFrame(index=index, pts=index, time_s=None, rgb=rng.integers(0, 256, (*size, 3), dtype=np.uint8),
                             pict_type="P", is_stream_keyframe=index == 0, motion=None)  # fmt: skip
        flow = None if index == 0 else (2.0 * rng.standard_normal((2, *size))).astype(np.float32)
        decision = Decision(FrameKind.KEY if index == 0 else FrameKind.NONKEY, "first" if index == 0 else "", index)
        group.append(ScheduledFrame(frame, decision, flow))
    return group


def grouped_part(repeats: int, warmup: int) -> dict[str, Any]:
    import numpy as np

    from arseg_cli.graphed_step import GraphedNonkey, graphs_unavailable, nonkey_call
    from arseg_cli.group_step import DEFAULT_BATCH, GroupStep
    from arseg_cli.schedule import Decision, FrameKind

    repeats = max(3, repeats // 3)  # each call is a whole group: a few suffice, and the step's time is bounded
    results: dict[str, Any] = {}
    for name, step in arch_steps("grouped"):
        group = synthetic_group(7)
        as_keys = [item.__class__(item.frame, Decision(FrameKind.KEY, "interval", 0), None) for item in group]
        eager = GroupStep(step, keep_feature=True, batch=DEFAULT_BATCH)
        graphed = GroupStep(step, keep_feature=True, batch=DEFAULT_BATCH, cuda_graphs=True)
        per_frame_hr = GroupStep(step, keep_feature=False, batch=DEFAULT_BATCH)
        x, flow = frames(DEFAULT_BATCH, step.dtype, 8)
        graphed_call = nonkey_call(step, True)

        def fallback(call: object) -> str | None:
            """Why the graphs were not replayed (None: they were)."""
            return call.failed if isinstance(call, GraphedNonkey) else f"not taken: {graphs_unavailable(step)}"

        with torch.inference_mode():
            feat = step.key(x[:1])[1]
            batch_feat = feat.expand(DEFAULT_BATCH, -1, -1, -1)
            calls: dict[str, Callable[[], object]] = {
                "ar_group_eager": lambda: eager.labels(group),
                "ar_group_graphs": lambda: graphed.labels(group),
                "hr_per_frame_group": lambda: [per_frame_hr.labels([item]) for item in as_keys],
                f"nonkey_{DEFAULT_BATCH}_eager": lambda: step.nonkey(x, batch_feat, flow),
                f"nonkey_{DEFAULT_BATCH}_graphed": lambda: graphed_call(x, batch_feat, flow),
                "nonkey_1_eager": lambda: step.nonkey(x[:1], feat, flow[:1]),
                "nonkey_1_graphed": lambda: graphed_call(x[:1], feat, flow[:1]),
            }
            ms = cuda_times(calls, repeats, warmup)
            same = np.mean(np.stack(eager.labels(group)) == np.stack(graphed.labels(group)))
        fps = {mode: round(1000.0 * L / ms[mode], 2) for mode in ("ar_group_eager", "ar_group_graphs", "hr_per_frame_group")}
        results[name] = {"ms": ms, "fps": fps, "labels_same_graphs_vs_eager": round(float(same), 6),
                         "graph_fallback": {"group": fallback(graphed._nonkey), "call": fallback(graphed_call)},
                         "speedup_graphs_on_vs_off": round(fps["ar_group_graphs"] / fps["ar_group_eager"], 3),
                         "speedup_ar_vs_hr_eager": round(fps["ar_group_eager"] / fps["hr_per_frame_group"], 3),
                         "speedup_ar_vs_hr_graphs": round(fps["ar_group_graphs"] / fps["hr_per_frame_group"], 3)}  # fmt: skip
        log(f"  {json.dumps(results[name])}")
        del step, eager, graphed, graphed_call, per_frame_hr
        if SIZE["device"].type == "cuda":
            torch.cuda.empty_cache()
    return results


PARTS = {"model": model_part, "creff": creff_part, "grouped": grouped_part, "attention_launch": attention_launch_part}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu-results"))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--parts", default="creff,model,grouped,attention_launch")
    parser.add_argument("--smoke", action="store_true", help="CPU, 64 x 96, once: check the script without a GPU")
    args = parser.parse_args()
    if args.smoke:
        SIZE.update(height=64, width=96, device=torch.device("cpu"))
        args.repeats, args.warmup = 1, 0
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script measures the GPU path (--smoke checks it on the CPU)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from arseg_cli.model import _triton_creff

    report: dict[str, Any] = {"machine": machine(), "size": f"{SIZE['height']}x{SIZE['width']}", "triton": _triton_creff.available(),
                              "triton_version": getattr(_triton_creff.triton, "__version__", None),
                              "repeats": args.repeats, "warmup": args.warmup}  # fmt: skip
    log(f"machine: {json.dumps(report)}")
    for part in args.parts.split(","):
        try:
            report[part] = PARTS[part](args.repeats, args.warmup)
        except Exception:  # noqa: BLE001 - keep what the other parts measured
            report[f"{part}_error"] = traceback.format_exc()[-2000:]
            log(f"{part} failed:\n{report[f'{part}_error']}")
        report["targets"] = targets(report)
        (out / "gpu_issue19.json").write_text(json.dumps(report, indent=2))  # after each part: partial results survive
    log(f"targets: {json.dumps(report['targets'], indent=1)}")
    log(f"written {out / 'gpu_issue19.json'}")


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's GPU targets that this run's figures decide (with the Triton kernels)."""
    found: dict[str, Any] = {}
    psp = report.get("creff", {}).get("camvid-psp18 float32 batch 1")
    if psp:
        found["psp18 CReFF <= 2 ms (float32, batch 1)"] = {"ms": psp["fused"], "met": psp["fused"] <= 2.0}
    for name, kernels in report.get("model", {}).items():
        fused = kernels.get("fused", {})
        for mode in ("per_frame", "batched", "per_frame_graph", "batched_graph"):
            if f"{mode}_speedup" in fused:
                speedup = fused[f"{mode}_speedup"]
                found[f"{name}: AR 0.5x >= 2x HR, {mode}"] = {"speedup": speedup, "met": speedup >= 2.0}
    for name, grouped in report.get("grouped", {}).items():
        for mode in ("eager", "graphs"):
            speedup = grouped[f"speedup_ar_vs_hr_{mode}"]
            found[f"{name}: AR 0.5x >= 2x HR, one group with its host side, {mode}"] = {"speedup": speedup, "met": speedup >= 2.0}
    return found


if __name__ == "__main__":
    main()
