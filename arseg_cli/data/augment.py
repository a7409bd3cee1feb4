"""One random augmentation applied identically to both frames of a pair, its labels and flow: scale,
flip, crop (geometric) and colour jitter (photometric, the frames only).

The flow stays the flow between the augmented frames: scaling by s multiplies its values by the
actual size ratio along each axis (pixel centres map as x' = (x + 0.5) s - 0.5, as cv2.resize samples,
so displacements scale by s exactly); a horizontal flip mirrors the field and negates dx; cropping and
padding move both frames alike and leave the values unchanged. Labels are resized nearest and padded
with 255 (ignored), images padded with 0, flow with 0. Colour jitter changes brightness, contrast and
saturation by factors drawn from [1 - j, 1 + j], the same for both frames (they show one scene).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from arseg_cli.data.pairs import Pair
from arseg_cli.palettes import IGNORE_INDEX


def _resize_pair(pair: Pair, height: int, width: int) -> Pair:
    old_h, old_w = pair.labels.shape
    size = (width, height)
    flow = np.stack([cv2.resize(channel, size, interpolation=cv2.INTER_LINEAR) for channel in pair.flow])
    flow[0] *= width / old_w
    flow[1] *= height / old_h
    return dataclasses.replace(
        pair,
        key_rgb=cv2.resize(pair.key_rgb, size, interpolation=cv2.INTER_LINEAR),
        rgb=cv2.resize(pair.rgb, size, interpolation=cv2.INTER_LINEAR),
        labels=cv2.resize(pair.labels, size, interpolation=cv2.INTER_NEAREST),
        flow=flow.astype(np.float32),
    )


def flip_pair(pair: Pair) -> Pair:
    """The pair mirrored left-right; the flow's dx is negated."""
    flow = np.ascontiguousarray(pair.flow[:, :, ::-1])
    flow[0] = -flow[0]
    return dataclasses.replace(
        pair,
        key_rgb=np.ascontiguousarray(pair.key_rgb[:, ::-1]),
        rgb=np.ascontiguousarray(pair.rgb[:, ::-1]),
        labels=np.ascontiguousarray(pair.labels[:, ::-1]),
        flow=flow,
    )


def crop_pair(pair: Pair, top: int, left: int, height: int, width: int) -> Pair:
    """The window [top, top + height) x [left, left + width) of the pair; parts outside are padded
    (images 0, labels 255, flow 0). top/left may be negative."""

    def window(array: np.ndarray, fill: int, axis0: int) -> np.ndarray:
        h, w = array.shape[axis0], array.shape[axis0 + 1]
        shape = list(array.shape)
        shape[axis0], shape[axis0 + 1] = height, width
        out = np.full(shape, fill, array.dtype)
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + height, h), min(left + width, w)
        if y1 > y0 and x1 > x0:
            src = (slice(None),) * axis0 + (slice(y0, y1), slice(x0, x1))
            dst = (slice(None),) * axis0 + (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
            out[dst] = array[src]
        return out

    return dataclasses.replace(
        pair,
        key_rgb=window(pair.key_rgb, 0, 0),
        rgb=window(pair.rgb, 0, 0),
        labels=window(pair.labels, IGNORE_INDEX, 0),
        flow=window(pair.flow, 0, 1),
    )


def jitter_colours(rgb: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """`rgb` (H, W, 3) uint8 with its brightness, contrast and saturation multiplied by the factors
    (1 = unchanged): contrast blends with the mean grey level, saturation with the pixel's grey."""
    image = rgb.astype(np.float32) * brightness
    grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
    image = (image - grey.mean()) * contrast + grey.mean()
    grey = (image @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    image = (image - grey) * saturation + grey
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def augment_pair(
    pair: Pair,
    rng: np.random.Generator,
    *,
    crop_hw: tuple[int, int] | None,
    scale_range: tuple[float, float] = (0.75, 1.25),
    flip: bool = True,
    jitter: float = 0.0,
    keep_size: bool = False,
) -> Pair:
    """Random scale (uniform in `scale_range`), horizontal flip (p = 0.5 when `flip`), crop to
    `crop_hw` (random position; padded when the scaled pair is smaller; None: no crop, or back to the
    pair's own size when `keep_size`: the official whole-frame training) and colour jitter of strength
    `jitter` (0: none), applied alike to key_rgb, rgb, labels and flow. Draws from `rng` in a fixed
    order, so a seeded rng repeats."""
    height, width = pair.labels.shape
    scale = float(rng.uniform(*scale_range))
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    if (new_h, new_w) != (height, width):
        pair = _resize_pair(pair, new_h, new_w)
    if flip and rng.random() < 0.5:
        pair = flip_pair(pair)
    if crop_hw is None and keep_size:
        crop_hw = (height, width)
    if crop_hw is not None and (new_h, new_w) != crop_hw:
        crop_h, crop_w = crop_hw
        top = int(rng.integers(0, new_h - crop_h + 1)) if new_h > crop_h else -((crop_h - new_h) // 2)
        left = int(rng.integers(0, new_w - crop_w + 1)) if new_w > crop_w else -((crop_w - new_w) // 2)
        pair = crop_pair(pair, top, left, crop_h, crop_w)
    if jitter > 0:
        factors = [float(f) for f in rng.uniform(1.0 - jitter, 1.0 + jitter, 3)]
        pair = dataclasses.replace(pair, key_rgb=jitter_colours(pair.key_rgb, *factors), rgb=jitter_colours(pair.rgb, *factors))
    return pair
