"""Cityscapes with its video snippets: `leftImg8bit_sequence` + `gtFine` (label ids -> train ids).

    ROOT/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame:06d>_leftImg8bit.png   30-frame snippets
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame:06d>_gtFine_labelIds.png              (also `GTFine/`)

Each fine annotation labels the 20th frame of its 30-frame snippet, so the snippet of a label with
frame number n holds frames n - 19 .. n + 10 and the labelled frame has index 19 in it. Snippet
frames not on disk are only missing when read. Label ids map to the 19 train ids with the standard
table; every other id is 255 (labels.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from arseg_cli.data.records import Dataset, LabelledFrame
from arseg_cli.data.sources import ImageSequenceSource
from arseg_cli.errors import InputError, InputNotFoundError
from arseg_cli.palettes import CITYSCAPES

LAYOUT = "cityscapes"
#: Frames per snippet and the labelled frame's index in it.
SNIPPET_FRAMES = 30
LABELLED_INDEX = 19

_LABEL = re.compile(r"^(?P<stem>.+_\d+)_(?P<frame>\d{6})_gtFine_labelIds\.png$")


def _labels_root(root: Path) -> Path | None:
    return next((root / name for name in ("gtFine", "GTFine") if (root / name).is_dir()), None)


def is_cityscapes(root: Path) -> bool:
    return (root / "leftImg8bit_sequence").is_dir() and _labels_root(root) is not None


def open_cityscapes(root: Path, split: str) -> Dataset:
    """The finely labelled frames of `split`, each with its 30-frame snippet."""
    labels_root = _labels_root(root)
    sequences = root / "leftImg8bit_sequence" / split
    if labels_root is None or not (labels_root / split).is_dir() or not sequences.is_dir():
        raise InputNotFoundError(f"{root}: a Cityscapes {split!r} split needs gtFine/{split}/ and "
                                 f"leftImg8bit_sequence/{split}/")  # fmt: skip
    frames = []
    for label in sorted((labels_root / split).glob("*/*_gtFine_labelIds.png")):
        match = _LABEL.match(label.name)
        if match is None:
            continue
        city, number = label.parent.name, int(match["frame"])
        first = number - LABELLED_INDEX
        folder = sequences / city
        snippet = {i: folder / f"{match['stem']}_{first + i:06d}_leftImg8bit.png" for i in range(SNIPPET_FRAMES)}
        paths = {i: path for i, path in snippet.items() if first + i >= 0 and path.is_file()}
        if LABELLED_INDEX not in paths:
            raise InputNotFoundError(f"{label.name}: its frame {snippet[LABELLED_INDEX]} does not exist")
        name = f"{match['stem']}_{number:06d}"
        source = ImageSequenceSource(str(folder / name), paths)
        frames.append(LabelledFrame(f"cityscapes/{name}", source, LABELLED_INDEX, label))
    if not frames:
        raise InputError(f"{labels_root / split}: no *_gtFine_labelIds.png files")
    return Dataset(
        root.resolve().name, LAYOUT, split, CITYSCAPES.classes, CITYSCAPES, tuple(frames), label_format="cityscapes"
    )
