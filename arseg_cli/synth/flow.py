"""Exact ground-truth backward flow of a rendered frame to any other frame of the same clip.

Each pixel of frame t sees a surface point whose 3-D position follows from the pixel's ray and its
depth. That point belongs to a rigid object that only translates (scene.py), so its position in the
reference frame r is known exactly: subtract the object's displacement between r and t, and project
it with frame r's camera. The flow is that projection minus the pixel's position: "p in frame t
comes from p + flow(p) in frame r" (arseg's backward convention, (2, H, W) float32, dx then dy).

The only approximation is occlusion: the flow says where the point *is* in frame r even where
something else hides it there (or it is outside the image). `visible` tells those pixels apart: the
point is visible when frame r shows the same surface (the same quad, the ground or the sky) at the
pixel nearest to where the point lands. A plane cannot hide part of itself, so this is exact up to
that rounding, which marks some pixels along occlusion edges as hidden. Sky points are at infinity:
they move only with the camera's rotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arseg_cli.synth.camera import Intrinsics, Pose
from arseg_cli.synth.render import NEAR_M, RenderedFrame



@dataclass(frozen=True, slots=True)
class GroundTruthFlow:
    """Backward flow of frame t to a reference frame.

    flow_px: (2, H, W) float32, pixels: p in frame t comes from p + flow_px[:, p] in the reference.
             Points that would lie behind the reference camera get 0 (and visible False).
    visible: (H, W) bool, the point is inside the reference frame and not hidden there.
    """

    flow_px: np.ndarray
    visible: np.ndarray


def backward_flow(
    frame: RenderedFrame,
    pose: Pose,
    reference: RenderedFrame,
    reference_pose: Pose,
    surface_shift_xz: np.ndarray,
    intrinsics: Intrinsics,
) -> GroundTruthFlow:
    """Ground-truth flow of `frame` (seen from `pose`) to `reference` (seen from `reference_pose`).

    surface_shift_xz: (surfaces + 1, 2) float64, the (X, Z) displacement in metres, from the
    reference frame to `frame`, of the object that surface id s belongs to, at index s + 1
    (render.SKY and render.GROUND: zeros).
    """
    k = intrinsics
    dx, dy = k.ray_dx(), k.ray_dy()
    finite = np.isfinite(frame.depth)
    z = np.where(finite, frame.depth, np.float32(1.0))  # sky: a direction (w = 0) instead of a point
    w = finite.astype(np.float32)
    x = z * dx[None, :]
    y = z * dy[:, None]
    cos_t, sin_t = np.cos(pose.yaw), np.sin(pose.yaw)
    # World position relative to the reference camera (translation part only for finite points).
    shift = surface_shift_xz.astype(np.float64)
    tx = ((pose.x - reference_pose.x) - shift[:, 0]).astype(np.float32)
    tz = ((pose.z - reference_pose.z) - shift[:, 1]).astype(np.float32)
    slot = frame.surface + 1
    rel_x = x * np.float32(cos_t) + z * np.float32(sin_t) + w * np.take(tx, slot)
    rel_z = z * np.float32(cos_t) - x * np.float32(sin_t) + w * np.take(tz, slot)
    cos_r, sin_r = np.float32(np.cos(reference_pose.yaw)), np.float32(np.sin(reference_pose.yaw))
    ref_x = rel_x * cos_r - rel_z * sin_r
    ref_z = rel_x * sin_r + rel_z * cos_r
    ref_y = y + w * np.float32(pose.y - reference_pose.y)
    in_front = ref_z > (NEAR_M * w)  # directions (sky) only need z > 0
    safe_z = np.where(in_front, ref_z, np.float32(1.0))
    height, width = frame.depth.shape
    col = np.float32(k.cx) + np.float32(k.f) * ref_x / safe_z
    row = np.float32(k.cy) - np.float32(k.f) * ref_y / safe_z
    flow = np.stack([
        col - np.arange(width, dtype=np.float32)[None, :],
        row - np.arange(height, dtype=np.float32)[:, None],
    ])  # fmt: skip
    flow[:, ~in_front] = 0.0
    c, r = np.rint(col), np.rint(row)
    inside = in_front & (c >= 0) & (c <= width - 1) & (r >= 0) & (r <= height - 1)
    seen = reference.surface[np.where(inside, r, 0).astype(np.intp), np.where(inside, c, 0).astype(np.intp)]
    return GroundTruthFlow(flow, inside & (seen == frame.surface))
