"""Synthetic clips with known motion, for tests, benchmarks and the embedded sample.

A large multi-scale texture is viewed through a window that pans by a known whole-pixel amount per
frame, and a textured square moves on top of it with its own velocity. The true backward flow of
every frame to the previous one is known exactly, so motion estimates can be scored (end-point error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from arseg_cli.video.x264 import H264Writer


@dataclass(frozen=True, slots=True)
class SyntheticClip:
    """Frames and their exact motion.

    frames:     list of (H, W, 3) uint8 RGB frames.
    flow_prev:  list of (2, H, W) float32 backward flow of frame t to frame t-1 (frame 0: zeros).
    object_mask: list of (H, W) bool, where the moving square is in each frame.
    """

    frames: list[np.ndarray]
    flow_prev: list[np.ndarray]
    object_mask: list[np.ndarray]


def make_texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Colourful multi-scale noise (RGB uint8): rich detail at every block size, so blocks match uniquely."""
    acc = np.zeros((height, width, 3), np.float32)
    for cell, weight in ((64, 0.35), (16, 0.35), (4, 0.3)):
        small = rng.random((max(2, height // cell + 2), max(2, width // cell + 2), 3), dtype=np.float32)
        image = Image.fromarray((small * 255).astype(np.uint8)).resize(
            (width + 2 * cell, height + 2 * cell), Image.Resampling.BICUBIC
        )
        acc += weight * np.asarray(image, np.float32)[cell : cell + height, cell : cell + width]
    acc = (acc - acc.min()) / max(float(np.ptp(acc)), 1e-6)
    return (acc * 255).astype(np.uint8)


def make_clip(
    frames: int = 24,
    height: int = 144,
    width: int = 192,
    *,
    pan_px: tuple[int, int] = (2, 1),
    object_px: tuple[int, int] | None = (-3, 2),
    object_size: int = 48,
    seed: int = 0,
) -> SyntheticClip:
    """A clip of `frames` frames: the background pans by `pan_px` (dx, dy) per frame (the camera moves
    the other way), and a square of `object_size` px moves by `object_px` per frame over it.

    The exact backward flow to the previous frame is +pan_px on the background (the window moved by
    pan, so content at p was at p + pan) and -object_px on the square.
    """
    rng = np.random.default_rng(seed)
    pan = np.asarray(pan_px, np.int64)
    margin_y = abs(int(pan[1])) * frames + 8
    margin_x = abs(int(pan[0])) * frames + 8
    world = make_texture(height + 2 * margin_y, width + 2 * margin_x, rng)
    patch = make_texture(object_size, object_size, rng)
    patch = 255 - patch  # a different look from the background
    origin = np.array([margin_x, margin_y], np.int64)
    obj_origin = np.array([width // 2 - object_size // 2, height // 2 - object_size // 2], np.int64)
    obj_step = np.asarray(object_px if object_px is not None else (0, 0), np.int64)

    out_frames: list[np.ndarray] = []
    flows: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    for t in range(frames):
        window = origin + pan * t
        frame = world[window[1] : window[1] + height, window[0] : window[0] + width].copy()
        mask = np.zeros((height, width), bool)
        flow = np.zeros((2, height, width), np.float32)
        if t > 0:
            # Background: p in frame t is world point p + window_t = p + window_{t-1} + pan.
            flow[0], flow[1] = pan[0], pan[1]
        if object_px is not None:
            ox, oy = obj_origin + obj_step * t
            x0, y0 = max(ox, 0), max(oy, 0)
            x1, y1 = min(ox + object_size, width), min(oy + object_size, height)
            if x1 > x0 and y1 > y0:
                frame[y0:y1, x0:x1] = patch[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
                mask[y0:y1, x0:x1] = True
                if t > 0:
                    flow[0][mask] = -obj_step[0]
                    flow[1][mask] = -obj_step[1]
        out_frames.append(frame)
        flows.append(flow)
        masks.append(mask)
    return SyntheticClip(out_frames, flows, masks)


def write_clip(
    frames: Sequence[np.ndarray],
    path: str | Path,
    *,
    fps: float | Fraction = 30,
    keyint: int = 12,
    crf: float = 16,
    bframes: int = 0,
    refs: int = 1,
    preset: str = "medium",
    format: str | None = None,
) -> Path:
    """Encode RGB frames with libx264 to `path` (container from the extension, or `format`)."""
    height, width = frames[0].shape[:2]
    with H264Writer(
        path, width, height, fps, keyint=keyint, crf=crf, bframes=bframes, refs=refs, preset=preset, format=format
    ) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)
