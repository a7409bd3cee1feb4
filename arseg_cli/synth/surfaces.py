"""The ground's materials and the sky of a clip (scene.GroundSurface, scene.SkyDome)."""

from __future__ import annotations

import numpy as np

from arseg_cli.synth.lighting import Look
from arseg_cli.synth.scene import GroundSurface, SkyDome
from arseg_cli.synth.street import Ground
from arseg_cli.synth.textures import NOISE_SIZE, MipTexture, NoiseBank, periodic_noise

GROUND_TEXELS_PER_M = 32.0
assert NOISE_SIZE & (NOISE_SIZE - 1) == 0, "the renderer wraps ground texture coordinates with a bit mask"
_GROUND_TEXELS = NOISE_SIZE  # the texture repeats every 16 m


def make_ground(rng: np.random.Generator, bank: NoiseBank, look: Look) -> GroundSurface:
    """Asphalt, paint, curb stone, paving and verge (grass, dirt or gravel), sharing one grain texture."""
    grain = bank.window(_GROUND_TEXELS, _GROUND_TEXELS, 2.0, rng)
    patches = bank.window(_GROUND_TEXELS, _GROUND_TEXELS, 32.0, rng)
    # A window as large as the bank's periodic fields is a cyclic shift of one: it tiles seamlessly.
    lum = np.clip(0.6 * grain + 0.4 * patches, 0, 1)
    texture = MipTexture.from_image(np.round(lum * 255).astype(np.uint8))
    asphalt = rng.uniform(0.12, 0.3)
    verge = [[0.25, 0.35, 0.12], [0.4, 0.32, 0.22], [0.45, 0.43, 0.4]][rng.integers(3)]
    sidewalk = np.array([[0.55, 0.54, 0.52], [0.6, 0.52, 0.45], [0.5, 0.45, 0.48]][rng.integers(3)], np.float32)
    albedo = {
        Ground.ROAD: ([asphalt] * 3, 0.6),
        Ground.MARK_WHITE: ([0.8, 0.8, 0.78], 0.25),
        Ground.MARK_YELLOW: ([0.8, 0.62, 0.12], 0.25),
        Ground.CURB: ([0.62, 0.62, 0.6], 0.3),
        Ground.SIDEWALK: (sidewalk * rng.uniform(0.85, 1.15), 0.35),
        Ground.SIDEWALK_SEAM: (sidewalk * 0.6, 0.3),
        Ground.VERGE: (verge, 0.9),
    }
    level = (np.arange(256, dtype=np.float32) / 255.0 - 0.5)[:, None]
    lut = np.zeros((len(Ground) * 256, 3), np.uint8)
    light = look.ground_light()
    for kind, (colour, amount) in albedo.items():
        linear = np.asarray(colour, np.float32)[None, :] * (1.0 + amount * level)
        lut[kind * 256 : (kind + 1) * 256] = look.shade(np.clip(linear, 0, 1), light)
    return GroundSurface(texture, GROUND_TEXELS_PER_M, lut)


def make_sky(rng: np.random.Generator, look: Look, tan_max: float) -> SkyDome:
    """A gradient from the horizon to the zenith with clouds, as a panorama over all azimuths."""
    rows, cols = 128, 2048
    tan_el = np.linspace(0.0, tan_max, rows, dtype=np.float32)[:, None, None]
    t = np.sqrt(np.arctan(tan_el) / (np.pi / 2))
    colour = look.sky_horizon * (1 - t) + look.sky_zenith * t
    clouds = periodic_noise(rng, rows, cols, cell=rng.uniform(24, 96))
    cover = np.clip((clouds - (1.0 - look.cloudiness)) * 3.0, 0, 1)[..., None]
    white = np.float32(0.95) * (0.8 + 0.4 * clouds[..., None])
    linear = (colour * (1 - cover) + white * cover) * np.float32(1.6)
    return SkyDome(look.to_display(linear), float(tan_max))
