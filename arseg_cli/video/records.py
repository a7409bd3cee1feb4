"""Typed records passed between the video stages (decode -> motion -> schedule -> model -> write).

Coordinate conventions, used everywhere in arseg:
- Images are H x W; x is the column, y the row; pixel centres sit at integer coordinates.
- Flow is *backward*: pixel p of the current frame comes from p + flow(p) in the reference frame.
  Arrays are (2, H, W) float32 in pixels, channel 0 = dx, channel 1 = dy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

PictType = Literal["I", "P", "B", "S", "SI", "SP", "BI", "?"]
MotionMethod = Literal["bitstream", "x264-reencode"]


@dataclass(frozen=True, slots=True)
class BlockMotion:
    """The block motion vectors of one frame, one row per block (n blocks).

    dst_xy:    (n, 2) int32, block centre in the current frame, pixels (x, y).
    size_wh:   (n, 2) int32, block width and height in pixels.
    offset_px: (n, 2) float32, backward displacement (dx, dy) = motion / motion_scale: the block's
               content comes from dst + offset in the reference frame (sub-pixel, exact).
    source:    (n,) int8, -1 = a past reference, +1 = a future one (B-frames). FFmpeg gives only
               the direction, not which frame.
    frame_hw:  (H, W) of the frame the blocks tile.
    method:    where the vectors come from: the stream itself, or arseg's libx264 re-encode fallback.
    ref_offset: (n,) int32 or None: display index of each block's reference frame minus this frame's
               (-1 = the frame right before, -2 = two back, +1 = the next frame). Known where arseg reads
               the bitstream itself (HEVC, hevc/blocks.py), so multi-reference chains compose exactly;
               None where FFmpeg exports the vectors (it gives only the direction).
    """

    dst_xy: np.ndarray
    size_wh: np.ndarray
    offset_px: np.ndarray
    source: np.ndarray
    frame_hw: tuple[int, int]
    method: MotionMethod = "bitstream"
    ref_offset: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.source.shape[0])


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One decoded frame in display order.

    index:     0-based position in display order among the decoded frames.
    pts:       presentation timestamp in stream time_base units (None if the container has none).
    time_s:    presentation time in seconds (None if unknown).
    rgb:       (H, W, 3) uint8, RGB.
    pict_type: the coded picture type, 'I', 'P' or 'B' ('?' if the decoder does not say).
    is_stream_keyframe: the stream marks this frame as a key frame (an IDR / random access point); not
               AR-Seg's keyframe, which the scheduler chooses (`schedule.Decision.is_key`).
    motion:    block motion vectors to the reference(s); None for intra frames or when unavailable.
    """

    index: int
    pts: int | None
    time_s: float | None
    rgb: np.ndarray
    pict_type: PictType
    is_stream_keyframe: bool
    motion: BlockMotion | None


@dataclass(frozen=True, slots=True)
class FlowToKey:
    """Dense backward flow from a frame to its keyframe.

    index:     display index of the frame.
    key_index: display index of the keyframe the flow points into (== index for a keyframe).
    flow_px:   (2, H, W) float32 backward flow in pixels: p in this frame comes from p + flow(p) in
               the keyframe. All zeros for the keyframe itself.
    exact:     True when every hop of the chain had one unambiguous past reference (no B-frames,
               one reference), so the composition is exact up to the codec's own vectors.
    """

    index: int
    key_index: int
    flow_px: np.ndarray
    exact: bool
