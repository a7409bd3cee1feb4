"""Decode a video into RGB frames in display order, each with its block motion vectors.

Motion comes from one of two places (`motion=`):
- 'bitstream': the vectors the codec stored, exported by FFmpeg (`flags2=+export_mvs`, set before
  the first packet) for H.264, MPEG-1/2 and MPEG-4 Part 2; for HEVC read from the same packets by
  arseg's own parser (_hevc_motion.py), which also names each block's reference frame. When that
  parser refuses a stream (a feature it does not read, damaged data) 'auto' switches to the re-encode
  from the next frame on, with a notice saying why; asked for explicitly, the refusal at the start is
  an error and a later one leaves the remaining frames without motion (a warning says so).
- 'reencode': arseg's fallback (fallback.py): the decoded frames are re-encoded with libx264
  (no B-frames, one reference) and that stream's vectors are attached to the original frames.
- 'auto' (the default) takes the bitstream vectors when they chain exactly to the keyframe and the
  re-encode otherwise. The chain is *ambiguous* when a P-frame's vector may point to a frame other
  than the one right before it, which FFmpeg does not say (its `source` is only past/future):
    * B-frames: known from the headers for H.264 and MPEG-4 Part 2. MPEG-1/2 headers cannot say,
      so 'auto' starts with the bitstream vectors and switches to the re-encode at the first
      B-frame decoded (in display order that is the frame right after the I-frame, so no frame's
      motion is lost).
    * several references: H.264's `max_num_ref_frames` > 1 (sequence parameter set). It is an upper
      bound: an encoder may declare more references than it uses; arseg then takes the safe side.
      When no parameter set is found in the headers the count is unknown and taken as one.
    * intra-only streams (every frame an I-frame; H.264 or MPEG-2 at keyint 1) have no vectors at
      all: when the first two frames decoded are both intra, 'auto' switches to the re-encode from
      the second frame on.
  'none' decodes without motion (faster: no export, frame threading).

Known gap: FFmpeg's MPEG-1/2 decoder returns a stream's last picture at flush without its vectors, so
with 'bitstream' motion that one frame has motion None.

Threading: decoding is threaded, but frame threading corrupts exported vectors on streams with
B-frames (reference/PYAV.md), so with export on it is used only when the headers rule B-frames out.

Damaged input: frames are yielded as long as something decodes; at the end a PartialDecodeError
(a VideoDecodeError) says what was wrong (packets that failed, frames FFmpeg marked corrupt, a stream
shorter than its container says). Callers that want to keep the frames catch it after the loop.

Rotation: a display matrix (a phone video's "rotate by 90 degrees") is not applied: frames, their motion
vectors and so the labels keep the stored orientation; a warning is logged.

Timestamps: `pts` are the container's, made strictly increasing (AVI with B-frames reports them out of
order); streams without timestamps (raw .h264) give pts None and time_s = index / fps.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from types import TracebackType

import av
from av.video.frame import PictureType

from arseg_cli.errors import InputError, UnsupportedCodecError, VideoDecodeError
from arseg_cli.video._hevc_motion import HevcStreamMotion, parser_errors, unreadable_reason
from arseg_cli.video._input import Damage, demux_video
from arseg_cli.video._motion_vectors import block_motion
from arseg_cli.video.fallback import ReencodeMotion
from arseg_cli.video.pixels import to_rgb24
from arseg_cli.video.probe import (
    DEFAULT_MAX_PIXELS,
    MotionPlan,
    MotionRequest,
    Source,
    StreamInfo,
    b_frames_reason,
    configure_decoder,
    intra_only_reason,
    open_input,
    plan_motion,
)
from arseg_cli.video.records import BlockMotion, DecodedFrame, PictType

__all__ = ["PartialDecodeError", "VideoReader", "decode_frames", "open_video"]

logger = logging.getLogger(__name__)

_PICT_TYPES = {"I", "P", "B", "S", "SI", "SP", "BI"}
_MOTION_REQUESTS = ("auto", "bitstream", "reencode", "none")


class PartialDecodeError(VideoDecodeError):
    """The input was damaged (corrupt or truncated) after `frames_decoded` frames were yielded."""

    def __init__(self, message: str, frames_decoded: int) -> None:
        super().__init__(message)
        self.frames_decoded = frames_decoded


def decode_frames(
    source: Source,
    *,
    motion: MotionRequest = "auto",
    start: int | None = None,
    end: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Iterator[DecodedFrame]:
    """Decode `source` (a path, '-' for stdin, or a binary file object) into DecodedFrames.

    start/end: display-order frame indices, half-open [start, end); frames before `start` are decoded
    (they are references) but not yielded. `index` stays the position in the whole stream.
    The input is opened (and checked) right away; errors about it raise here, not at the first frame.
    max_pixels: the largest frame decoded (width x height; None or 0: FFmpeg's limit), see open_input.
    """
    reader = VideoReader(source, motion=motion, start=start, end=end, max_pixels=max_pixels)
    return _closing(reader)


def open_video(
    source: Source,
    *,
    motion: MotionRequest = "auto",
    start: int | None = None,
    end: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> VideoReader:
    """Open `source` for decoding: `.info` and `.plan` describe it, iterating yields DecodedFrames."""
    return VideoReader(source, motion=motion, start=start, end=end, max_pixels=max_pixels)


def _closing(reader: VideoReader) -> Iterator[DecodedFrame]:
    with reader:
        yield from reader


class VideoReader:
    """An opened video: `info` (StreamInfo), `plan` (MotionPlan), and one pass of DecodedFrames.

    Use as a context manager, or call `close()`. Iterate once.
    """

    def __init__(
        self,
        source: Source,
        *,
        motion: MotionRequest = "auto",
        start: int | None = None,
        end: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        if motion not in _MOTION_REQUESTS:
            raise InputError(f"motion must be one of {', '.join(_MOTION_REQUESTS)}, got {motion!r}")
        if (start is not None and start < 0) or (end is not None and end < 0):
            raise InputError("start and end are frame indices >= 0")
        self._start, self._end = start or 0, end
        self._requested = motion
        self._opened = open_input(source, max_pixels=max_pixels)
        self._hevc: HevcStreamMotion | None = None
        self._warned_hevc = False
        try:
            self.info: StreamInfo = self._opened.info
            self.plan: MotionPlan = plan_motion(self.info, motion)
            if self.plan.source == "bitstream" and self.info.codec == "hevc":
                self._hevc, self.plan = self._start_hevc(motion == "auto")
            export = self.plan.source == "bitstream"
            configure_decoder(self._opened.stream, self.info, export_mvs=export, max_pixels=max_pixels)
        except BaseException:
            self._opened.close()
            raise
        self._source = self.plan.source
        self._reason = self.plan.reason or f"{self.info.codec} stream"
        self._estimator: ReencodeMotion[DecodedFrame | None] | None = None
        self._previous: av.VideoFrame | None = None
        self._previous_key = False
        self._decoded = 0
        self._damage = Damage()
        self._last_pts: int | None = None
        self._times: tuple[float, float] | None = None  # first and last decoded frame time, seconds

    def _start_hevc(self, auto: bool) -> tuple[HevcStreamMotion | None, MotionPlan]:
        """arseg's HEVC parser on this stream; when it refuses the headers, the re-encode ('auto') or an error."""
        try:
            return HevcStreamMotion(bytes(self._opened.stream.codec_context.extradata or b"")), self.plan
        except parser_errors() as error:
            if not auto:
                raise UnsupportedCodecError(f"{self.info.name}: {unreadable_reason(error)}; use motion 'auto' or 'reencode'") from None
            return None, MotionPlan("reencode", unreadable_reason(error))

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._estimator = None
        self._opened.close()

    def __iter__(self) -> Iterator[DecodedFrame]:
        reached_end = False
        for frame in self._decode():
            index = self._decoded
            self._decoded += 1
            if self._end is not None and index >= self._end:
                reached_end = True
                break
            self._note_time(frame)
            if index == 0 and frame.rotation:
                logger.warning(
                    "%s: the container asks to show the video rotated by %d degrees; arseg does not rotate: "
                    "frames and labels keep the stored orientation", self.info.name, frame.rotation
                )
            intra = _is_intra(frame)  # before the re-encode takes the frame over
            watching = self._source == "bitstream" and self.plan.watch_intra_only
            if watching and index == 1 and intra and self._previous_key:
                self._switch_to_reencode(intra_only_reason(self.info.codec))
            if index >= self._start:
                yield from self._with_motion(self._record(frame, index), frame, intra)
            self._previous, self._previous_key = frame, intra
        if self._estimator is not None:
            yield from _attach(self._estimator.flush())
        if not reached_end:
            self._check_complete()

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Decoder output in display order; failures are counted, not raised (see _check_complete)."""
        stream = self._opened.stream
        hevc = self._hevc
        for packet in demux_video(self._opened, self._damage):
            if hevc is not None:
                hevc.feed(packet)
            try:
                frames = stream.decode(packet)
            except av.FFmpegError:
                self._damage.bad_packets += 1
                continue
            for frame in frames:
                self._damage.corrupt_frames += bool(frame.is_corrupt)
                if hevc is not None:
                    hevc.receive(frame)
                yield frame

    def _record(self, frame: av.VideoFrame, index: int) -> DecodedFrame:
        pts = frame.pts
        if pts is not None and self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + self._pts_step()
        if pts is not None:
            self._last_pts = pts
        time_s: float | None = None
        if pts is not None and self.info.time_base is not None:
            time_s = float(pts * self.info.time_base)
        elif self.info.fps:
            time_s = float(index / self.info.fps)
        name = PictureType(frame.pict_type).name
        pict_type: PictType = name if name in _PICT_TYPES else "?"  # type: ignore[assignment]
        return DecodedFrame(
            index=index,
            pts=pts,
            time_s=time_s,
            rgb=to_rgb24(frame),
            pict_type=pict_type,
            is_stream_keyframe=bool(frame.key_frame),
            motion=None,
        )

    def _pts_step(self) -> int:
        if self.info.fps and self.info.time_base:
            return max(1, round(1 / (self.info.fps * self.info.time_base)))
        return 1

    def _with_motion(self, record: DecodedFrame, frame: av.VideoFrame, intra: bool) -> Iterator[DecodedFrame]:
        if self._source == "none":
            yield record
            return
        if self._source == "bitstream":
            motion = block_motion(frame) if self._hevc is None else self._hevc_motion(frame)
            failure = self._hevc.failure if self._hevc is not None and self._requested == "auto" else None
            if failure is None and not (self.plan.watch_b_frames and _has_b_prediction(record, motion)):
                yield dataclasses.replace(record, motion=motion)
                return
            self._switch_to_reencode(failure or b_frames_reason(self.info.codec))
        if self._estimator is None or (self._estimator.width, self._estimator.height) != (frame.width, frame.height):
            if self._estimator is not None:  # the frame size changed: restart the re-encode
                yield from _attach(self._estimator.flush())
            self._estimator = self._new_estimator(frame, self._reason)
        # Keyframes of the re-encode follow the source's, except in all-intra streams.
        key = intra and not self._previous_key
        yield from _attach(self._estimator.push(frame, record, key=key))

    def _switch_to_reencode(self, reason: str) -> None:
        self._source, self._reason = "reencode", reason
        if self._hevc is not None:
            self._hevc.stop_parsing()

    def _hevc_motion(self, frame: av.VideoFrame) -> BlockMotion | None:
        assert self._hevc is not None
        if self._hevc.failure is not None and not self._warned_hevc and self._requested != "auto":
            self._warned_hevc = True
            logger.warning("%s: %s; later frames have no motion", self.info.name, self._hevc.failure)
        return self._hevc.motion(frame)

    def _new_estimator(self, frame: av.VideoFrame, reason: str) -> ReencodeMotion[DecodedFrame | None]:
        """A re-encoder primed with the previous frame, so that the next frame gets motion to it."""
        estimator: ReencodeMotion[DecodedFrame | None] = ReencodeMotion(frame.width, frame.height, reason=reason)
        previous = self._previous
        if previous is not None and (previous.width, previous.height) == (frame.width, frame.height):
            estimator.push(previous, None, key=True)
        return estimator

    def _check_complete(self) -> None:
        name, count = self.info.name, self._decoded
        if count == 0:
            why = f" ({self._damage.stopped_early})" if self._damage.stopped_early else ""
            raise VideoDecodeError(f"{name}: no video frames could be decoded{why}")
        if count <= self._start:
            raise InputError(f"{name}: start frame {self._start} is past the end of the video ({count} frames)")
        message = self._damage.report(self.info, count, covered_s=self._covered_s())
        if message is not None:
            raise PartialDecodeError(message, count)

    def _note_time(self, frame: av.VideoFrame) -> None:
        time_s = frame.time
        if time_s is not None:
            first = self._times[0] if self._times is not None else time_s
            self._times = (min(first, time_s), max(time_s, self._times[1] if self._times else time_s))

    def _covered_s(self) -> float | None:
        """Seconds from time 0 (or the first frame, when earlier) to the end of the last decoded frame (its
        time plus one nominal frame), by the frames' timestamps; None without them. Counting from 0, not
        from the first frame: some containers (Matroska) measure their duration from 0."""
        if self._times is None or not self.info.fps:
            return None
        return self._times[1] + float(1 / self.info.fps) - min(self._times[0], 0.0)


def _attach(pairs: list[tuple[DecodedFrame | None, BlockMotion | None]]) -> Iterator[DecodedFrame]:
    for record, motion in pairs:
        if record is not None:  # None marks the frame that primed the re-encode
            yield dataclasses.replace(record, motion=motion)


def _is_intra(frame: av.VideoFrame) -> bool:
    return bool(frame.key_frame) or frame.pict_type == PictureType.I


def _has_b_prediction(record: DecodedFrame, motion: BlockMotion | None) -> bool:
    return record.pict_type == "B" or (motion is not None and bool((motion.source > 0).any()))
