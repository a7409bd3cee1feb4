"""Re-encode any video into the layout AR-Seg's motion needs: H.264, no B-frames, one reference,
a keyframe every L frames (what `arseg encode` does).

Frame rate and timestamps of the source are kept where the output container can store them (MP4,
MOV, Matroska, MPEG-TS); AVI and raw .h264 get evenly spaced frames at the source's rate. Only the
video stream is written (audio and subtitles are dropped, and a log line says so).

The output appears whole under its final name (outputs.AtomicFile); `-` writes MPEG-TS to stdout.
A damaged input (PartialDecodeError) still leaves the frames that decoded in a *new* output file (a
salvage), and the error is raised again once it is complete; an existing file (`force`) is left as it
was, since a failed run never replaces a user's file.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av

from arseg_cli.errors import OptionsError
from arseg_cli.atomic_files import AtomicFile, is_stdout, os_errors_as_output_errors
from arseg_cli.video.decode import PartialDecodeError, VideoReader
from arseg_cli.video.probe import Source, StreamInfo
from arseg_cli.video.x264 import X264_PRESETS, H264Writer
from arseg_cli.scale_interval import check_keyframe_interval

logger = logging.getLogger(__name__)

# Containers that cannot carry arbitrary timestamps: frames are numbered at the nominal rate instead.
_NO_TIMESTAMPS = frozenset({".avi", ".h264", ".264"})
_RAW_H264 = frozenset({".h264", ".264"})
# Containers an H.264 stream is written to, by file extension.
OUTPUT_CONTAINERS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".ts", ".m2ts", ".mts", ".avi"}) | _RAW_H264
_DEFAULT_FPS = Fraction(25)

ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True)
class EncodeSettings:
    """libx264 settings for `transcode`: keyframe interval (frames), then CRF or a bitrate (bit/s)."""

    keyint: int = 12
    crf: float | None = 18
    bitrate: int | None = None
    preset: str = "medium"

    def __post_init__(self) -> None:
        check_keyframe_interval(self.keyint)
        if self.crf is not None and self.bitrate is not None:
            raise OptionsError("give either `crf` or `bitrate`, not both")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise OptionsError(f"`crf` must be between 0 and 51, got {self.crf:g}")
        if self.bitrate is not None and self.bitrate <= 0:
            raise OptionsError(f"`bitrate` must be positive, got {self.bitrate}")
        if self.preset not in X264_PRESETS:
            raise OptionsError(f"unknown `preset` {self.preset!r}: use one of {', '.join(X264_PRESETS)}")


@dataclass(frozen=True, slots=True)
class TranscodeResult:
    """What was written: `frames` frames to `output` ('-' for stdout) at `fps`."""

    output: str
    frames: int
    fps: Fraction
    width: int
    height: int


def transcode(
    source: Source,
    output: str | Path,
    settings: EncodeSettings,
    *,
    force: bool = False,
    on_frame: ProgressCallback | None = None,
) -> TranscodeResult:
    """Re-encode `source` to `output` (container from the extension; '-' = MPEG-TS on stdout).

    `on_frame(frames_done, total_or_None)` is called after each frame. Raises the input errors of
    `decode_frames`, OutputExistsError (output exists, no `force`), OptionsError (output is the
    input, or an extension no container matches) and OutputError (writing failed).
    """
    _refuse_same_file(source, output)
    _check_container(output)
    with VideoReader(source, motion="none") as reader:
        info = reader.info
        if is_stdout(output):
            frames, damage = _encode(reader, sys.stdout.buffer, settings, "mpegts", True, on_frame)
            if damage is not None:
                damage = PartialDecodeError(f"{damage}; they were written to stdout", damage.frames_decoded)
        else:
            frames, damage = _encode_to_file(reader, Path(output), settings, force=force, on_frame=on_frame)
    if damage is not None:
        raise PartialDecodeError(str(damage), damage.frames_decoded)
    if info.other_streams:  # said after success, so that a failure stays a one-line message
        logger.info("only the video stream was written (%s dropped)", ", ".join(info.other_streams))
    return TranscodeResult(str(output), frames, info.fps or _DEFAULT_FPS, info.width, info.height)


def _encode_to_file(
    reader: VideoReader, path: Path, settings: EncodeSettings, *, force: bool, on_frame: ProgressCallback | None
) -> tuple[int, PartialDecodeError | None]:
    suffix = path.suffix.lower()
    container_format = "h264" if suffix in _RAW_H264 else None
    replacing = path.exists() or path.is_symlink()
    target = AtomicFile(path, force=force)
    try:
        with os_errors_as_output_errors(path):
            frames, damage = _encode(
                reader, str(target.temp), settings, container_format, suffix not in _NO_TIMESTAMPS, on_frame
            )
    except BaseException:
        target.discard()
        raise
    if damage is not None and replacing:
        target.discard()
        return frames, PartialDecodeError(f"{damage}; {path} was left unchanged", damage.frames_decoded)
    target.commit()
    if damage is not None:
        return frames, PartialDecodeError(f"{damage}; they were written to {path}", damage.frames_decoded)
    return frames, None


def _encode(
    reader: VideoReader,
    target: str | BinaryIO,
    settings: EncodeSettings,
    container_format: str | None,
    keep_pts: bool,
    on_frame: ProgressCallback | None,
) -> tuple[int, PartialDecodeError | None]:
    """Encode every decoded frame; returns the count and the input's damage report, if any.

    The writer opens at the first frame: only then is it known whether the source has timestamps
    (kept in the source's time base) or not (frames numbered at the nominal rate).
    """
    info = reader.info
    writer: H264Writer | None = None
    try:
        for frame in reader:
            if writer is None:
                keep_pts = keep_pts and frame.pts is not None and info.time_base is not None
                writer = _writer(target, info, settings, container_format, info.time_base if keep_pts else None)
            pts = frame.pts if keep_pts and frame.pts is not None else _nominal_pts(frame.index, info, keep_pts)
            writer.write(frame.rgb, pts)
            if on_frame is not None:
                on_frame(writer.frames_written, info.frame_count)
    except PartialDecodeError as error:
        damage: PartialDecodeError | None = error
    except BaseException as error:
        if writer is not None and _is_broken_pipe(error):
            # Flushing into a closed pipe would only raise PyAV's wrapper of the same BrokenPipeError.
            writer.abort()
            if isinstance(error, BrokenPipeError):
                raise
            raise BrokenPipeError(str(error)) from None
        if writer is not None:
            writer.close()
        raise
    else:
        damage = None
    if writer is not None:
        try:
            writer.close()
        except av.FFmpegError as error:
            if _is_broken_pipe(error):
                raise BrokenPipeError(str(error)) from None
            raise
    return (writer.frames_written if writer is not None else 0), damage


def _writer(
    target: str | BinaryIO,
    info: StreamInfo,
    settings: EncodeSettings,
    container_format: str | None,
    time_base: Fraction | None,
) -> H264Writer:
    try:
        return H264Writer(
            target,
            info.width,
            info.height,
            info.fps or _DEFAULT_FPS,
            keyint=settings.keyint,
            crf=settings.crf,
            bitrate=settings.bitrate,
            preset=settings.preset,
            format=container_format,
            time_base=time_base,
        )
    except ValueError as error:  # PyAV raises ValueError subclasses for unknown formats and bad options
        raise OptionsError(f"cannot write that output: {getattr(error, 'strerror', None) or error}") from None


def _nominal_pts(index: int, info: StreamInfo, source_time_base: bool) -> int:
    """Frame `index` at the nominal rate, in the source's time base or in frames."""
    if source_time_base and info.time_base:
        return round(index / ((info.fps or _DEFAULT_FPS) * info.time_base))
    return index


def _is_broken_pipe(error: BaseException) -> bool:
    """A BrokenPipeError, or PyAV's wrapper of one raised in its write callback."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, BrokenPipeError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _check_container(output: str | Path) -> None:
    if is_stdout(output):
        return
    suffix = Path(output).suffix.lower()
    if suffix not in OUTPUT_CONTAINERS:
        known = ", ".join(sorted(OUTPUT_CONTAINERS))
        raise OptionsError(f"{output}: cannot tell the container from {suffix or 'a name without extension'}; use {known}")


def _refuse_same_file(source: Source, output: str | Path) -> None:
    if is_stdout(output) or not isinstance(source, (str, os.PathLike)) or os.fspath(source) == "-":
        return
    try:
        same = os.path.samefile(source, output)
    except OSError:
        return
    if same:
        raise OptionsError(f"the output {output} is the input; write to another file")
