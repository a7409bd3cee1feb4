"""Continuing a stopped `arseg segment` run: which frames it already wrote as label PNGs, and their labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from arseg_cli.errors import InputError


@dataclass(frozen=True)
class Resume:
    """What an earlier, stopped run of the same video already wrote: label PNGs in `png_dir` for every
    segmented frame before `first_missing` (display index)."""

    png_dir: Path
    first_missing: int

    @classmethod
    def find(cls, png_dir: str | Path, start: int = 0) -> Resume:
        """The PNGs present in `png_dir` from frame `start` on, without a gap, end at `first_missing`."""
        directory = Path(png_dir)
        index = start
        while _png_name(directory, index).is_file():
            index += 1
        return cls(directory, index)

    def has(self, index: int) -> bool:
        """Whether frame `index` was written by the stopped run."""
        return index < self.first_missing

    def labels(self, index: int, size: tuple[int, int]) -> np.ndarray:
        """(H, W) uint8 labels of frame `index` from its PNG; InputError when it is not this video's."""
        path = _png_name(self.png_dir, index)
        try:
            with Image.open(path) as image:
                labels = np.asarray(image)
        except (OSError, ValueError) as error:
            raise InputError(f"`resume`: cannot read {path}: {error}") from None
        if labels.shape != size or labels.dtype != np.uint8:
            raise InputError(
                f"`resume`: {path} ({labels.shape[1::-1]} {labels.dtype}) is not a label PNG of this video "
                f"({size[1]}x{size[0]}); resume into the directory of the stopped run, with the same options"
            )
        return labels


def _png_name(directory: Path, index: int) -> Path:
    return directory / f"{index:06d}.png"  # LabelPngWriter's names


__all__ = ["Resume"]
