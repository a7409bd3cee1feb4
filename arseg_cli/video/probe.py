"""Describe a video for `arseg info`, and decide where its motion comes from.

`plan_motion` turns a StreamInfo (what the headers say, see _input.py) and the user's request into a
MotionPlan; `configure_decoder` sets the decoder up for it; `probe_video` scans the stream (packets
for the frame count and keyframe spacing, the first GOP decoded for picture types and vectors) and
gives the report `arseg info` prints, with advice.
"""

from __future__ import annotations

import dataclasses
import shlex
import statistics
from dataclasses import dataclass
from typing import Literal

import av
import av.video.stream
from av.video.frame import PictureType

from arseg_cli.errors import UnsupportedCodecError, VideoDecodeError
from arseg_cli.video._hevc_motion import HevcStreamMotion, has_inter_units, parser_errors, unreadable_reason
from arseg_cli.video._input import (
    DEFAULT_MAX_PIXELS,
    MV_EXPORTING_CODECS,
    Damage,
    OpenedInput,
    Source,
    StreamInfo,
    decoder_pixel_limit,
    demux_video,
    open_input,
    pipe_mp4_hint,
)
from arseg_cli.video.limits import DEFAULT_SCAN_FRAMES

__all__ = [
    "DEFAULT_MAX_PIXELS", "MV_EXPORTING_CODECS", "MotionPlan", "MotionRequest", "OpenedInput", "Source", "StreamInfo", "VideoReport",
    "b_frames_reason", "configure_decoder", "intra_only_reason", "open_input", "pipe_mp4_hint", "plan_motion",
    "probe_video",
]

MotionRequest = Literal["auto", "bitstream", "reencode", "none"]
MotionSource = Literal["bitstream", "reencode", "none"]


@dataclass(frozen=True, slots=True)
class MotionPlan:
    """Where the motion of each frame will come from, and why.

    source: 'bitstream' (the stream's own vectors), 'reencode' (libx264 re-encode, see fallback.py)
            or 'none'.
    reason: one line saying why the re-encode is used (None when it is not).
    watch_b_frames: in 'auto' mode with bitstream vectors, switch to the re-encode at the first
            B-frame decoded (for codecs whose headers cannot say, MPEG-1/2).
    watch_intra_only: in 'auto' mode with bitstream vectors, switch to the re-encode when the first
            two frames are both intra (an intra-only stream has no vectors).
    """

    source: MotionSource
    reason: str | None = None
    watch_b_frames: bool = False
    watch_intra_only: bool = False


def plan_motion(info: StreamInfo, requested: MotionRequest) -> MotionPlan:
    """Decide the motion source for `requested` ('auto', 'bitstream', 'reencode', 'none').

    'auto' uses the bitstream vectors when they chain exactly (no B-frames, one reference; for HEVC,
    read by arseg's parser, any number of references) and the re-encode otherwise; 'bitstream' raises
    UnsupportedCodecError for codecs without vectors arseg can read.
    """
    if requested == "none":
        return MotionPlan("none")
    if requested == "reencode":
        return MotionPlan("reencode", f"{info.codec} stream: re-encoding was asked for")
    if requested == "bitstream":
        if not info.bitstream_mvs:
            raise UnsupportedCodecError(f"{info.name}: {info.unreadable_mvs()}; use motion 'auto' or 'reencode'")
        return MotionPlan("bitstream")
    if requested != "auto":
        raise ValueError(f"unknown motion request {requested!r}")
    problem = info.chain_problem()
    if problem is not None:
        return MotionPlan("reencode", problem)
    return MotionPlan("bitstream", watch_b_frames=info.has_b_frames is None, watch_intra_only=True)


def b_frames_reason(codec: str) -> str:
    """Why 'auto' switches to the re-encode when B-frames show up only once decoded."""
    return f"{codec} stream has B-frames, so its motion vectors do not chain exactly"


def intra_only_reason(codec: str) -> str:
    """Why 'auto' switches to the re-encode when the first two frames are intra."""
    return f"{codec} stream begins with two intra frames (intra-only?), so it has no motion vectors"


def configure_decoder(
    stream: av.video.stream.VideoStream,
    info: StreamInfo,
    *,
    export_mvs: bool,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> None:
    """Set the decoder up before its first packet: MV export, the largest frame it may allocate
    (`max_pixels`, None or 0: FFmpeg's own limit) and the safe threading mode.

    Frame threading corrupts exported vectors on streams with B-frames (reference/PYAV.md), so with
    export on it is used only when the headers rule B-frames out; otherwise slice threading. HEVC's
    vectors come from arseg's parser, not from the decoder: no export.
    """
    context = stream.codec_context
    export_mvs = export_mvs and info.exports_mvs
    options = {"flags2": "+export_mvs"} if export_mvs else {}
    context.options = options | decoder_pixel_limit(max_pixels)
    context.thread_count = 0
    context.thread_type = "FRAME" if (not export_mvs or info.has_b_frames is False) else "SLICE"


# Cost of the re-encode fallback on top of decoding, as `arseg info` states it (benchmarks/bench_decode.py;
# figures in docs/BENCHMARKS.md, "Decoding with motion-vector export").
_REENCODE_COST = "about 6-10 ms per 960x720 frame"


@dataclass(frozen=True, slots=True)
class KeyframeSpacing:
    """Frames from one keyframe to the next (decode order): min, median, max; count = keyframes."""

    count: int
    min: int | None
    median: float | None
    max: int | None


@dataclass(frozen=True, slots=True)
class VideoReport:
    """What `arseg info` says about a video.

    info:          the headers (StreamInfo).
    frame_count:   coded frames, counted by demuxing the whole stream.
    duration_s:    from the first to past the last timestamp (or frame_count / fps), seconds.
    gop_pattern:   picture types of the first GOP in display order ('IPPP...'), cut at the scan limit.
    keyframes:     keyframe spacing over the whole stream.
    b_frames:      B-frames declared by the headers or seen in the scanned frames.
    mvs_seen:      motion vectors were exported for the scanned P/B frames.
    motion:        what `motion='auto'` will do.
    advice:        lines for the user.
    """

    info: StreamInfo
    frame_count: int
    duration_s: float | None
    gop_pattern: str
    keyframes: KeyframeSpacing
    b_frames: bool
    mvs_seen: bool
    motion: MotionPlan
    advice: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (fractions as floats, None as null)."""
        info = self.info
        return {
            "input": info.name,
            "container": info.container,
            "codec": info.codec,
            "codec_long": info.codec_long,
            "profile": info.profile,
            "width": info.width,
            "height": info.height,
            "pix_fmt": info.pix_fmt,
            "fps": float(info.fps) if info.fps else None,
            "fps_exact": str(info.fps) if info.fps else None,
            "duration_s": self.duration_s,
            "frame_count": self.frame_count,
            "gop_pattern": self.gop_pattern,
            "keyframes": {
                "count": self.keyframes.count,
                "spacing_min": self.keyframes.min,
                "spacing_median": self.keyframes.median,
                "spacing_max": self.keyframes.max,
            },
            "b_frames": self.b_frames,
            "max_ref_frames": info.max_refs,
            "bitstream_mvs": self.mvs_seen,
            "motion_auto": self.motion.source,
            "motion_reason": self.motion.reason,
            "advice": list(self.advice),
        }


def probe_video(source: Source, *, scan_frames: int = DEFAULT_SCAN_FRAMES) -> VideoReport:
    """Describe `source`: demux every packet (frame count, keyframes, timestamps), decode the first
    `scan_frames` frames with MV export (GOP pattern, B-frames, vectors). Raises like `open_input`,
    and VideoDecodeError when the stream holds no frame."""
    with open_input(source) as opened:
        info = opened.info
        configure_decoder(opened.stream, info, export_mvs=info.exports_mvs)
        scan = _Scan(scan_frames)
        if info.codec == "hevc" and info.bitstream_mvs:
            scan.start_hevc(bytes(opened.stream.codec_context.extradata or b""))
        _demux_all(opened, scan)
    if scan.packets == 0:
        raise VideoDecodeError(f"{info.name}: no video frames in the stream")
    damage = scan.damage.report(info, scan.packets, covered_s=scan.covered_s(info))
    if damage is not None:
        raise VideoDecodeError(damage)
    b_frames = bool(info.has_b_frames) or "B" in scan.types
    motion = plan_motion(info, "auto")
    if scan.hevc_failure is not None and motion.source == "bitstream":
        motion = MotionPlan("reencode", scan.hevc_failure)
    elif motion.watch_b_frames and b_frames:
        motion = MotionPlan("reencode", b_frames_reason(info.codec))
    elif motion.watch_intra_only and scan.types[:2] == ["I", "I"]:
        motion = MotionPlan("reencode", intra_only_reason(info.codec))
    report = VideoReport(
        info=info,
        frame_count=scan.packets,
        duration_s=scan.duration_s(info),
        gop_pattern=_first_gop(scan.types, scan.complete),
        keyframes=_spacing(scan.key_packets),
        b_frames=b_frames,
        mvs_seen=scan.mv_frames > 0,
        motion=motion,
        advice=(),
    )
    return dataclasses.replace(report, advice=tuple(_advice(report)))


class _Scan:
    """Accumulates what the packets and the first decoded frames show."""

    def __init__(self, scan_frames: int) -> None:
        self.scan_frames = scan_frames
        self.packets = 0
        self.key_packets: list[int] = []
        self.types: list[str] = []
        self.mv_frames = 0
        self.damage = Damage()
        self.complete = False  # every packet was decoded
        self.first_pts: int | None = None
        self.end_pts: int | None = None
        self.hevc: HevcStreamMotion | None = None  # arseg's HEVC parser, reading the scanned packets
        self.hevc_failure: str | None = None

    def start_hevc(self, extradata: bytes) -> None:
        try:
            self.hevc = HevcStreamMotion(extradata)
        except parser_errors() as error:
            self.hevc_failure = unreadable_reason(error)

    def parse(self, packet: av.Packet) -> None:
        """Read an HEVC packet's vectors with arseg's parser (before the decoder gets the packet)."""
        if self.hevc is None:
            return
        picture = self.hevc.feed(packet)
        self.mv_frames += picture is not None and has_inter_units(picture)
        self.hevc_failure = self.hevc.failure

    def add_packet(self, packet: av.Packet) -> None:
        if packet.is_keyframe:
            self.key_packets.append(self.packets)
        self.packets += 1
        if packet.pts is not None:
            self.first_pts = packet.pts if self.first_pts is None else min(self.first_pts, packet.pts)
            end = packet.pts + (packet.duration or 0)
            self.end_pts = end if self.end_pts is None else max(self.end_pts, end)

    def add_frame(self, frame: av.VideoFrame) -> None:
        self.damage.corrupt_frames += bool(frame.is_corrupt)
        self.types.append(PictureType(frame.pict_type).name.replace("NONE", "?"))
        if frame.side_data.get("MOTION_VECTORS") is not None:
            self.mv_frames += 1

    def covered_s(self, info: StreamInfo) -> float | None:
        """Seconds from time 0 (or the first packet, when earlier) to the end of the last packet, None
        without timestamps (as VideoReader's: some containers measure their duration from 0)."""
        if self.first_pts is None or self.end_pts is None or not info.time_base or self.end_pts <= self.first_pts:
            return None
        return float((self.end_pts - min(self.first_pts, 0)) * info.time_base)

    def duration_s(self, info: StreamInfo) -> float | None:
        if self.first_pts is not None and self.end_pts is not None and info.time_base and self.end_pts > self.first_pts:
            return float((self.end_pts - self.first_pts) * info.time_base)
        if info.fps:
            return float(self.packets / info.fps)
        return info.duration_s


def _demux_all(opened: OpenedInput, scan: _Scan) -> None:
    stream = opened.stream
    for packet in demux_video(opened, scan.damage):
        if packet.size > 0:
            scan.add_packet(packet)
        if len(scan.types) < scan.scan_frames:
            scan.parse(packet)
            try:
                for frame in stream.decode(packet):
                    scan.add_frame(frame)
            except av.FFmpegError:
                scan.damage.bad_packets += 1
            if packet.size == 0:
                scan.complete = True


def _first_gop(types: list[str], complete: bool) -> str:
    """Picture types from the first frame up to (not including) the next I-frame."""
    for position in range(1, len(types)):
        if types[position] == "I":
            return "".join(types[:position])
    return "".join(types) + ("" if complete else "...")


def _spacing(key_packets: list[int]) -> KeyframeSpacing:
    gaps = [after - before for before, after in zip(key_packets, key_packets[1:])]
    if not gaps:
        return KeyframeSpacing(len(key_packets), None, None, None)
    return KeyframeSpacing(len(key_packets), min(gaps), float(statistics.median(gaps)), max(gaps))


def _advice(report: VideoReport) -> list[str]:
    info = report.info
    name = "INPUT" if info.name.startswith("<") else shlex.quote(info.name)
    command = f"arseg encode {name} -o OUT.mp4 --keyint 12"
    if report.motion.source == "reencode":
        return [
            f"{report.motion.reason}: arseg estimates motion by re-encoding on every run ({_REENCODE_COST}).",
            f"For exact motion at no cost, re-encode once: `{command}` "
            "(no B-frames, one reference, a keyframe every 12 frames).",
        ]
    if not report.mvs_seen and info.bitstream_mvs and report.frame_count > 1:
        return [f"no motion vectors were exported from the frames scanned; arseg will re-encode ({_REENCODE_COST})"]
    lines = ["The stream's own motion vectors chain exactly to the keyframe: no re-encode needed."]
    spacing = report.keyframes
    if spacing.min is not None and spacing.min != spacing.max:
        lines.append(
            f"Keyframes are irregular ({spacing.min}-{spacing.max} frames apart); `{command}` makes them regular."
        )
    return lines
