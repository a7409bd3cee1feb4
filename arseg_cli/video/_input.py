"""Open a video input and read what its headers say about the video stream.

`open_input` is the one way arseg opens a video: it turns every way an input can be unusable
(missing, a directory, empty, not a video, audio only, an MP4 on a pipe) into an ArsegError with a
one-line message, and describes the stream (StreamInfo) before anything is decoded.

What the headers tell about motion-vector chains (see decode.py for the policy built on it):
- B-frames: `has_b_frames` of the opened decoder is reliable for H.264, HEVC and MPEG-4 Part 2 right
  after opening (measured on mp4, mkv, avi, mpegts and raw H.264; HEVC on mp4, mkv, mpegts and raw
  Annex B, file and pipe). The MPEG-1/2 decoder
  always reports a reorder delay, so there B-frames are only known once one is decoded.
- Several references: FFmpeg's vectors only say "past" or "future", so a P-frame of a stream with
  several reference frames may point 2 or more frames back without saying so. For H.264 the
  sequence parameter set's `max_num_ref_frames` bounds this; it is read from the extradata.
  MPEG-1/2/4 P-frames always use the one previous reference. HEVC's vectors are read by arseg's own
  parser (_hevc_motion.py), which names each block's reference frame, so several references chain
  exactly there.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import av.container
import av.stream
import av.video.stream

from arseg_cli.errors import InputError, InputNotFoundError, UnsupportedCodecError, VideoDecodeError
from arseg_cli.video._h264_sps import max_ref_frames
from arseg_cli.video._hevc_motion import parser_problem
from arseg_cli.video.limits import DEFAULT_MAX_PIXELS

Source = str | os.PathLike[str] | BinaryIO

#: Decoders that export motion vectors as frame side data (FFmpeg source, reference/PYAV.md).
MV_EXPORTING_CODECS = frozenset({"h264", "mpeg1video", "mpeg2video", "mpeg4"})
# Decoders whose `has_b_frames` says right after opening whether the stream has B-frames.
_RELIABLE_REORDER_FLAG = frozenset({"h264", "hevc", "mpeg4"})
_MP4_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"



@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What the container and codec headers say about the video stream (nothing decoded yet).

    name:         the input as shown in messages (a path, or '<stdin>').
    container:    FFmpeg's demuxer name ('mov,mp4,m4a,3gp,3g2,mj2', 'matroska,webm', 'mpegts', 'h264').
    codec:        FFmpeg's codec name ('h264', 'hevc', 'mpeg2video', 'av1', ...).
    width/height: frame size in pixels.
    fps:          nominal frame rate (frames per second) or None when unknown.
    time_base:    unit of the stream's timestamps, seconds.
    frame_count:  frame count from the container's index (mp4, avi); None when the container has none.
    duration_s:   duration in seconds from the headers, None when unknown.
    has_b_frames: True/False when the headers say; None when only decoding will tell (MPEG-1/2).
    max_refs:     H.264 `max_num_ref_frames` from the sequence parameter set; 1 for MPEG-1/2/4;
                  None when unknown (no parameter set in the headers, or another codec).
    seekable:     the input can seek (a regular file), as opposed to a pipe.
    other_streams: the kinds of the container's other streams ('audio', 'subtitle', ...).
    cut_short:    why the file is known to be cut off before decoding anything (an MPEG-TS file that
                  ends inside a transport packet), or None.
    """

    name: str
    container: str
    codec: str
    codec_long: str
    profile: str | None
    width: int
    height: int
    pix_fmt: str | None
    fps: Fraction | None
    time_base: Fraction | None
    frame_count: int | None
    duration_s: float | None
    has_b_frames: bool | None
    max_refs: int | None
    seekable: bool
    other_streams: tuple[str, ...] = ()
    cut_short: str | None = None

    @property
    def exports_mvs(self) -> bool:
        """FFmpeg's decoder for this codec can export motion vectors."""
        return self.codec in MV_EXPORTING_CODECS

    @property
    def bitstream_mvs(self) -> bool:
        """arseg can read this stream's own motion vectors: FFmpeg exports them, or arseg's HEVC parser reads them."""
        return self.exports_mvs or (self.codec == "hevc" and parser_problem() is None)

    def unreadable_mvs(self) -> str:
        """Why `bitstream_mvs` is False (one line, without the input's name)."""
        if self.codec == "hevc":
            return f"hevc stream: {parser_problem()}"
        return f"{self.codec} streams carry no motion vectors that FFmpeg exports"

    def chain_problem(self) -> str | None:
        """Why this stream's motion vectors do not chain exactly to the keyframe, as known up front."""
        if not self.bitstream_mvs:
            return self.unreadable_mvs()
        problems = []
        if self.has_b_frames:
            problems.append("B-frames")
        # HEVC: arseg's parser names each block's reference, so several references chain exactly.
        if self.max_refs is not None and self.max_refs > 1 and self.codec != "hevc":
            problems.append(f"up to {self.max_refs} reference frames")
        if not problems:
            return None
        return f"{self.codec} stream has {' and '.join(problems)}, so its motion vectors do not chain exactly"

    def shortfall(self, frames: int, covered_s: float | None = None) -> str | None:
        """Why `frames` decoded frames are clearly fewer than the headers promise (a truncated file), or None.

        covered_s: seconds the decoded frames reach by their timestamps (from time 0, or the first frame
        when earlier, to the last frame plus one frame at the nominal rate); a shortfall of more than half a frame then means a frame is missing (a stream
        of variable rate whose last frame shows longer than 1.5 nominal frames is flagged too: rare, and
        the safe side). Without timestamps the span is estimated as frames / fps, which variable rate
        defeats, so the allowance is wider: 3 frames or 5 %.
        """
        if self.cut_short is not None:
            return self.cut_short
        if self.frame_count is not None:
            return f"the container lists {self.frame_count} frames" if frames < self.frame_count else None
        if self.duration_s is None or not self.fps:
            return None
        fps = float(self.fps)
        if covered_s is not None:
            allowance = 0.5 / fps
        else:
            covered_s, allowance = frames / fps, max(3 / fps, 0.05 * self.duration_s)
        if self.duration_s - covered_s > allowance:
            return f"the container says {self.duration_s:.2f} s but the frames cover {covered_s:.2f} s"
        return None


@dataclass(slots=True)
class Damage:
    """What went wrong while reading a stream, counted as it happens and reported once at the end."""

    bad_packets: int = 0
    corrupt_frames: int = 0
    stopped_early: str | None = None

    def report(
        self, info: StreamInfo, frames: int, *, check_length: bool = True, covered_s: float | None = None
    ) -> str | None:
        """One line naming every problem (with the frame count that did decode), or None if all is well.
        covered_s: the seconds the decoded frames span (StreamInfo.shortfall)."""
        problems = []
        if self.bad_packets:
            problems.append(f"{self.bad_packets} packet(s) could not be decoded")
        if self.corrupt_frames:
            problems.append(f"{self.corrupt_frames} frame(s) are damaged")
        if self.stopped_early:
            problems.append(f"reading stopped early ({self.stopped_early})")
        shortfall = info.shortfall(frames, covered_s) if check_length else None
        if shortfall:
            problems.append(shortfall)
        if not problems:
            return None
        return f"{info.name}: corrupt or truncated video: {'; '.join(problems)}; {frames} frames were decoded"


@dataclass(slots=True)
class OpenedInput:
    """An opened container and its video stream; close it (or use it as a context manager)."""

    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    info: StreamInfo

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> OpenedInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_input(source: Source, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> OpenedInput:
    """Open `source` (a path, '-' for stdin, or a binary file object) and find its video stream.

    Raises InputNotFoundError (no such path), InputError (a directory, no video stream, a terminal
    on stdin, frames larger than `max_pixels`) or VideoDecodeError (empty, not a format FFmpeg knows,
    truncated index).

    max_pixels: the largest frame (width x height) accepted; None or 0: FFmpeg's own limit only. FFmpeg
    decodes a frame while opening to learn the stream's parameters, so a limit is handed to its
    decoders too (decoder_pixel_limit): a far larger frame is refused by the decoder before its buffer
    is allocated, and the stream is then refused here.
    """
    target, name = _resolve_source(source)
    options = decoder_pixel_limit(max_pixels)
    try:
        # metadata_errors: tags that are not valid UTF-8 (a damaged file) are read with replacement characters
        container = av.open(target, mode="r", options=options, metadata_errors="replace")
    except av.FFmpegError as error:
        raise VideoDecodeError(f"{name}: {_open_failure(error, source)}") from None
    except OSError as error:
        raise InputError(f"{name}: cannot read: {os.strerror(error.errno) if error.errno else error}") from None
    try:
        stream = _video_stream(container, name)
        info = _describe(container, stream, name, seekable=_is_seekable(target))
        _check_size(info, max_pixels)
        if isinstance(target, str) and info.container == "mpegts":
            info = replace(info, cut_short=_ts_cut_short(target))
    except BaseException:
        container.close()
        raise
    return OpenedInput(container, stream, info)


def decoder_pixel_limit(max_pixels: int | None) -> dict[str, str]:
    """FFmpeg decoder options that refuse frames far over `max_pixels` before allocating them.

    FFmpeg compares its limit with the decoder's padded (aligned) size, which exceeds the frame's own
    by a few blocks; so it gets twice the limit, and the exact check is arseg's, on the header's size.
    """
    return {"max_pixels": str(2 * max_pixels)} if max_pixels else {}


def _check_size(info: StreamInfo, max_pixels: int | None) -> None:
    if not max_pixels:
        return
    if info.width * info.height > max_pixels:
        raise InputError(
            f"{info.name}: frames of {info.width}x{info.height} pixels are over `max_pixels` {max_pixels}; "
            "raise `max_pixels` to decode them"
        )
    if info.width == 0 or info.height == 0:  # the decoder refused the first frame: over FFmpeg's or our limit
        raise InputError(
            f"{info.name}: no frame size could be read (a corrupt or cut-short start?), or the frames are over "
            f"`max_pixels` {max_pixels} (a header declaring a huge frame is refused before decoding)"
        )


def demux_video(opened: OpenedInput, damage: Damage) -> Iterator[av.Packet]:
    """The video stream's packets, in decode order. A demuxing failure ends them and is recorded in
    `damage`, except an MP4 on a pipe failing before its first packet: that raises VideoDecodeError."""
    packets = opened.container.demux(opened.stream)
    count = 0
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as error:
            hint = pipe_mp4_hint(opened.info) if count == 0 else None
            if hint is not None:
                raise VideoDecodeError(hint) from None
            damage.stopped_early = error.strerror or type(error).__name__
            return
        count += 1
        yield packet


def pipe_mp4_hint(info: StreamInfo) -> str | None:
    """The message for an MP4 read from a pipe whose index is at the end (FFmpeg cannot read it)."""
    if info.seekable or info.container != _MP4_FAMILY:
        return None
    return (
        f"{info.name}: an MP4 read from a pipe needs its index first (faststart or fragmented MP4); "
        "use a seekable file, or pipe MPEG-TS or Matroska instead"
    )


def _resolve_source(source: Source) -> tuple[str | BinaryIO, str]:
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if not text:
            raise InputError("the input path is empty; give a video file, or '-' for standard input")
        if text == "-":
            stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
            if hasattr(stdin, "isatty") and stdin.isatty():
                raise InputError("'-' reads a video from standard input, but stdin is a terminal; pipe a video in")
            if hasattr(stdin, "peek") and not stdin.peek(1):  # peek waits for data but consumes none
                raise VideoDecodeError("<stdin>: standard input is empty; pipe a video in")
            return stdin, "<stdin>"  # type: ignore[return-value]
        return _check_path(Path(text)), text
    return source, getattr(source, "name", None) or "<stream>"


def _check_path(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputNotFoundError(f"{path}: no such file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read: {os.strerror(error.errno) if error.errno else error}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a directory, not a video file")
    if stat.S_ISREG(mode) and path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: empty file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    return str(path)


def _open_failure(error: av.FFmpegError, source: Source) -> str:
    if isinstance(error, av.InvalidDataError):
        if source == "-":
            return "not a video stream FFmpeg can read from a pipe (MPEG-TS, Matroska, raw H.264 work)"
        return "not a video FFmpeg can read (unknown format, or a truncated or corrupt file)"
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, EOFError):
        return "the file ends before any video data (empty or truncated)"
    return f"cannot open: {error.strerror or error}"


def _video_stream(container: av.container.InputContainer, name: str) -> av.video.stream.VideoStream:
    candidates = [
        stream
        for stream in container.streams.video
        if not (stream.disposition & av.stream.Disposition.attached_pic)
    ]
    if not candidates:
        kinds = sorted({stream.type for stream in container.streams})
        what = f"only {', '.join(kinds)} streams" if kinds else "no streams"
        raise InputError(f"{name}: no video stream ({what})")
    best = container.streams.best("video")
    return best if best in candidates else candidates[0]


def _is_seekable(target: str | BinaryIO) -> bool:
    if isinstance(target, str):
        return stat.S_ISREG(os.stat(target).st_mode)
    try:
        return bool(target.seekable())
    except (AttributeError, OSError, ValueError):
        return False


# MPEG-TS packet sizes: plain, with a 4-byte timecode (M2TS), with 16 bytes of error correction.
_TS_PACKET_SIZES = (188, 192, 204)


def _ts_cut_short(path: str) -> str | None:
    """A transport-stream file is a whole number of packets; one that is not was cut off."""
    size = os.path.getsize(path)
    if all(size % packet for packet in _TS_PACKET_SIZES):
        return f"the file ends inside a transport packet ({size} bytes is not a whole number of packets)"
    return None


def _describe(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, name: str, *, seekable: bool
) -> StreamInfo:
    context = stream.codec_context
    if context is None:  # FFmpeg has no decoder for the stream's codec id (or a damaged header names none)
        raise UnsupportedCodecError(f"{name}: the video stream's codec is unknown to FFmpeg (or the file is damaged)")
    codec = context.codec.canonical_name  # "av1", not the decoder's name "libdav1d"
    rate = stream.guessed_rate or stream.average_rate
    fps = Fraction(rate) if rate else None
    duration_s = None
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None and len(container.streams) == 1:
        duration_s = container.duration / av.time_base
    if codec in _RELIABLE_REORDER_FLAG:
        has_b: bool | None = bool(context.has_b_frames)
    else:
        has_b = None if context.has_b_frames else False
    if codec == "h264":
        max_refs = max_ref_frames(bytes(context.extradata or b""))
    elif codec in MV_EXPORTING_CODECS:
        max_refs = 1
    else:
        max_refs = None
    return StreamInfo(
        name=name,
        container=container.format.name,
        codec=codec,
        codec_long=context.codec.long_name,
        profile=context.profile,
        width=int(context.width),
        height=int(context.height),
        pix_fmt=context.pix_fmt,
        fps=fps,
        time_base=Fraction(stream.time_base) if stream.time_base is not None else None,
        frame_count=int(stream.frames) if stream.frames else None,
        duration_s=duration_s,
        has_b_frames=has_b,
        max_refs=max_refs,
        seekable=seekable,
        other_streams=tuple(other.type for other in container.streams if other is not stream),
    )
