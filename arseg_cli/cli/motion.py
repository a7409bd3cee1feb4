"""`arseg motion INPUT -o DIR`: dense flow from the stream's motion vectors, one file per frame."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from arseg_cli.choices import MotionMethod
from arseg_cli.cli._app import console, frame_progress

if TYPE_CHECKING:
    from arseg_cli.video.flowio import MotionExport, MotionExportResult


class FlowFormatChoice(str, Enum):
    flo = "flo"
    npy = "npy"


def motion_command(
    input: str = typer.Argument(..., help="Video file, or '-' for standard input (MPEG-TS, Matroska, raw H.264)."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for the flow files (new or empty)."),
    keyframe_interval: int | None = typer.Option(
        None,
        "--to-key",
        min=1,
        metavar="L",
        help="Accumulate the flow to a keyframe every L frames (and at every I-frame); "
        "default: each frame's flow to the previous frame.",
    ),
    fmt: FlowFormatChoice = typer.Option(
        FlowFormatChoice.flo, "--format", help="Middlebury .flo (interleaved u, v float32) or NumPy .npy (2 x H x W)."
    ),
    png: bool = typer.Option(False, "--png", help="Also write a colour-wheel picture of each flow."),
    motion: MotionMethod = typer.Option(
        MotionMethod.AUTO,
        "--motion",
        help="Motion vectors from the bitstream, from a libx264 re-encode, or auto "
        "(the bitstream when its vectors chain exactly, else the re-encode).",
    ),
    force: bool = typer.Option(False, "--force", help="Write into DIR even if it is not empty (same names replaced)."),
) -> None:
    """Write the backward flow of every frame: pixel p comes from p + flow(p) in the reference frame.

    Files are named by frame index (000000.flo, ...); keyframes and intra frames get zero flow.
    docs/MOTION.md describes the conventions, B-frames and several references.
    """
    from arseg_cli.video.flowio import MotionExport, export_motion

    settings = MotionExport(keyframe_interval=keyframe_interval, fmt=fmt.value, png=png, motion=motion.value)
    with frame_progress("motion") as on_frame:
        result = export_motion(input, output, settings, force=force, on_frame=on_frame)
    console.print(_summary(result, settings), highlight=False, soft_wrap=True)


def _summary(result: MotionExportResult, settings: MotionExport) -> str:
    from arseg_cli.video.flowio import INDEX_NAME

    target = f"to the keyframe (every {settings.keyframe_interval} frames)" if settings.keyframe_interval else "to the previous frame"
    source = "libx264 re-encode" if result.motion == "reencode" else "bitstream"
    return (
        f"wrote {result.frames} .{settings.fmt} flows {target} to {result.directory} "
        f"({result.keyframes} keyframes with zero flow, {result.exact}/{result.frames} exact, "
        f"vectors from the {source}; "
        f"index in {INDEX_NAME})"
    )
