"""`arseg encode INPUT -o OUT`: re-encode a video into the layout AR-Seg's motion needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from arseg_cli.cli._app import console, frame_progress

if TYPE_CHECKING:
    from arseg_cli.video.transcode import EncodeSettings, TranscodeResult

_DEFAULT_CRF = 18.0


def encode_command(
    input: str = typer.Argument(..., help="Video file, or '-' for standard input (MPEG-TS, Matroska, raw H.264)."),
    output: str = typer.Option(
        ..., "--output", "-o", help="Output file (.mp4, .mkv, .mov, .ts, .avi, .h264), or '-' for MPEG-TS on stdout."
    ),
    keyint: int = typer.Option(12, "--keyint", min=1, help="Keyframe interval L in frames (AR-Seg's spacing)."),
    crf: float | None = typer.Option(
        None, "--crf", min=0, max=51, help="Constant quality, 0 (lossless) to 51; default 18 unless --bitrate is given."
    ),
    bitrate: int | None = typer.Option(
        None, "--bitrate", min=1, help="Target bitrate in bits per second, instead of --crf."
    ),
    preset: str = typer.Option("medium", "--preset", help="libx264 preset (ultrafast ... veryslow)."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
) -> None:
    """Re-encode any video with libx264: no B-frames, one reference, a keyframe every KEYINT frames.

    Frame rate and timestamps are kept; only the video stream is written. Motion vectors of the
    result chain exactly to each keyframe, so `arseg` needs no re-encode of its own later.
    """
    from arseg_cli.video.transcode import EncodeSettings, transcode

    if crf is None and bitrate is None:
        crf = _DEFAULT_CRF
    settings = EncodeSettings(keyint=keyint, crf=crf, bitrate=bitrate, preset=preset)
    with frame_progress("encoding") as on_frame:
        result = transcode(input, output, settings, force=force, on_frame=on_frame)
    console.print(_summary(result, settings), highlight=False, soft_wrap=True)


def _summary(result: TranscodeResult, settings: EncodeSettings) -> str:
    where = "stdout" if result.output == "-" else result.output
    quality = f"{settings.bitrate} bit/s" if settings.bitrate is not None else f"crf {settings.crf:g}"
    return (
        f"wrote {result.frames} frames ({result.width}x{result.height}, {float(result.fps):g} fps) to {where}: "
        f"H.264, keyframe every {settings.keyint}, no B-frames, one reference, {quality}"
    )
