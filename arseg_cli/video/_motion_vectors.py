"""FFmpeg's MOTION_VECTORS frame side data -> BlockMotion, vectorised (no Python loop per block).

The side data is a structured array (reference/PYAV.md): `dst_x/dst_y` is the block centre in the
current frame, `motion_x/motion_y` divided by `motion_scale` is the sub-pixel displacement from
there to the matching content in the reference frame (a backward displacement), and `source` is
only a direction: negative = a past reference, positive = a future one.
"""

from __future__ import annotations

import av
import numpy as np

from arseg_cli.video.records import BlockMotion, MotionMethod


def block_motion(frame: av.VideoFrame, method: MotionMethod = "bitstream") -> BlockMotion | None:
    """The block vectors FFmpeg exported for `frame`; None when it has none (intra frame, export off)."""
    side_data = frame.side_data.get("MOTION_VECTORS")
    if side_data is None:
        return None
    vectors = side_data.to_ndarray()
    if vectors.shape[0] == 0:
        return None
    return vectors_to_blocks(vectors, (frame.height, frame.width), method)


def vectors_to_blocks(
    vectors: np.ndarray, frame_hw: tuple[int, int], method: MotionMethod = "bitstream"
) -> BlockMotion:
    """Convert FFmpeg's structured vector array (n rows) to a BlockMotion record."""
    scale = np.maximum(vectors["motion_scale"], 1).astype(np.float32)
    offset = np.stack([vectors["motion_x"], vectors["motion_y"]], axis=1).astype(np.float32)
    offset /= scale[:, None]
    return BlockMotion(
        dst_xy=np.stack([vectors["dst_x"], vectors["dst_y"]], axis=1).astype(np.int32),
        size_wh=np.stack([vectors["w"], vectors["h"]], axis=1).astype(np.int32),
        offset_px=offset,
        source=np.sign(vectors["source"]).astype(np.int8),
        frame_hw=(int(frame_hw[0]), int(frame_hw[1])),
        method=method,
    )
