"""Pixel-format conversions of decoded frames, on one thread.

With PyAV 18.1.1 a conversion keeps a swscale context that runs on FFmpeg's slice threads, and a
process forked after one (a DataLoader worker making training pairs) inherits the context without
its threads and waits for them for ever. One thread per conversion avoids that, at some speed on
large frames.
"""

from __future__ import annotations

import av
import numpy as np


def to_rgb24(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame."""
    return frame.to_ndarray(format="rgb24", threads=1)


def to_yuv420p(frame: av.VideoFrame) -> av.VideoFrame:
    """The frame in yuv420p, the encoders' input format."""
    return frame.reformat(format="yuv420p", threads=1)
