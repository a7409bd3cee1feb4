"""libx264 through PyAV: the settings AR-Seg's motion needs, and a small streaming H.264 writer.

AR-Seg composes motion vectors back to the keyframe, which is exact only when every P-frame refers
to the frame right before it: no B-frames, one reference, a keyframe every L frames and no scene-cut
keyframes in between (reference/PYAV.md).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO

import av
import numpy as np


def x264_params(keyint: int, *, bframes: int = 0, refs: int = 1, scenecut: bool = False, mbtree: bool = True) -> str:
    """The `x264-params` string for a stream with a fixed GOP of `keyint` frames.

    `mbtree=False` turns x264's macroblock-tree rate control off: with it on, the same frames were
    seen to encode differently from run to run while an FFmpeg decoder ran frame-threaded in the
    same process (tests/test_writers.py, the colour video's reproducibility test).
    """
    if keyint < 1:
        raise ValueError(f"keyint must be >= 1, got {keyint}")
    parts = [f"keyint={keyint}", f"min-keyint={keyint}", f"bframes={bframes}", f"ref={refs}"]
    if not scenecut:
        parts.append("scenecut=0")
    if not mbtree:
        parts.append("mbtree=0")
    return ":".join(parts)


# libx264's preset names (x264_preset_names in x264.h). Checked up front: libx264 itself rejects an
# unknown one only when the first frame opens the encoder, with a generic FFmpeg error.
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
)  # fmt: skip


def as_fraction(fps: float | Fraction) -> Fraction:
    """A frame rate as an exact fraction: NTSC rates become n*1000/1001 (29.97 -> 30000/1001)."""
    if isinstance(fps, Fraction):
        return fps
    ntsc = round(fps * 1.001)
    if ntsc > 0 and abs(fps * 1.001 - ntsc) < 1e-3 and abs(fps - ntsc) > 1e-3:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


class H264Writer:
    """Writes RGB uint8 frames to an H.264 stream (yuv420p) in any container PyAV can mux.

    `target` is a path or a binary file object (then `format` is required, e.g. 'mpegts').
    `time_base` is the unit of the `pts` given to `write` (default 1/fps, i.e. frame numbers); pass a
    source's time base to keep its timestamps.
    Frames must all have the size given at construction; odd sizes are padded by the caller's choice
    of `width`/`height` (yuv420p needs even dimensions, so odd ones are rounded up by edge padding).
    """

    def __init__(
        self,
        target: str | Path | IO[bytes],
        width: int,
        height: int,
        fps: float | Fraction = 30,
        *,
        keyint: int = 12,
        crf: float | None = 18,
        bitrate: int | None = None,
        bframes: int = 0,
        refs: int = 1,
        preset: str = "medium",
        format: str | None = None,
        container_options: dict[str, str] | None = None,
        time_base: Fraction | None = None,
    ) -> None:
        self._container = av.open(target, mode="w", format=format, options=container_options or {})
        self.width, self.height = int(width), int(height)
        self._coded_w, self._coded_h = self.width + self.width % 2, self.height + self.height % 2
        self.fps = as_fraction(fps)
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = self._coded_w, self._coded_h
        stream.pix_fmt = "yuv420p"
        # One slice per frame: otherwise x264 uses one slice per thread and the bitstream depends on
        # the number of cores (reference/PYAV.md).
        stream.thread_type = "FRAME"
        options = {"preset": preset, "x264-params": x264_params(keyint, bframes=bframes, refs=refs)}
        if bitrate is not None:
            stream.bit_rate = int(bitrate)
        elif crf is not None:
            options["crf"] = f"{crf:g}"
        stream.options = options
        # The encoder reads frame pts in its own time base: set both, or timestamps get rescaled wrongly.
        stream.time_base = time_base or 1 / self.fps
        stream.codec_context.time_base = stream.time_base
        self._stream = stream
        self._count = 0

    @property
    def frames_written(self) -> int:
        return self._count

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Encode one (H, W, 3) uint8 RGB frame; `pts` in units of the time base (default: the frame count)."""
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected ({self.height}, {self.width}, 3) uint8, got {rgb.shape} {rgb.dtype}")
        if (self._coded_w, self._coded_h) != (self.width, self.height):
            pad = ((0, self._coded_h - self.height), (0, self._coded_w - self.width), (0, 0))
            rgb = np.pad(rgb, pad, mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self._count if pts is None else int(pts)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._count += 1

    def abort(self) -> None:
        """Close without flushing the encoder, for a writer whose output is gone (e.g. a closed pipe)."""
        if self._container is None:
            return
        try:
            self._container.close()
        except (av.FFmpegError, OSError):
            pass
        finally:
            self._container = None  # type: ignore[assignment]

    def close(self) -> None:
        """Flush the encoder and finalise the container (idempotent)."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None  # type: ignore[assignment]

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
