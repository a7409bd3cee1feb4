"""Frame sources: a video file decoded on demand, or numbered image files (a frame sequence)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from arseg_cli.errors import InputError
from arseg_cli.video.decode import decode_frames


def _check_range(name: str, start: int, stop: int, length: int) -> None:
    if not 0 <= start <= stop <= length:
        raise InputError(f"{name}: frames [{start}, {stop}) asked, but it has frames [0, {length})")


def read_rgb(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as error:
        raise InputError(f"cannot read image {path}: {error}") from None


@dataclass(frozen=True, eq=False)
class VideoFileSource:
    """The frames of a video file, decoded from its start on every `read` (no seeking, no motion).

    Fine for short clips (SynthStreet); for long videos (CamVid's raw sequences) extract the frames
    into a directory once and use `ImageSequenceSource` (docs/DATA.md).
    """

    path: Path
    frames: int

    def read(self, start: int, stop: int) -> list[np.ndarray]:
        _check_range(str(self.path), start, stop, self.frames)
        if start == stop:
            return []
        decoded = [frame.rgb for frame in decode_frames(self.path, motion="none", start=start, end=stop)]
        if len(decoded) != stop - start:
            raise InputError(f"{self.path}: only {len(decoded)} of frames [{start}, {stop}) could be decoded")
        return decoded

    def __len__(self) -> int:
        return self.frames


@dataclass(frozen=True, eq=False)
class ImageSequenceSource:
    """Frames stored one image per file; `paths` maps a frame index to its file. Indices may have gaps
    (a data set may ship only a few frames around each labelled one); reading a missing one raises."""

    name: str
    paths: Mapping[int, Path] = field(repr=False)

    def read(self, start: int, stop: int) -> list[np.ndarray]:
        _check_range(self.name, start, stop, len(self))
        missing = [i for i in range(start, stop) if i not in self.paths]
        if missing:
            raise InputError(f"{self.name}: frame {missing[0]} is missing (frames [{start}, {stop}) needed)")
        return [read_rgb(self.paths[i]) for i in range(start, stop)]

    def __len__(self) -> int:
        return max(self.paths, default=-1) + 1
