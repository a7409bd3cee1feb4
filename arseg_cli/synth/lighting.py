"""The light of a SynthStreet clip: sun, ambient light and the camera's colour response.

Shading is baked into each surface's texture when the scene is built: a vertical face is lit by the
ambient light plus the sun in proportion to how squarely its normal faces the sun's azimuth. The
light never changes within a clip, so a surface point keeps its colour from frame to frame and the
ground-truth flow maps colours exactly (up to texture sampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Look:
    """Per-clip lighting and colour response.

    sun_azimuth:   radians, world frame (0 = the sun lies along +Z).
    sun_elevation: radians above the horizon.
    sun:           (3,) float32 linear RGB intensity of direct sunlight.
    ambient:       (3,) float32 linear RGB intensity of sky light.
    exposure:      multiplier before the tone curve.
    gamma:         display gamma of the tone curve.
    sky_zenith, sky_horizon: (3,) float32 linear RGB sky colours.
    cloudiness:    0 (clear) .. 1 (overcast).
    """

    sun_azimuth: float
    sun_elevation: float
    sun: np.ndarray
    ambient: np.ndarray
    exposure: float
    gamma: float
    sky_zenith: np.ndarray
    sky_horizon: np.ndarray
    cloudiness: float

    def to_display(self, linear: np.ndarray) -> np.ndarray:
        """Linear RGB (..., 3) float -> display RGB uint8 (exposure, gamma, soft shoulder)."""
        scaled = np.asarray(linear, np.float32) * self.exposure
        toned = scaled / (1.0 + 0.25 * scaled)  # a gentle highlight roll-off instead of hard clipping
        return np.clip(255.0 * toned ** (1.0 / self.gamma) + 0.5, 0, 255).astype(np.uint8)

    def face_light(self, normal_x: float, normal_z: float, two_sided: bool = True) -> np.ndarray:
        """(3,) light falling on a vertical face with horizontal unit normal (normal_x, normal_z)."""
        facing = normal_x * np.sin(self.sun_azimuth) + normal_z * np.cos(self.sun_azimuth)
        facing = abs(facing) if two_sided else max(facing, 0.0)
        return self.ambient + self.sun * (facing * np.cos(self.sun_elevation))

    def round_light(self) -> np.ndarray:
        """(3,) mean light on an upright rounded object (a crown, a person): the sun's |cos| averaged
        over all facing directions is 2 / pi."""
        return self.ambient + self.sun * (2 / np.pi * np.cos(self.sun_elevation))

    def ground_light(self) -> np.ndarray:
        """(3,) light falling on the ground."""
        return self.ambient + self.sun * np.sin(self.sun_elevation)

    def shade(self, albedo: np.ndarray, light: np.ndarray) -> np.ndarray:
        """Albedo (..., 3) float in [0, 1] under `light` (3,) -> display uint8."""
        return self.to_display(albedo * light)


def random_look(rng: np.random.Generator) -> Look:
    """A random time of day and weather: clear noon, hazy afternoon, overcast, low evening sun."""
    cloudiness = float(rng.choice([0.05, 0.3, 0.6, 0.95]) * rng.uniform(0.7, 1.0))
    elevation = float(rng.uniform(np.radians(8), np.radians(70)))
    warm = np.clip(1.0 - elevation / np.radians(40), 0.0, 1.0)  # low sun: warmer and weaker
    sun_tint = np.array([1.0, 0.93 - 0.12 * warm, 0.85 - 0.3 * warm], np.float32)
    sun = sun_tint * np.float32((1.0 - 0.85 * cloudiness) * rng.uniform(0.9, 1.3))
    sky_blue = np.array([0.35, 0.55, 1.0], np.float32)
    grey = np.array([0.75, 0.77, 0.8], np.float32)
    zenith = (1 - cloudiness) * sky_blue + cloudiness * grey
    horizon = (1 - cloudiness) * np.array([0.8, 0.85, 0.95], np.float32) + cloudiness * grey * 1.05
    horizon = horizon * (1 - 0.25 * warm) + np.array([0.3, 0.15, 0.0], np.float32) * warm
    ambient = (0.35 + 0.35 * cloudiness) * (0.5 * zenith + 0.5 * grey) * np.float32(rng.uniform(0.8, 1.2))
    return Look(
        sun_azimuth=float(rng.uniform(0, 2 * np.pi)),
        sun_elevation=elevation,
        sun=sun.astype(np.float32),
        ambient=ambient.astype(np.float32),
        exposure=float(rng.uniform(0.8, 1.25)),
        gamma=float(rng.uniform(1.9, 2.4)),
        sky_zenith=zenith.astype(np.float32),
        sky_horizon=horizon.astype(np.float32),
        cloudiness=cloudiness,
    )
