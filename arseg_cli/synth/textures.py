"""Texture maps for SynthStreet: periodic noise and mip-mapped textures the renderer samples.

The renderer samples with the nearest texel of a mip level chosen from the pixel's footprint, so
distant facades and the far road do not shimmer (aliasing would make the video flicker, which no
camera does, and would waste the encoder's bits on noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIP_LEVELS = 5
NOISE_SIZE = 512  # side of the NoiseBank's periodic fields, texels
_ALIGN = 1 << (MIP_LEVELS - 1)


def periodic_noise(
    rng: np.random.Generator, height: int, width: int, cell: float, roughness: float = 1.0
) -> np.ndarray:
    """(height, width) float32 noise in [0, 1] that tiles seamlessly (it is periodic by construction).

    White noise filtered in the Fourier domain: features about `cell` texels across, plus finer
    detail whose amplitude falls as frequency^-roughness.
    """
    white = rng.standard_normal((height, width)).astype(np.float32)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freq = np.sqrt(fx * fx + fy * fy) * cell
    gain = 1.0 / (1.0 + freq) ** (1.0 + roughness)
    gain[0, 0] = 0.0
    field = np.fft.irfft2(np.fft.rfft2(white) * gain, s=(height, width)).astype(np.float32)
    low, high = np.percentile(field, (1, 99))
    return np.clip((field - low) / max(float(high - low), 1e-6), 0.0, 1.0)


class NoiseBank:
    """A few large periodic noise fields made once per clip; textures cut windows out of them.

    Filtering one large field is far cheaper than one FFT per texture, and windows at random offsets
    (wrapping around) look independent enough.
    """

    def __init__(self, rng: np.random.Generator, size: int = NOISE_SIZE) -> None:
        self.fields = {cell: periodic_noise(rng, size, size, cell) for cell in (2.0, 8.0, 32.0)}

    def window(self, height: int, width: int, cell: float, rng: np.random.Generator) -> np.ndarray:
        """(height, width) float32 in [0, 1]: a window at an offset drawn from `rng` of the field
        whose feature size is nearest `cell`."""
        key = min(self.fields, key=lambda c: abs(np.log(c / cell)))
        field = self.fields[key]
        rows = (np.arange(height) + rng.integers(field.shape[0])) % field.shape[0]
        cols = (np.arange(width) + rng.integers(field.shape[1])) % field.shape[1]
        return field[rows[:, None], cols[None, :]]


@dataclass(frozen=True, slots=True)
class MipTexture:
    """An image and its 2x-downsampled levels, flattened for one-gather sampling.

    texels:  (N, C) uint8, all levels one after another, each in row-major order.
    offsets: (MIP_LEVELS,) int64, where each level starts in `texels`.
    widths:  (MIP_LEVELS,) int64, each level's width (level l is level 0 downsampled by 2**l).
    height, width: level 0's size before padding (the part texture coordinates address).
    Level-0 texel (i, j) lives at level l at (i >> l, j >> l).
    """

    texels: np.ndarray
    offsets: np.ndarray
    widths: np.ndarray
    height: int
    width: int

    @classmethod
    def from_image(cls, image: np.ndarray) -> MipTexture:
        """From (H, W, C) or (H, W) uint8; padded by edge replication to a multiple of 2**(MIP_LEVELS-1)."""
        img = image if image.ndim == 3 else image[..., None]
        height, width = img.shape[:2]
        pad = ((0, -height % _ALIGN), (0, -width % _ALIGN), (0, 0))
        level = np.pad(img, pad, mode="edge").astype(np.float32)
        chunks = []
        for index in range(MIP_LEVELS):
            if index:
                level = 0.25 * (level[0::2, 0::2] + level[1::2, 0::2] + level[0::2, 1::2] + level[1::2, 1::2])
            chunks.append(np.round(level).astype(np.uint8).reshape(-1, img.shape[2]))
        offsets, widths = mip_layout(height, width)
        return cls(np.concatenate(chunks), offsets, widths, height, width)

    def sample(self, rows: np.ndarray, cols: np.ndarray, level: np.ndarray | int) -> np.ndarray:
        """Texels at level-0 coordinates (`rows`, `cols`, int arrays, broadcast) read from mip `level`.

        Coordinates must lie in [0, height) x [0, width). Returns (..., C) uint8.
        """
        flat = self.offsets[level] + (rows >> level) * self.widths[level] + (cols >> level)
        return np.take(self.texels, flat, axis=0)


def mip_layout(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, widths) of the levels of a MipTexture of height x width texels: known before any
    texel is painted, so the renderer can address a texture it has not made yet."""
    rows, cols = height + (-height % _ALIGN), width + (-width % _ALIGN)
    widths = np.array([cols >> level for level in range(MIP_LEVELS)], np.int64)
    sizes = np.array([(rows >> level) * (cols >> level) for level in range(MIP_LEVELS)], np.int64)
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]), widths


def mip_level(texels_per_pixel: np.ndarray | float) -> np.ndarray:
    """The mip level for a footprint of `texels_per_pixel` level-0 texels per pixel (int64, 0..MIP_LEVELS-1)."""
    ratio = np.maximum(np.asarray(texels_per_pixel, np.float32), 1.0)
    return np.minimum(np.ceil(np.log2(ratio)).astype(np.int64), MIP_LEVELS - 1)
