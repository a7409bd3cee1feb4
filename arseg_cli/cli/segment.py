"""`arseg segment INPUT... -o DIR`: the AR-Seg pipeline from videos (or stdin) to masks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from arseg_cli.choices import DEFAULT_POLICY, Backend, Device, KeyframePolicy
from arseg_cli.cli._arch import arch_option
from arseg_cli.cli._app import console, print_error, stderr_bar
from arseg_cli.cli._compile import compile_option
from arseg_cli.cli._flags import in_flag_words
from arseg_cli.errors import OptionsError
from arseg_cli.video.limits import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from arseg_cli.pipeline import OnFrame, SegmentedFrame, SegmentSummary
    from arseg_cli.scaleout.jobs import VideoResult
    from arseg_cli.segment_run import SegmentReport


def segment_command(
    ctx: typer.Context,
    inputs: list[str] = typer.Argument(..., help="Video files, directories (their videos), globs, or '-' (stdin)."),
    output: str | None = typer.Option(None, "--output", "-o", help="Directory for label PNGs, or '-': raw uint8 labels (H*W bytes per frame) on stdout."),
    weights: list[str] = typer.Option([], "--weights", "-w", help="arseg .safetensors, official release directory, or official hr=FILE / ar=FILE / lr=FILE (repeat). Default: ARSEG_WEIGHTS, then weights/."),
    arch: str | None = arch_option(None, help="Architecture of official files (guessed from their keys when not given)."),
    scale: float | None = typer.Option(None, "--scale", min=0.05, max=1.0, help="LR scale s of non-keyframes (default: the weights', 0.5); 1.0 = per-frame HR."),
    keyframe_interval: int | None = typer.Option(None, "--keyframe-interval", "-L", min=1, help="Most frames from one keyframe to the next (default: the weights', 12); 1 = per-frame HR."),
    policy: KeyframePolicy = typer.Option(DEFAULT_POLICY, "--keyframe-policy", help="fixed: every L frames; iframe: at the stream's I-frames too; adaptive: also where motion is unreliable."),
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA when available."),
    backend: Backend = typer.Option(Backend.TORCH, "--backend", help="torch, or onnxruntime on the graphs of `arseg export-onnx` (give their directory with --onnx)."),
    onnx: str | None = typer.Option(None, "--onnx", help="Directory written by `arseg export-onnx` (with --backend onnxruntime)."),
    half: bool = typer.Option(False, "--half", help="float16 (CUDA only)."),
    low_latency: bool = typer.Option(False, "--low-latency", help="Frame by frame, each mask written before the next frame is decoded (live pipelines); default: whole keyframe groups at once."),
    compile_attention: bool = compile_option(),
    cuda_graphs: bool = typer.Option(False, "--cuda-graphs/--no-cuda-graphs", help="Replay the non-keyframe step from CUDA graphs (PyTorch on CUDA; elsewhere a warning and the usual path). Not yet measured on a GPU."),
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
    workers: int | None = typer.Option(None, "--ray-workers", min=1, help="Ray workers (one model each; default: as many as the cluster's CPUs, or GPUs, hold)."),
    cpus_per_worker: float = typer.Option(1.0, "--ray-cpus-per-worker", min=0.0, help="CPUs per Ray worker (its torch threads)."),
    gpus_per_worker: float = typer.Option(0.0, "--ray-gpus-per-worker", min=0.0, help="GPUs per Ray worker (> 0: the workers run on CUDA)."),
    shard: str | None = typer.Option(None, "--shard", help="Run only the K-th of N deterministic shards of the inputs (K/N, 1 <= K <= N): an array job without an engine."),
) -> None:
    """Segment videos with AR-Seg: keyframes at high resolution, the frames between at scale s with the
    keyframe's feature carried along the stream's motion vectors (CReFF). docs/SEGMENT.md."""
    from arseg_cli.request import SegmentRequest
    from arseg_cli.segment_run import run

    if output == "-" and as_json:
        raise OptionsError("--json with -o -: standard output carries the labels; drop one of them")
    request = SegmentRequest(inputs, output, video=video, overlay=overlay, lossless=lossless, weights=weights, arch=arch,
                             scale=scale, keyframe_interval=keyframe_interval, policy=policy, device=device,
                             backend=backend, onnx=onnx, half=half, low_latency=low_latency,
                             compile_attention=compile_attention, cuda_graphs=cuda_graphs, palette=palette, opacity=opacity, start=start, end=end,
                             max_pixels=max_pixels, force=force, resume=resume, ray=ray, shard=shard, workers=workers,
                             cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)  # fmt: skip
    if request.scaleout:
        from arseg_cli.cli._scaleout import run_scaleout

        return run_scaleout(request, as_json=as_json, quiet=quiet, command=ctx.command)
    report = run(request, progress=lambda label: _progress(label, quiet),
                 on_result=lambda result: _show_result(result, quiet, ctx.command))  # fmt: skip
    if as_json:
        typer.echo(json.dumps([_json(result, report) for result in report.results]))
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _show_result(result: VideoResult, quiet: bool, command: Any) -> None:
    """One line per input: its error, its damage (a warning), or (unless quiet) what was done."""
    if result.outcome == "failed":
        print_error(in_flag_words(result.error or result.source, command))
    elif result.outcome == "damaged" and result.summary is not None:
        console.print(f"[yellow]warning:[/yellow] {escape(result.error or '')}; the {result.frames} frames decoded "
                      "before the damage were segmented and written", highlight=False, soft_wrap=True)  # fmt: skip
    if result.summary is not None and not quiet:
        console.print(_summary_line(result.summary), highlight=False, soft_wrap=True)


def _json(result: VideoResult, report: SegmentReport) -> dict[str, Any]:
    if result.summary is None:
        return {"input": result.source, "error": result.error}
    return result.summary.to_json(report.model) | {"weights": report.weights}


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
