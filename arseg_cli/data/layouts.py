"""`open_dataset`: a data set root in any supported layout, detected or named."""

from __future__ import annotations

from pathlib import Path

from arseg_cli.data import camvid, cityscapes, synthstreet
from arseg_cli.data.records import Dataset
from arseg_cli.errors import InputError, InputNotFoundError

LAYOUTS = (synthstreet.LAYOUT, camvid.OFFICIAL, camvid.COMMON, cityscapes.LAYOUT)


def detect_layout(root: Path) -> str:
    """The layout of the data set at `root` (checked in the order of LAYOUTS)."""
    if synthstreet.is_synthstreet(root):
        return synthstreet.LAYOUT
    if cityscapes.is_cityscapes(root):
        return cityscapes.LAYOUT
    for layout in (camvid.OFFICIAL, camvid.COMMON):
        if camvid.is_camvid(root, layout):
            return layout
    raise InputError(
        f"{root}: unknown data set layout: expected manifest.json (synthstreet), leftImg8bit_sequence/ + gtFine/ "
        "(cityscapes), train_labels_with_ignored/ (camvid-official) or train_labels/ (camvid)"
    )


def open_dataset(
    root: str | Path, *, split: str = "train", layout: str | None = None, sequence_root: str | Path | None = None
) -> Dataset:
    """Open one split of the data set at `root`; the layout is detected when `layout` is None.

    `sequence_root`: CamVid layouts only, where `frames/<sequence>/` or the raw videos are (default: root).
    Raises InputNotFoundError when `root` or a part the split needs is missing, InputError for an
    unknown layout or split, each with one line naming what is wrong.
    """
    path = Path(root)
    if not path.is_dir():
        raise InputNotFoundError(f"data set root {path} does not exist or is not a directory")
    chosen = layout or detect_layout(path)
    if chosen == synthstreet.LAYOUT:
        return synthstreet.open_synthstreet(path, split)
    if chosen in (camvid.OFFICIAL, camvid.COMMON):
        return camvid.open_camvid(path, split, chosen, Path(sequence_root) if sequence_root else None)
    if chosen == cityscapes.LAYOUT:
        return cityscapes.open_cityscapes(path, split)
    raise InputError(f"unknown layout {chosen!r}: use one of {', '.join(LAYOUTS)}")
