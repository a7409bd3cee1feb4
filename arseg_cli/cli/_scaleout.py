"""`arseg segment --ray ADDRESS` / `--shard K/N`: run the request through arseg_cli.scaleout and show one
Rich bar over all videos (videos done, frames, fps, failures), one line per outcome, a closing summary."""

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

from arseg_cli.cli._app import console, print_error, stderr_bar
from arseg_cli.cli._flags import in_flag_words
from arseg_cli.request import SegmentRequest
from arseg_cli.scaleout import RunProgress, RunReport, VideoResult
from arseg_cli.scaleout.progress import OnEvent


def run_scaleout(request: SegmentRequest, *, as_json: bool, quiet: bool, command: Any = None) -> None:
    """Run the scale-out request; exit 1 when any video failed."""
    from arseg_cli.segment_run import run

    # Ray's driver prints its workers' system errors to stdout, which carries --json: send them to stderr.
    with _videos_bar(quiet, command) as on_event, contextlib.redirect_stdout(sys.stderr):
        report = run(request, on_event=on_event)
    assert report.scaleout is not None
    if as_json:
        typer.echo(json.dumps([_json(result, report.scaleout) for result in report.results]))
    if not quiet:
        console.print(_closing_line(report.scaleout), highlight=False, soft_wrap=True)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@contextmanager
def _videos_bar(quiet: bool, command: Any) -> Iterator[OnEvent]:
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
                _outcome_line(result, quiet, command)

        yield on_event


def _outcome_line(result: VideoResult, quiet: bool, command: Any) -> None:
    if result.outcome == "failed":
        print_error(in_flag_words(result.error or result.source, command))
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
