"""`arseg bench` as a function: for each architecture, the compute table and the measured latencies.

`run_bench(config)` returns the JSON-ready report (docs/BENCH.md gives its schema); `report.py` turns
it into text. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from arseg_cli.bench.costs import CONVENTION, scale_costs
from arseg_cli.bench.latency import StageLatency, measure_stages
from arseg_cli.bench.reference import dataset_size, paper_json
from arseg_cli.bench.timing import machine
from arseg_cli.bench.video import measure_video
from arseg_cli.errors import OptionsError
from arseg_cli.model import arch_config, build_arseg, list_archs
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.protocol import ModelBackend
from arseg_cli.scale_interval import check_keyframe_interval, check_scale

Backend = Literal["torch", "onnxruntime"]
RANDOM_WEIGHTS = "random (seed 0): latency does not depend on the weights' values"


@dataclass(frozen=True)
class BenchConfig:
    """What to measure.

    archs:    architectures with random weights (ignored when `weights` or the ONNX backend name the model).
    size_hw:  image size (None: each architecture's data set size, 720x960 / 1024x2048).
    scales:   LR scales s; 1.0 (per-frame HR, the baseline of the ratios) is always added.
    keyframe_interval: L.  repeats, warmup: timed and untimed calls per stage.
    timing:   measure latency (False: compute figures only).
    weights:  `--weights` values (arseg_cli.model.weights_specs.load_model); empty: random weights.
    backend:  'torch' or 'onnxruntime' (the graphs in `onnx_dir`, from `arseg export-onnx`).
    video, video_frames: also time decode, motion, model and writing per frame on this video.
    threads:  torch intra-op threads during the run (None: torch's default); onnxruntime uses as many.
    compile_attention: the torch models run CReFF's attention compiled (CPU; `ARSeg.use_compiled_attention`).
    """

    archs: tuple[str, ...] = ("camvid-bise18",)
    size_hw: tuple[int, int] | None = None
    scales: tuple[float, ...] = (0.5,)
    keyframe_interval: int = 12
    repeats: int = 5
    warmup: int = 1
    timing: bool = True
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    weights: tuple[str, ...] = ()
    backend: Backend = "torch"
    onnx_dir: Path | None = None
    video: Path | None = None
    video_frames: int = 24
    threads: int | None = None
    compile_attention: bool = False

    def all_scales(self) -> list[float]:
        return sorted({1.0, *self.scales}, reverse=True)


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """The report of one `arseg bench` run (JSON-ready)."""
    _check(config)
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        results, compiled = [], False
        for model, weights in _models(config):
            results.append(_bench_model(model, weights, config))
            compiled = compiled or getattr(model, "compiled_attention", False)
        info = machine(config.device)
    finally:
        torch.set_num_threads(threads)
    return {
        "benchmark": "arseg bench",
        "backend": config.backend,
        # after the run: False also when --compile was given but compiling failed (a warning said why)
        "compiled_attention": compiled,
        "machine": info,
        "convention": CONVENTION,
        "keyframe_interval": config.keyframe_interval,
        "repeats": config.repeats,
        "warmup": config.warmup,
        "archs": results,
    }


def _check(config: BenchConfig) -> None:
    check_keyframe_interval(config.keyframe_interval)
    for scale in config.scales:
        check_scale(scale)
    unknown = [a for a in config.archs if a not in list_archs()]
    if unknown:
        raise OptionsError(f"unknown architecture {unknown[0]!r}: choose from {', '.join(list_archs())}")
    if config.backend == "onnxruntime" and config.onnx_dir is None:
        raise OptionsError("`backend` onnxruntime needs `onnx_dir` (made by `arseg export-onnx -o DIR`)")
    if config.backend == "onnxruntime" and config.weights:
        raise OptionsError("`weights` is for the torch backend; the ONNX graphs carry their own weights")
    if config.threads is not None and config.threads < 1:
        raise OptionsError(f"`threads` must be >= 1, got {config.threads}")
    if config.size_hw is not None and min(config.size_hw) < 32:
        raise OptionsError(f"`size_hw` must be at least 32x32, got {config.size_hw[0]}x{config.size_hw[1]}")


def _models(config: BenchConfig) -> Iterator[tuple[ModelBackend, str]]:
    """(model, what its weights are) for each model to bench, built one at a time."""
    if config.backend == "onnxruntime":
        from arseg_cli.onnx.runtime import OnnxARSeg

        assert config.onnx_dir is not None  # _check
        yield OnnxARSeg(config.onnx_dir, device=config.device), f"ONNX graphs in {config.onnx_dir}"
        return
    if config.weights:
        from arseg_cli.model.weights_specs import load_model

        model, name = load_model(list(config.weights), device=config.device)
        yield model.use_compiled_attention(config.compile_attention), name
        return
    lr_scale = min(config.scales) if min(config.scales) < 1.0 else None
    for arch in config.archs:
        model = random_model(arch, lr_scale).to(config.device)
        yield model.use_compiled_attention(config.compile_attention), RANDOM_WEIGHTS


def random_model(arch: str, scale: float | None) -> ARSeg:
    """`arch` with HR and AR branches (CReFF) at seed 0, eval mode, the official classes and normalisation."""
    torch.manual_seed(0)
    return build_arseg(arch_config(arch).model_meta(scale=scale)).eval()


def _bench_model(model: ModelBackend, weights: str, config: BenchConfig) -> dict[str, Any]:
    arch = model.arch
    size = config.size_hw or dataset_size(arch)
    scales = config.all_scales()
    if not model.has_lr and scales != [1.0]:
        raise OptionsError(f"{weights}: the model has no LR branch (HR only): bench it with scale s 1.0")
    L = config.keyframe_interval
    costs = {s: scale_costs(arch, size, s, L, num_classes=model.num_classes, fusion_gate=model.meta.fusion_gate,
                            input_multiple=model.meta.input_multiple) for s in scales}  # fmt: skip
    latency: StageLatency | None = None
    if config.timing:
        latency = measure_stages(model, size, scales, repeats=config.repeats, warmup=config.warmup)
    rows = []
    for s in scales:
        row = costs[s].to_json()
        if latency is not None:
            row["latency"] = latency.to_json(s)
            row["latency"]["ar_average_s"] = latency.ar_average_s(s, L)
            row["speedup_vs_1x"] = latency.speedup(s, L)
        rows.append(row)
    result: dict[str, Any] = {
        "arch": arch,
        "weights": weights,
        "size": list(size),
        "scales": rows,
        "summary": [summary_line(row) for row in rows if row["scale"] < 1.0],
        "paper": paper_json(arch),
    }
    if config.video is not None:
        video_scale = min(scales)
        result["video"] = measure_video(
            config.video, model, scale=video_scale, keyframe_interval=L if video_scale < 1.0 else 1,
            frames=config.video_frames, warmup=config.warmup,
        ).to_json()  # fmt: skip
    return result


def summary_line(row: dict[str, Any]) -> str:
    """'AR^0.5 vs 1.0x: 2.94x fewer MACs, 2.10x faster (measured)' for one scale's row."""
    speed = row.get("speedup_vs_1x")
    measured = f"{speed:.2f}x faster (measured)" if speed is not None else "speed not measured"
    return f"AR^{row['scale']:g} vs 1.0x: {row['macs_ratio_vs_1x']:.2f}x fewer MACs, {measured}"
