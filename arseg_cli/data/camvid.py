"""CamVid in two layouts: AR-Seg's preprocessed one ("camvid-official") and the common one ("camvid").

Both hold the labelled stills as `ROOT/<split>/<name>.png`, names `<sequence>_<frame number>` as
CamVid ships them: `0001TP_006690`, `0016E5_00390`, `0006R0_f00930`, `Seq05VD_f00030`.
- "camvid-official": labels `ROOT/<split>_labels_with_ignored/<name>.png`, grey images of class ids
  (0-11, Void = 11, 255 ignored) made by AR-Seg's camvid-pre-process.py (its output directory,
  `<split>_labels-idx-with-ignored`, is accepted too).
- "camvid": labels `ROOT/<split>_labels/<name>_L.png` (or `<name>.png`) coloured with the CamVid
  palette; Void (0, 0, 0) is class 11, colours outside the palette are 255 (labels.py).

The video frames around each still come from the raw sequences, in either form:
- frames extracted as AR-Seg's camvid_decode.sh does: `SEQ_ROOT/frames/<sequence>/<sequence>_%06d.png`,
  numbered from 1 (ffmpeg's image2 numbering). SEQ_ROOT is `sequence_root` when given, else ROOT;
- ("camvid" only, also "camvid-official") the raw videos in SEQ_ROOT or SEQ_ROOT/videos:
  01TP_extract.avi, 0005VD.MXF, 0006R0.MXF, 0016E5.MXF (or `<sequence>.<ext>`), decoded on demand.
The still's frame number maps to the sequence's frame with AR-Seg's table (`SEQUENCE_OFFSETS`, from its
scene_length_info): extracted file number = frame number - dataset start + encoded start.
Without frames or video for a sequence, only the still itself is available (distance d = 0).
"""

from __future__ import annotations

import re
from pathlib import Path

from arseg_cli.data.labels import LabelFormat
from arseg_cli.data.records import Dataset, FrameSource, LabelledFrame
from arseg_cli.data.sources import ImageSequenceSource, VideoFileSource
from arseg_cli.errors import InputError, InputNotFoundError
from arseg_cli.palettes import CAMVID

OFFICIAL = "camvid-official"
COMMON = "camvid"

#: Extracted file number (1-based) minus the still's frame number, per sequence (AR-Seg's
#: scene_length_info: encoded_start_idx - dataset_start_idx).
SEQUENCE_OFFSETS: dict[str, int] = {"0001TP": 31 - 6690, "0006R0": 2, "0016E5": 2, "Seq05VD": 2}

#: File names of CamVid's raw videos, per sequence.
RAW_VIDEOS: dict[str, str] = {
    "0001TP": "01TP_extract.avi", "0006R0": "0006R0.MXF", "0016E5": "0016E5.MXF", "Seq05VD": "0005VD.MXF",
}  # fmt: skip

_OFFICIAL_LABEL_DIRS = ("{split}_labels_with_ignored", "{split}_labels-idx-with-ignored")
_COMMON_LABEL_DIRS = ("{split}_labels",)
_STILL = re.compile(r"^(?P<sequence>[^_]+)_f?(?P<number>\d+)$")


def label_dir(root: Path, split: str, layout: str) -> Path | None:
    """The split's label directory in `layout`, or None."""
    patterns = _OFFICIAL_LABEL_DIRS if layout == OFFICIAL else _COMMON_LABEL_DIRS
    return next((root / p.format(split=split) for p in patterns if (root / p.format(split=split)).is_dir()), None)


def is_camvid(root: Path, layout: str) -> bool:
    return any(label_dir(root, split, layout) is not None for split in ("train", "val", "test"))


def open_camvid(root: Path, split: str, layout: str, sequence_root: Path | None = None) -> Dataset:
    """The labelled stills of `split` with their sequences (see the module docstring)."""
    images = root / split
    labels = label_dir(root, split, layout)
    if not images.is_dir() or labels is None:
        wanted = (_OFFICIAL_LABEL_DIRS if layout == OFFICIAL else _COMMON_LABEL_DIRS)[0].format(split=split)
        raise InputNotFoundError(f"{root}: a CamVid {split!r} split needs {split}/ and {wanted}/")
    sequences = _Sequences(sequence_root or root)
    frames = []
    for still in sorted(images.glob("*.png")):
        label = next((p for p in (labels / f"{still.stem}_L.png", labels / still.name) if p.is_file()), None)
        if label is None:
            raise InputNotFoundError(f"{still}: no label file {labels / still.name} (or {still.stem}_L.png)")
        source, index = sequences.locate(still)
        frames.append(LabelledFrame(f"camvid/{still.stem}", source, index, label))
    if not frames:
        raise InputError(f"{images}: no PNG images")
    fmt: LabelFormat = "ids" if layout == OFFICIAL else "camvid"
    return Dataset(root.resolve().name, layout, split, CAMVID.classes, CAMVID, tuple(frames), label_format=fmt)


class _Sequences:
    """Finds the frame source of each still: extracted frames, a raw video, or the still alone."""

    def __init__(self, sequence_root: Path) -> None:
        self.root = sequence_root
        self._sources: dict[str, FrameSource | None] = {}

    def locate(self, still: Path) -> tuple[FrameSource, int]:
        match = _STILL.match(still.stem)
        if match is None or match["sequence"] not in SEQUENCE_OFFSETS:
            return ImageSequenceSource(str(still), {0: still}), 0
        sequence, number = match["sequence"], int(match["number"])
        index = number + SEQUENCE_OFFSETS[sequence] - 1  # 0-based frame of the sequence
        if sequence not in self._sources:
            self._sources[sequence] = self._find(sequence)
        found = self._sources[sequence]
        if found is None or index < 0:  # no sequence: the still alone, at its place in the sequence
            index = max(index, 0)
            return ImageSequenceSource(str(still), {index: still}), index
        return found, index

    def _find(self, sequence: str) -> FrameSource | None:
        directory = self.root / "frames" / sequence
        if directory.is_dir():
            numbered = re.compile(rf"^{re.escape(sequence)}_(\d+)\.png$")
            paths = {int(m[1]) - 1: p for p in directory.iterdir() if (m := numbered.match(p.name))}
            if paths:
                return ImageSequenceSource(str(directory), paths)
        for folder in (self.root, self.root / "videos"):
            for name in (RAW_VIDEOS[sequence], *(p.name for p in sorted(folder.glob(f"{sequence}.*")))):
                path = folder / name
                if path.is_file():
                    return VideoFileSource(path, _frame_count(path))
        return None


def _frame_count(path: Path) -> int:
    """Frames in a video, from its container index or else by decoding it once."""
    from arseg_cli.video.probe import open_input  # imported late: only raw-video users pay for it

    opened = open_input(path)
    try:
        count = opened.info.frame_count
    finally:
        opened.close()
    if count:
        return int(count)
    from arseg_cli.video.decode import decode_frames

    return sum(1 for _ in decode_frames(path, motion="none"))
