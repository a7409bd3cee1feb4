"""The SynthStreet camera: a level pinhole camera that only yaws, and its path along the street.

World frame: X to the right of the street's direction, Y up (the ground is Y = 0), Z along the street.
Camera frame: x right, y up, z forward (depth). A pixel (col, row) looks along the camera-frame ray
(dx[col], dy[row], 1) with dx = (col - cx) / f and dy = (cy - row) / f; pixel centres sit at integer
coordinates (arseg's convention).

Why level and yaw-only: vertical world planes then stay vertical in the image, so a vertical plane's
depth depends on the column alone and the ground's depth on the row alone. The renderer exploits this
(one depth per column or per row instead of one per pixel). The horizon is placed above the image
centre with a shifted principal point (as a shift lens does) instead of pitching the camera down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CurveFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class Intrinsics:
    """Pinhole intrinsics of an H x W image: focal length `f` and principal point (`cx`, `cy`), pixels."""

    height: int
    width: int
    f: float
    cx: float
    cy: float

    @classmethod
    def for_size(cls, height: int, width: int, hfov_deg: float, horizon: float) -> Intrinsics:
        """A camera with horizontal field of view `hfov_deg` whose horizon lies at `horizon` x height rows."""
        f = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
        return cls(height, width, float(f), (width - 1) / 2, horizon * (height - 1))

    def ray_dx(self) -> np.ndarray:
        """(W,) float32: the x slope (x/z) of each column's viewing ray."""
        return ((np.arange(self.width, dtype=np.float32) - self.cx) / self.f).astype(np.float32)

    def ray_dy(self) -> np.ndarray:
        """(H,) float32: the y slope (y/z, y up) of each row's viewing ray."""
        return ((self.cy - np.arange(self.height, dtype=np.float32)) / self.f).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Pose:
    """Camera position (x, y, z) in metres, world frame, and yaw in radians (0 looks along +Z, >0 turns right)."""

    x: float
    y: float
    z: float
    yaw: float

    def to_camera(self, px: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World ground-plane coordinates (X, Z) -> camera-frame (x, z); Y maps to y - self.y."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        dx, dz = px - self.x, pz - self.z
        return dx * c - dz * s, dx * s + dz * c

    def to_world(self, cx: np.ndarray, cz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera-frame horizontal coordinates (x, z) -> world (X, Z) (the inverse of `to_camera`)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return self.x + cx * c + cz * s, self.z - cx * s + cz * c


@dataclass(frozen=True, slots=True)
class CameraPath:
    """The ego vehicle's path: a camera pose per frame.

    x, y, z, yaw: (F,) float64 arrays (metres, radians), one entry per frame.
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    yaw: np.ndarray

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def pose(self, t: int) -> Pose:
        return Pose(float(self.x[t]), float(self.y[t]), float(self.z[t]), float(self.yaw[t]))


def _smooth_wave(rng: np.random.Generator, t: np.ndarray, periods: tuple[float, float], n: int = 3) -> np.ndarray:
    """A smooth random signal of unit-order amplitude: a sum of `n` sines with periods in `periods` (frames)."""
    out = np.zeros_like(t)
    for _ in range(n):
        period = rng.uniform(*periods)
        out += np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)) / n
    return out


def make_camera_path(
    rng: np.random.Generator,
    frames: int,
    fps: float,
    road_center: CurveFn,
    road_slope: CurveFn,
    lane_x: float,
    height_m: float,
) -> CameraPath:
    """Drive along the street in the lane at `lane_x` (metres from the centre line); `road_center`
    and `road_slope` map Z to the centre line's X and dX/dZ (vectorised).

    Speed varies smoothly (sometimes slowing almost to a halt), the heading follows the street's
    curve plus a little steering, the lateral position drifts within the lane, and the camera bobs
    by a centimetre or two.
    """
    t = np.arange(frames, dtype=np.float64)
    cruise = rng.uniform(3.0, 13.0)  # m/s
    speed = np.clip(cruise * (1 + 0.35 * _smooth_wave(rng, t, (60, 240))), 0.3, None) / fps
    z = np.concatenate([[0.0], np.cumsum(speed[:-1])])
    drift = 0.4 * _smooth_wave(rng, t, (45, 150))
    x = road_center(z) + lane_x + drift
    heading = np.arctan(road_slope(z))
    steer = np.radians(rng.uniform(0.5, 4.0)) * _smooth_wave(rng, t, (20, 90))
    y = height_m + 0.015 * _smooth_wave(rng, t, (8, 20))
    return CameraPath(x, y, z, heading + steer)
