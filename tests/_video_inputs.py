"""Tiny videos for the decode, fallback and CLI tests, made on the spot from a synthetic clip.

The clip (make_clip defaults scaled down) pans its background by PAN = (2, 1) px per frame and moves a
square by (-3, 2) px per frame, so every P-frame's true backward motion on the background is +PAN.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from arseg_cli.video.records import BlockMotion
from arseg_cli.video.synthetic import SyntheticClip, make_clip

FRAMES, HEIGHT, WIDTH = 14, 96, 128
PAN = (2.0, 1.0)
FPS = 30
KEYINT = 12


def small_clip() -> SyntheticClip:
    return make_clip(frames=FRAMES, height=HEIGHT, width=WIDTH, pan_px=(2, 1), object_px=(-3, 2), object_size=32)


def encode_frames(
    frames: list[np.ndarray],
    path: Path,
    codec: str,
    *,
    format: str | None = None,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    **context: object,
) -> Path:
    """Encode RGB frames with any PyAV encoder; skips the test when this PyAV build lacks `codec`."""
    try:
        av.codec.Codec(codec, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        pytest.skip(f"encoder {codec} is not in this PyAV build")
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format=format) as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.time_base = Fraction(1, FPS)
        for name, value in context.items():
            setattr(stream.codec_context, name, value)
        if options:
            stream.options = options
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def background_offsets(motion: BlockMotion, object_mask: np.ndarray, margin: int = 8) -> np.ndarray:
    """(n, 2) offsets of the blocks that lie wholly on the background, away from the frame border.

    Border blocks may point outside the reference (the encoder pads) and blocks touching the moving
    square mix two motions; both are left out so that the remaining ones have one true motion.
    """
    height, width = motion.frame_hw
    keep = []
    for (cx, cy), (bw, bh) in zip(motion.dst_xy.tolist(), motion.size_wh.tolist()):
        x0, y0 = cx - bw // 2, cy - bh // 2
        inside = x0 >= margin and y0 >= margin and x0 + bw <= width - margin and y0 + bh <= height - margin
        keep.append(inside and not object_mask[max(y0 - 4, 0) : y0 + bh + 4, max(x0 - 4, 0) : x0 + bw + 4].any())
    return motion.offset_px[np.asarray(keep, bool)]


def run_arseg(*args: str, stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run the real `arseg` entry point in a subprocess (stdin/stdout as a shell pipeline sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "arseg_cli", *args], input=stdin, capture_output=True, timeout=timeout, check=False
    )
