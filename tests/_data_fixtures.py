"""Tiny data sets built on the spot for the data tests: a SynthStreet set, and miniature CamVid and
Cityscapes trees (a few PNG frames of a smooth moving texture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from arseg_cli.palettes import CAMVID
from arseg_cli.synth import SynthSpec, write_dataset

SYNTH_SPEC = SynthSpec(clips=3, frames=12, height=128, width=192, seed=5, keyint=12, crf=16, preset="veryfast")


def make_synthstreet(root: Path) -> Path:
    write_dataset(root, SYNTH_SPEC)
    return root


def texture_frame(t: int, height: int = 48, width: int = 64) -> np.ndarray:
    """(H, W, 3) uint8: a smooth random texture shifted right by 2 px per frame t."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (height // 8 + 2, (width + 64) // 8 + 2, 3)).astype(np.uint8)
    big = np.asarray(Image.fromarray(base).resize(((width + 64) * 1, height * 1), Image.BICUBIC))
    return np.ascontiguousarray(big[:, 32 - 2 * t : 32 - 2 * t + width])


def save_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def camvid_colour_labels(ids: np.ndarray, unknown: tuple[int, int, int] = (10, 20, 30)) -> np.ndarray:
    """CamVid colour image for ids; id 255 becomes a colour outside the palette."""
    lut = np.array([*CAMVID.colors, unknown], np.uint8)
    return lut[np.where(ids == 255, len(CAMVID.colors), ids)]
