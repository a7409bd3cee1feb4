"""`arseg segment INPUT... -o DIR`: the AR-Seg pipeline from videos (or stdin) to masks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from arseg_cli.cli._arch import arch_option
from arseg_cli.cli._app import EXIT_ERROR, console, print_error, stderr_bar
from arseg_cli.cli._compile import apply_compile_option, compile_option
from arseg_cli.errors import InputError, InputNotFoundError, OptionsError
from arseg_cli.video.limits import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    import torch

    from arseg_cli.pipeline import OnFrame, SegmentedFrame, SegmentSummary


class PolicyChoice(str, Enum):
    fixed = "fixed"
    iframe = "iframe"
    adaptive = "adaptive"


class BackendChoice(str, Enum):
    torch = "torch"
    onnxruntime = "onnxruntime"


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def segment_command(
    inputs: list[str] = typer.Argument(..., help="Video files, directories (their videos), globs, or '-' (stdin)."),
    output: str | None = typer.Option(None, "--output", "-o", help="Directory for label PNGs, or '-': raw uint8 labels (H*W bytes per frame) on stdout."),
    weights: list[str] = typer.Option([], "--weights", "-w", help="arseg .safetensors, official release directory, or official hr=FILE / ar=FILE / lr=FILE (repeat). Default: ARSEG_WEIGHTS, then weights/."),
    arch: str | None = arch_option(None, help="Architecture of official files (guessed from their keys when not given)."),
    scale: float | None = typer.Option(None, "--scale", min=0.05, max=1.0, help="LR scale s of non-keyframes (default: the weights', 0.5); 1.0 = per-frame HR."),
    keyint: int | None = typer.Option(None, "--keyframe-interval", "-L", min=1, help="Most frames from one keyframe to the next (default: the weights', 12); 1 = per-frame HR."),
    policy: PolicyChoice = typer.Option(PolicyChoice.adaptive, "--keyframe-policy", help="fixed: every L frames; iframe: at the stream's I-frames too; adaptive: also where motion is unreliable."),
    device: DeviceChoice = typer.Option(DeviceChoice.auto, "--device", help="auto: CUDA when available."),
    backend: BackendChoice = typer.Option(BackendChoice.torch, "--backend", help="torch, or onnxruntime on the graphs of `arseg export-onnx` (give their directory with --onnx)."),
    onnx: str | None = typer.Option(None, "--onnx", help="Directory written by `arseg export-onnx` (with --backend onnxruntime)."),
    half: bool = typer.Option(False, "--half", help="float16 (CUDA only)."),
    low_latency: bool = typer.Option(False, "--low-latency", help="Frame by frame, each mask written before the next frame is decoded (live pipelines); default: whole keyframe groups at once."),
    compile_attention: bool = compile_option(),
    palette: str | None = typer.Option(None, "--palette", help="camvid, cityscapes or a JSON file (default: the weights' classes and colours)."),
    video: str | None = typer.Option(None, "--video", help="Colour mask video file (H.264)."),
    overlay: str | None = typer.Option(None, "--overlay", help="Input blended with the mask colours, video file (H.264)."),
    lossless: str | None = typer.Option(None, "--lossless", help="Lossless label video file: .mkv (FFV1) or .mov (PNG)."),
    opacity: float = typer.Option(0.5, "--opacity", min=0.0, max=1.0, help="Overlay opacity of the mask colours."),
    start: int | None = typer.Option(None, "--start", min=0, help="First frame (display index) to segment."),
    end: int | None = typer.Option(None, "--end", min=1, help="Stop before this frame (display index)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (one object per input, in a list)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary line."),
    force: bool = typer.Option(False, "--force", help="Replace existing outputs of the same names."),
    resume: bool = typer.Option(False, "--resume", help="Continue a stopped run (same inputs and options): keep its label PNGs, segment the rest, re-create the videos."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=0, help="Refuse frames larger than this (width x height; default 8K UHD), before decoding them; 0: no limit but FFmpeg's."),
    ray: str | None = typer.Option(None, "--ray", help="Run on Ray: a cluster address, 'auto' (this machine's cluster) or 'local' (start Ray here). Outputs in DIR/<stem>/, run records in DIR/_runs/; docs/SCALEOUT.md."),
    ray_workers: int | None = typer.Option(None, "--ray-workers", min=1, help="Ray workers (one model each; default: as many as the cluster's CPUs, or GPUs, hold)."),
    ray_cpus: float = typer.Option(1.0, "--ray-cpus-per-worker", min=0.0, help="CPUs per Ray worker (its torch threads)."),
    ray_gpus: float = typer.Option(0.0, "--ray-gpus-per-worker", min=0.0, help="GPUs per Ray worker (> 0: the workers run on CUDA)."),
    shard: str | None = typer.Option(None, "--shard", help="Run only the K-th of N deterministic shards of the inputs (K/N, 1 <= K <= N): an array job without an engine."),
) -> None:
    """Segment videos with AR-Seg: keyframes at high resolution, the frames between at scale s with the
    keyframe's feature carried along the stream's motion vectors (CReFF). docs/SEGMENT.md."""
    from arseg_cli.palettes import Palette, load_palette
    from arseg_cli.pipeline import Settings, segment_video
    from arseg_cli.options import pick_device
    from arseg_cli.output_plan import plan_runs

    if output == "-" and as_json:
        raise OptionsError("--json with -o -: standard output carries the labels; drop one of them")
    if resume and (output is None or output == "-"):
        raise OptionsError("--resume continues from the label PNGs of the stopped run: give their directory with -o DIR")
    if start is not None and end is not None and end <= start:
        raise OptionsError(f"--end ({end}) must be greater than --start ({start})")
    if ray is not None or shard is not None:
        from arseg_cli.cli._scaleout import scaleout_command

        return scaleout_command(inputs, output, ray=ray, shard=shard, workers=ray_workers, cpus=ray_cpus, gpus=ray_gpus,
                                weights=weights, arch=arch, device=device.value, backend=backend.value,
                                compile_attention=compile_attention, palette=palette, settings=Settings(
                                    scale=scale, keyframe_interval=keyint, policy=policy.value, half=half,
                                    low_latency=low_latency),  # type: ignore[arg-type]
                                video=video, overlay=overlay, lossless=lossless, opacity=opacity, start=start, end=end,
                                max_pixels=max_pixels, force=force, resume=resume, as_json=as_json, quiet=quiet)  # fmt: skip
    chosen_device = pick_device(device.value)
    if half and chosen_device.type != "cuda":
        raise OptionsError("--half needs CUDA (--device cuda, or auto on a machine with a GPU)")
    _check_backend_options(backend, onnx, weights, arch=arch, half=half, compile_attention=compile_attention)
    if resume and "-" in inputs:
        raise OptionsError("--resume needs the input as a file: standard input cannot be read again")
    # --resume replaces the stopped run's outputs: its PNGs are kept, its videos are re-created whole.
    runs = plan_runs(inputs, output, video=video, overlay=overlay, lossless=lossless, force=force or resume)
    model, weights_name = _load_backend(backend, onnx, weights, arch=arch, scale=scale, device=chosen_device)
    apply_compile_option(compile_attention, model)  # type: ignore[arg-type]
    colours = load_palette(palette) if palette else Palette(model.arch, model.meta.classes, model.meta.palette)
    settings = Settings(scale=scale, keyframe_interval=keyint, policy=policy.value, half=half,  # type: ignore[arg-type]
                        low_latency=low_latency)
    summaries, failed = [], False
    for run in runs:
        try:
            with _progress(run.label, quiet) as on_frame:
                summary = segment_video(run.source, model, run.targets, settings, palette=colours, force=force or resume,
                                        opacity=opacity, start=start, end=end, max_pixels=max_pixels, resume=resume,
                                        on_frame=on_frame)  # fmt: skip
        except (InputError, InputNotFoundError) as error:
            if len(runs) == 1:
                raise
            # One unreadable input of several: say so, go on with the others, exit 1 at the end.
            print_error(str(error) if run.source in str(error) else f"{run.source}: {error}")
            summaries.append({"input": run.source, "error": str(error)})
            failed = True
            continue
        if summary.damaged:
            console.print(f"[yellow]warning:[/yellow] {escape(summary.damaged)}; the {summary.frames} frames decoded "
                          "before the damage were segmented and written", highlight=False, soft_wrap=True)  # fmt: skip
            failed = True
        if as_json:
            summaries.append(summary.to_json(model) | {"weights": weights_name})
        if not quiet:
            console.print(_summary_line(summary), highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(summaries))
    if failed:
        raise typer.Exit(EXIT_ERROR)


def _check_backend_options(
    backend: BackendChoice, onnx: str | None, weights: list[str], *, arch: str | None, half: bool, compile_attention: bool
) -> None:
    """The ONNX graphs carry their own weights and run in float32: refuse options that would be ignored."""
    if backend is BackendChoice.torch:
        if onnx is not None:
            raise OptionsError("--onnx is for --backend onnxruntime")
        return
    if onnx is None:
        raise OptionsError("--backend onnxruntime needs --onnx DIR (the directory `arseg export-onnx` wrote)")
    if weights or arch:
        raise OptionsError("--backend onnxruntime runs the weights inside the graphs: drop --weights/--arch")
    if half:
        raise OptionsError("--half is for the torch backend; the ONNX graphs are float32")
    if compile_attention:
        raise OptionsError("--compile is for the torch backend; onnxruntime runs the exported graphs as they are")


def _load_backend(
    backend: BackendChoice, onnx: str | None, weights: list[str], *, arch: str | None, scale: float | None, device: torch.device
) -> tuple[Any, str]:
    """The model the pipeline runs (ARSeg, or OnnxARSeg with the same calls) and what to call it."""
    if backend is BackendChoice.onnxruntime:
        from arseg_cli.onnx import OnnxARSeg

        return OnnxARSeg(onnx, device=device), f"onnx:{onnx}"  # type: ignore[arg-type]
    from arseg_cli.model.weights_specs import load_model

    return load_model(weights, arch=arch, scale=scale, device=device)


def _summary_line(summary: SegmentSummary) -> str:
    seconds = summary.wall_s or 1e-9
    targets = ", ".join(summary.outputs.values())
    return (f"{summary.input}: {summary.frames} frames ({summary.keyframes} keyframes) in {seconds:.1f} s, "
            f"{summary.frames / seconds:.1f} frames/s -> {targets}")  # fmt: skip


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[OnFrame]:
    """Progress on stderr (frames, frames/s, ETA, keyframes), only when stderr is a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    with stderr_bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]} fps, {task.fields[keys]} keyframes"),
        TimeRemainingColumn(),
        quiet=quiet,
        screen=console,
    ) as progress:
        task = progress.add_task(label, total=None, fps="-", keys=0)

        def on_frame(frame: SegmentedFrame, summary: SegmentSummary, expected: int | None) -> None:
            fps = f"{summary.frames / summary.wall_s:.1f}" if summary.wall_s > 0 else "-"
            progress.update(task, completed=summary.frames, total=expected, fps=fps, keys=summary.keyframes)

        yield on_frame
