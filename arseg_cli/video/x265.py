"""libx265 through PyAV: HEVC snippets encoded as the AR-Seg paper did (x265, no B-frames, a keyframe
every L frames), for training and evaluation pairs (data/pairs.py, `--codec hevc`).

x265 keeps its default reference count (several references): arseg's HEVC parser names each block's
reference frame, so the vectors still chain exactly to the keyframe (docs/MOTION.md). One frame
thread: x265's output otherwise depends on the number of cores, and the pairs must not.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np


def x265_params(keyint: int, *, bframes: int = 0, scenecut: bool = False) -> str:
    """The `x265-params` string for a stream with a fixed GOP of `keyint` frames."""
    if keyint < 1:
        raise ValueError(f"keyint must be >= 1, got {keyint}")
    parts = [f"keyint={keyint}", f"min-keyint={keyint}", f"bframes={bframes}", "frame-threads=1", "log-level=error"]
    if not scenecut:
        parts.append("scenecut=0")
    return ":".join(parts)


def encode_hevc(frames: list[np.ndarray], *, keyint: int, crf: float, preset: str, fps: int = 30) -> bytes:
    """Encode RGB uint8 frames (H, W, 3), all one size, as a raw HEVC (Annex B) stream in memory.
    Odd sizes are padded by one edge row/column (4:2:0 needs even ones)."""
    height, width = frames[0].shape[:2]
    coded_h, coded_w = height + height % 2, width + width % 2
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="hevc") as container:
        stream = container.add_stream("libx265", rate=fps)
        stream.width, stream.height, stream.pix_fmt = coded_w, coded_h, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.options = {"preset": preset, "crf": f"{crf:g}", "x265-params": x265_params(keyint)}
        for index, rgb in enumerate(frames):
            if (coded_h, coded_w) != (height, width):
                rgb = np.pad(rgb, ((0, coded_h - height), (0, coded_w - width), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
