"""Pixel-format conversions of decoded frames, on one thread.

With PyAV 18.1.1 a conversion keeps a swscale context that runs on FFmpeg's slice threads, and a
process forked after one (a DataLoader worker making training pairs) inherits the context without
its threads and waits for them for ever. arseg's conversions run on one thread, so they leave no such
pool behind (at some speed on large frames); a pool the caller's own conversions left is why training's
loader workers start from a forkserver instead (train/loop.py).
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
