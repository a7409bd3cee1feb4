"""Motion for streams whose own vectors are missing or ambiguous: re-encode with libx264, read its vectors.

HEVC, VP9, AV1, MJPEG and intra-only streams carry no vectors FFmpeg exports, and H.264 with B-frames
or several references has vectors that do not chain exactly to the keyframe. For these, the decoded
frames are re-encoded in process with libx264 (ultrafast, no B-frames, one reference, no scene-cut
keyframes) and that bitstream is decoded at once with MV export: every P-frame of the re-encode
refers to the frame right before it, so its vectors chain exactly. The vectors are x264's estimate
of the motion, not the original stream's. Cost at 960x720: 5-10 ms per frame on top of decoding (~6 ms
of CPU), with 99.97% of background blocks within 0.5 px of a known pan (benchmarks/bench_decode.py;
reference/PYAV.md measured 8.8 ms in total and 99.6% of interior 16 px cells).

Streaming: the encoder and the decoder run in lock step; only the few frames inside the encoder's
latency are held, so memory does not grow with the length of the video.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import deque
from fractions import Fraction
from typing import Generic, TypeVar

import av
import numpy as np
from av.video.frame import PictureType

from arseg_cli.video._motion_vectors import block_motion
from arseg_cli.video.pixels import to_rgb24, to_yuv420p
from arseg_cli.video.records import BlockMotion

logger = logging.getLogger(__name__)

Token = TypeVar("Token")

# x264 for motion only: P-frames on the previous frame, keyframes only where the caller asks, and
# no lookahead (which would only add latency).
_X264_PARAMS = "bframes=0:ref=1:keyint=infinite:scenecut=0:rc-lookahead=0:sync-lookahead=0"
_PRESET = "ultrafast"
_CRF = "18"
# The notice reports the cost measured on this many frames (the first, an I-frame, excluded).
_NOTICE_AFTER = 8


class ReencodeMotion(Generic[Token]):
    """Estimates block motion of a frame sequence by re-encoding it with libx264.

    Push frames in display order with a token of your choice (e.g. the record to attach the
    motion to); `push` and `flush` return `(token, motion)` pairs in push order as soon as the
    re-encode has produced them. `motion` is None for frames the re-encode coded as intra: the
    first frame and those pushed with `key=True` (keep them aligned with the source's keyframes so
    that chains restart where the source's do).

    width/height: frame size in pixels (odd sizes are padded by one edge row/column for yuv420p).
    reason:       why the re-encode is used (names the codec), for the one notice it logs.
    """

    def __init__(self, width: int, height: int, *, reason: str) -> None:
        self.width, self.height = int(width), int(height)
        self._coded_w, self._coded_h = self.width + self.width % 2, self.height + self.height % 2
        self._reason = reason
        self._encoder = av.CodecContext.create("libx264", "w")
        self._encoder.width, self._encoder.height = self._coded_w, self._coded_h
        self._encoder.pix_fmt = "yuv420p"
        self._encoder.time_base = Fraction(1, 25)
        self._encoder.thread_count = 0
        # One slice per frame whatever the core count (reference/PYAV.md).
        self._encoder.thread_type = "FRAME"
        self._encoder.options = {"preset": _PRESET, "crf": _CRF, "x264-params": _X264_PARAMS}
        self._decoder = av.CodecContext.create("h264", "r")
        self._decoder.options = {"flags2": "+export_mvs"}
        self._decoder.thread_count = 0
        self._decoder.thread_type = "FRAME"  # safe: the re-encode has no B-frames
        self._pending: deque[Token] = deque()
        self._pushed = 0
        self._seconds: list[float] = []
        self._noticed = False

    @property
    def ms_per_frame(self) -> float | None:
        """Median cost of one pushed frame so far (conversion, encoding, decoding), milliseconds."""
        timed = self._seconds[1:] or self._seconds
        return statistics.median(timed) * 1e3 if timed else None

    def push(
        self, frame: av.VideoFrame | np.ndarray, token: Token, *, key: bool = False
    ) -> list[tuple[Token, BlockMotion | None]]:
        """Add the next frame: an av.VideoFrame (this object takes it over and may change its pts and
        picture type) or an (H, W, 3) uint8 RGB array. Returns the pairs that became ready."""
        started = time.perf_counter()
        picture = self._to_yuv420p(frame)
        picture.pts = self._pushed
        picture.pict_type = PictureType.I if key else PictureType.NONE
        self._pushed += 1
        self._pending.append(token)
        ready = self._drain(self._encoder.encode(picture))
        self._seconds.append(time.perf_counter() - started)
        if len(self._seconds) > _NOTICE_AFTER:
            self._notice()
        return ready

    def flush(self) -> list[tuple[Token, BlockMotion | None]]:
        """Drain the encoder and decoder: the pairs of every frame still pending."""
        ready = self._drain(self._encoder.encode(None))
        ready += self._match(self._decoder.decode(None))
        self._notice()
        return ready

    def _drain(self, packets: list[av.Packet]) -> list[tuple[Token, BlockMotion | None]]:
        ready: list[tuple[Token, BlockMotion | None]] = []
        for packet in packets:
            ready += self._match(self._decoder.decode(packet))
        return ready

    def _match(self, decoded: list[av.VideoFrame]) -> list[tuple[Token, BlockMotion | None]]:
        # No B-frames and no dropped frames: the re-encode comes back in push order.
        pairs = []
        for picture in decoded:
            motion = block_motion(picture, "x264-reencode")
            if motion is not None and (self._coded_w, self._coded_h) != (self.width, self.height):
                motion = _with_frame_hw(motion, (self.height, self.width))
            pairs.append((self._pending.popleft(), motion))
        return pairs

    def _to_yuv420p(self, frame: av.VideoFrame | np.ndarray) -> av.VideoFrame:
        if isinstance(frame, av.VideoFrame) and (frame.width, frame.height) == (self._coded_w, self._coded_h):
            return to_yuv420p(frame)
        rgb = to_rgb24(frame) if isinstance(frame, av.VideoFrame) else frame
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected ({self.height}, {self.width}, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        if (self._coded_w, self._coded_h) != (self.width, self.height):
            pad = ((0, self._coded_h - self.height), (0, self._coded_w - self.width), (0, 0))
            rgb = np.pad(rgb, pad, mode="edge")
        return to_yuv420p(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"))

    def _notice(self) -> None:
        if self._noticed or self.ms_per_frame is None:
            return
        self._noticed = True
        logger.warning(
            "%s: estimating motion vectors by re-encoding with libx264 (~%.1f ms/frame at %dx%d)",
            self._reason,
            self.ms_per_frame,
            self.width,
            self.height,
        )


def _with_frame_hw(motion: BlockMotion, frame_hw: tuple[int, int]) -> BlockMotion:
    return BlockMotion(motion.dst_xy, motion.size_wh, motion.offset_px, motion.source, frame_hw, motion.method)
