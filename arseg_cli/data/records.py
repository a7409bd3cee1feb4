"""Typed records of the data sets: where labelled frames come from and how to read them.

A data set is a tuple of `LabelledFrame`s; each names the video (or image sequence) it belongs to, its
index there and its label file. `Dataset.read_labels` always returns train ids (255 = ignore), whatever
the file stores (ids, CamVid colours, Cityscapes label ids: `label_format`, see labels.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from arseg_cli.data.labels import LabelFormat, read_label_png
from arseg_cli.palettes import IGNORE_INDEX, Palette


@runtime_checkable
class FrameSource(Protocol):
    """A sequence of frames addressed by index (a video file, a directory of images)."""

    def read(self, start: int, stop: int) -> list[np.ndarray]:
        """Frames [start, stop) as RGB uint8 (H, W, 3) arrays; InputError when one is missing."""
        ...

    def __len__(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LabelledFrame:
    """One labelled frame of a data set.

    name:   stable id, e.g. "synth/clip_0003/000017", "camvid/0016E5_07959", "cityscapes/aachen_000000_000019".
    source: the video or image sequence the frame belongs to.
    index:  the frame's index in `source` (the frames before it are its possible keyframes).
    labels: the label PNG as stored; read it with `Dataset.read_labels` (which maps it to train ids).
    """

    name: str
    source: FrameSource
    index: int
    labels: Path


@dataclass(frozen=True, slots=True)
class Dataset:
    """The labelled frames of one split of a data set.

    layout: "synthstreet", "camvid-official", "camvid" or "cityscapes".
    classes/palette: the train ids' names and colours (CamVid: 12 with Void, Cityscapes: 19).
    label_format: how the label files store classes (labels.py); `read_labels` undoes it.
    """

    name: str
    layout: str
    split: str
    classes: tuple[str, ...]
    palette: Palette
    frames: tuple[LabelledFrame, ...]
    ignore_index: int = IGNORE_INDEX
    label_format: LabelFormat = "ids"

    def read_labels(self, frame: LabelledFrame) -> np.ndarray:
        """(H, W) uint8 train ids of `frame`; `ignore_index` where unlabelled or unknown."""
        return read_label_png(frame.labels, self.label_format, num_classes=len(self.classes))

    def __len__(self) -> int:
        return len(self.frames)
