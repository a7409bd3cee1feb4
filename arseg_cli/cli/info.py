"""`arseg info INPUT`: what a video is and how arseg will get its motion (report on stdout)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from arseg_cli.video.limits import DEFAULT_SCAN_FRAMES

if TYPE_CHECKING:
    from rich.table import Table

    from arseg_cli.video.probe import VideoReport


def info_command(
    input: str = typer.Argument(..., help="Video file, or '-' for standard input (MPEG-TS, Matroska, raw H.264)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    scan_frames: int = typer.Option(
        DEFAULT_SCAN_FRAMES, "--scan-frames", min=1, help="Frames decoded to find the GOP pattern and motion vectors."
    ),
) -> None:
    """Describe a video: codec, size, frame rate, GOP pattern, motion vectors, and advice."""
    from rich.console import Console

    from arseg_cli.video.probe import probe_video

    report = probe_video(input, scan_frames=scan_frames)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        Console(highlight=False, soft_wrap=True).print(_table(report))


def _table(report: VideoReport) -> Table:
    from rich.table import Table

    info = report.info
    data = report.to_dict()
    table = Table(title=info.name, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    fps = f"{float(info.fps):.3f}".rstrip("0").rstrip(".") if info.fps else "unknown"
    duration = f"{report.duration_s:.3f} s" if report.duration_s is not None else "unknown"
    spacing = report.keyframes
    keyframes = f"{spacing.count}"
    if spacing.min is not None:
        keyframes += f", every {spacing.min}/{spacing.median:g}/{spacing.max} frames (min/median/max)"
    rows = [
        ("container", info.container),
        ("codec", f"{info.codec} ({info.codec_long})" + (f", {info.profile}" if info.profile else "")),
        ("size", f"{info.width}x{info.height}" + (f" {info.pix_fmt}" if info.pix_fmt else "")),
        ("frame rate", f"{fps} fps"),
        ("duration", duration),
        ("frames", str(report.frame_count)),
        ("first GOP", report.gop_pattern or "-"),
        ("keyframes", keyframes),
        ("B-frames", "yes" if report.b_frames else "no"),
        ("reference frames", str(info.max_refs) if info.max_refs is not None else "unknown"),
        ("bitstream motion vectors", "yes" if report.mvs_seen else "no"),
        ("motion (auto)", "re-encode with libx264" if data["motion_auto"] == "reencode" else str(data["motion_auto"])),
        ("advice", "\n".join(report.advice)),
    ]
    for field, value in rows:
        table.add_row(field, value, end_section=False)
    return table
