"""`arseg segment --ray ADDRESS` / `--shard K/N`: parse into arseg_cli.scaleout and show one Rich bar
over all videos (videos done, frames, fps, failures), one line per outcome, a closing summary."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from arseg_cli.cli._app import EXIT_ERROR, console, print_error, stderr_bar
from arseg_cli.cli._compile import compile_on
from arseg_cli.errors import OptionsError
from arseg_cli.palettes import load_palette
from arseg_cli.pipeline import Settings
from arseg_cli.scaleout import JobOptions, RunProgress, RunReport, Shard, VideoResult, WorkerSpec, segment_many
from arseg_cli.scaleout.progress import OnEvent
from arseg_cli.options import pick_device


def run_scaleout(inputs: list[str], output: str, *, as_json: bool, quiet: bool, **kwargs: Any) -> None:
    """Run segment_many with the parsed options; exit 1 when any video failed."""
    # Ray's driver prints its workers' system errors to stdout, which carries --json: send them to stderr.
    with _videos_bar(quiet) as on_event, contextlib.redirect_stdout(sys.stderr):
        report = segment_many(inputs, output, on_event=on_event, **kwargs)
    if as_json:
        typer.echo(json.dumps([_json(result, report) for result in report.results]))
    if not quiet:
        console.print(_closing_line(report), highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(EXIT_ERROR)


@contextmanager
def _videos_bar(quiet: bool) -> Iterator[OnEvent]:
    """The bar on stderr (a terminal only); outcome lines above it (unless quiet; errors always)."""
    with stderr_bar(
        TextColumn("videos"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[frames]} frames, {task.fields[fps]} fps, {task.fields[failed]} failed"),
        TimeElapsedColumn(),
        quiet=quiet,
        screen=console,
    ) as bar:
        task = bar.add_task("videos", total=None, frames=0, fps="-", failed=0)

        def on_event(progress: RunProgress, result: VideoResult | None) -> None:
            seconds = progress.elapsed_s
            fps = f"{progress.frames / seconds:.1f}" if seconds > 0 else "-"
            bar.update(task, completed=progress.finished, total=progress.total, frames=progress.frames, fps=fps,
                       failed=progress.failed)  # fmt: skip
            if result is not None:
                _outcome_line(result, quiet)

        yield on_event


def _outcome_line(result: VideoResult, quiet: bool) -> None:
    if result.outcome == "failed":
        print_error(result.error or result.source)
    elif result.outcome == "worker-lost":
        console.print(f"[yellow]warning:[/yellow] {escape(result.source)}: {escape(result.error or '')}; retrying",
                      highlight=False, soft_wrap=True)  # fmt: skip
    elif result.outcome == "damaged":
        console.print(f"[yellow]warning:[/yellow] {escape(result.error or '')}; the {result.frames} frames decoded "
                      "before the damage were segmented and written", highlight=False, soft_wrap=True)  # fmt: skip
    elif not quiet:
        note = "done by an earlier run, skipped" if result.outcome == "skipped" else f"{result.frames} frames in {result.seconds:.1f} s"
        console.print(f"{escape(result.source)}: {note}", highlight=False, soft_wrap=True)


def _json(result: VideoResult, report: RunReport) -> dict[str, Any]:
    if result.summary is not None:
        return result.summary.to_json(report.model) | {"weights": report.weights, "attempts": result.attempt}
    if result.outcome == "skipped":
        return {"input": result.source, "skipped": True}
    return {"input": result.source, "error": result.error}


def _closing_line(report: RunReport) -> str:
    progress = report.progress
    minutes = progress.elapsed_s / 60
    rate = f", {progress.done / minutes:.1f} videos/min" if minutes > 0 and progress.done else ""
    return (f"{progress.total} videos: {progress.done} done, {progress.skipped} skipped, {progress.failed} failed, "
            f"{progress.retried} retried, in {progress.elapsed_s:.1f} s{rate}; records: {report.records}")  # fmt: skip


def scaleout_command(
    inputs: list[str],
    output: str | None,
    *,
    ray: str | None,
    shard: str | None,
    workers: int | None,
    cpus: float,
    gpus: float,
    weights: list[str],
    arch: str | None,
    device: str,
    backend: str,
    compile_attention: bool,
    palette: str | None,
    settings: Settings,
    force: bool,
    resume: bool,
    as_json: bool,
    quiet: bool,
    **job: Any,
) -> None:
    """`arseg segment ... --ray ADDRESS | --shard K/N`: check what only a local run can do, then run."""
    if output is None or output == "-":
        raise OptionsError("--ray and --shard write each input's outputs under -o DIR (DIR/<stem>/): give -o DIR")
    if backend != "torch":
        raise OptionsError("--ray and --shard run the torch backend; --backend onnxruntime runs in one process")
    if compile_attention and ray is not None:
        raise OptionsError("--compile is for one process; Ray workers run the uncompiled attention")
    if gpus > 0 and ray is None:
        raise OptionsError("--ray-gpus-per-worker is for --ray")
    chosen = Shard.parse(shard) if shard is not None else None
    spec = WorkerSpec(workers=workers, cpus=cpus, gpus=gpus, device=device)
    if ray is None:
        if settings.half and pick_device(device).type != "cuda":
            raise OptionsError("--half needs CUDA (--device cuda, or auto on a machine with a GPU)")
    options = JobOptions(settings=settings, palette=load_palette(palette) if palette else None, force=force,
                         compile_attention=ray is None and compile_on(compile_attention, pick_device(device)), **{
        name: job.pop(name) for name in ("opacity", "start", "end", "max_pixels")})  # fmt: skip
    run_scaleout(inputs, output, as_json=as_json, quiet=quiet, ray_address=ray, shard=chosen, workers=spec,
                 weights=weights, arch=arch, options=options, resume=resume, **job)  # fmt: skip
