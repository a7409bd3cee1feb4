"""`arseg bench`: MACs / FLOPs of HR, LR and CReFF beside their measured latency, the paper's figures and
the ratio of AR^s to per-frame HR."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from arseg_cli.choices import Backend, Device
from arseg_cli.cli._arch import arch_option
from arseg_cli.cli._app import console
from arseg_cli.cli._compile import compile_option
from arseg_cli.options import parse_size
from arseg_cli.errors import InputNotFoundError, OptionsError


def bench_command(
    more_scales: list[float] = typer.Argument(None, metavar="SCALE", help="More LR scales after --scale, as in `--scale 0.3 0.5 0.7`.", show_default=False),
    archs: list[str] = arch_option(["camvid-bise18"], help="Architecture with random weights (repeat for several)."),
    size: str | None = typer.Option(None, "--size", metavar="HxW", help="Image size (default: the data set's, 720x960 CamVid, 1024x2048 Cityscapes)."),
    scales: list[float] = typer.Option(None, "--scale", help="LR scale(s) s: --scale 0.3 0.5 0.7 (or --scale repeated); default 0.5; 1.0x is always the baseline.", show_default=False),
    keyframe_interval: int = typer.Option(12, "--keyframe-interval", "-L", min=1, help="Keyframe interval L of the AR^s average."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Timed calls per stage."),
    warmup: int = typer.Option(1, "--warmup", min=0, help="Untimed calls per stage first (frames, with --input)."),
    timing: bool = typer.Option(True, "--timing/--no-timing", help="Measure latency (--no-timing: compute figures only, instant)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads of torch and onnxruntime (default: torch's, one per core)."),
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA when available."),
    compile_attention: bool = compile_option(),
    weights: list[str] = typer.Option([], "--weights", "-w", help="Time these weights instead of random ones (as `arseg segment --weights`)."),
    backend: Backend = typer.Option(Backend.TORCH, "--backend", help="torch, or onnxruntime on the graphs of --onnx."),
    onnx_dir: Path | None = typer.Option(None, "--onnx", help="Directory written by `arseg export-onnx` (for --backend onnxruntime)."),
    video: Path | None = typer.Option(None, "--input", help="Also time decode, motion, model and writing per frame on this video."),
    frames: int = typer.Option(24, "--frames", min=1, help="Frames of --input to time (after the warm-up frames)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Compute and speed of AR-Seg side by side: MACs and FLOPs of the HR network, the LR network and
    CReFF, the mean per frame of AR^s at L and its ratio to per-frame HR (1.0x), the paper's figures for the
    same architecture, and measured latency per stage (median and p90 after warm-up; CUDA synchronised).
    Random weights unless --weights (speed does not depend on the values). docs/BENCH.md."""
    from arseg_cli.bench import BenchConfig, run_bench
    from arseg_cli.bench.report import format_report
    from arseg_cli.options import compile_on, pick_device

    if backend is Backend.ONNXRUNTIME and onnx_dir is None:
        raise OptionsError("--backend onnxruntime needs --onnx DIR (made by `arseg export-onnx -o DIR`)")
    if onnx_dir is not None and backend is not Backend.ONNXRUNTIME:
        raise OptionsError("--onnx DIR is for --backend onnxruntime")
    if compile_attention and backend is not Backend.TORCH:
        raise OptionsError("--compile is for the torch backend; onnxruntime runs the exported graphs as they are")
    config = BenchConfig(
        archs=tuple(archs),
        size_hw=parse_size(size) if size is not None else None,
        scales=tuple(scales or ()) + tuple(more_scales or ()) or (0.5,),
        keyframe_interval=keyframe_interval,
        repeats=repeats,
        warmup=warmup,
        timing=timing,
        device=pick_device(device),
        weights=tuple(weights),
        backend=backend.value,  # type: ignore[arg-type]
        onnx_dir=onnx_dir,
        video=video,
        video_frames=frames,
        threads=threads,
        compile_attention=compile_on(compile_attention, pick_device(device)),
    )
    if video is not None and not video.is_file():
        raise InputNotFoundError(f"--input {video}: no such file")
    if timing and not as_json:
        console.print("measuring (latency on a busy machine varies: compare the ratios)...", highlight=False)
    report = run_bench(config)
    typer.echo(json.dumps(report) if as_json else format_report(report))
