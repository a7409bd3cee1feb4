"""SynthStreet data sets as `arseg synth` writes them (docs/SYNTH.md).

Two ways to hold splits:
- subdirectories `ROOT/train/`, `ROOT/val/`, `ROOT/test/`, each a complete set with its own
  manifest.json (e.g. written with different seeds);
- one `ROOT/manifest.json`: its clips are split by clip index, in order: with n >= 3 clips the last
  max(1, round(n / 5)) are "test", the max(1, round(n / 10)) before them "val", the rest "train".
  Fewer than 3 clips cannot be split: only "train" and "all" exist then.
`split="all"` takes every clip of the one manifest. Every frame of a clip is labelled.
"""

from __future__ import annotations

import json
from pathlib import Path

from arseg_cli.data.records import Dataset, LabelledFrame
from arseg_cli.data.sources import VideoFileSource
from arseg_cli.errors import InputError, InputNotFoundError
from arseg_cli.palettes import palette_from_json
from arseg_cli.synth.dataset import FORMAT_NAME, MANIFEST_NAME

LAYOUT = "synthstreet"
SPLITS = ("train", "val", "test")
MIN_CLIPS_TO_SPLIT = 3


def is_synthstreet(root: Path) -> bool:
    """Whether `root` holds a SynthStreet manifest, itself or in a split subdirectory."""
    return (root / MANIFEST_NAME).is_file() or any((root / s / MANIFEST_NAME).is_file() for s in SPLITS)


def split_clips(count: int, split: str) -> range:
    """Positions (in clip order) of the clips of `split` in a one-manifest set of `count` clips."""
    if split == "all":
        return range(count)
    if count < MIN_CLIPS_TO_SPLIT:
        if split == "train":
            return range(count)
        raise InputError(
            f"a SynthStreet set of {count} clip(s) has no {split!r} split (at least {MIN_CLIPS_TO_SPLIT} clips "
            "are needed); use split 'all' or write train/ val/ test/ subsets"
        )
    test = max(1, round(count / 5))
    val = max(1, round(count / 10))
    train = count - test - val
    bounds = {"train": (0, train), "val": (train, train + val), "test": (train + val, count)}
    if split not in bounds:
        raise InputError(f"unknown split {split!r}: use one of train, val, test, all")
    return range(*bounds[split])


def _read_manifest(path: Path) -> dict[str, object]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read SynthStreet manifest {path}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise InputError(f"{path} is not a SynthStreet manifest (no \"format\": \"{FORMAT_NAME}\")")
    return manifest


def open_synthstreet(root: Path, split: str) -> Dataset:
    """The labelled frames of `split` (see the module docstring for how splits are found)."""
    if split in SPLITS and (root / split / MANIFEST_NAME).is_file():
        set_root, clips = root / split, None
    elif (root / MANIFEST_NAME).is_file():
        set_root, clips = root, split
    else:
        raise InputNotFoundError(f"{root}: no {split}/{MANIFEST_NAME} and no {MANIFEST_NAME}")
    manifest = _read_manifest(set_root / MANIFEST_NAME)
    try:
        palette = palette_from_json(manifest["classes"], name="camvid")
        records = sorted(manifest["clip_list"], key=lambda r: int(r["index"]))  # type: ignore[arg-type, index]
        chosen = [records[i] for i in split_clips(len(records), clips)] if clips is not None else records
        frames = tuple(frame for record in chosen for frame in _clip_frames(set_root, record))
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"{set_root / MANIFEST_NAME}: malformed clip list ({error!r})") from None
    if not frames:
        raise InputError(f"{set_root}: split {split!r} has no labelled frames")
    return Dataset(root.resolve().name, LAYOUT, split, palette.classes, palette, frames)


def _clip_frames(root: Path, record: dict[str, object]) -> list[LabelledFrame]:
    video = root / str(record["video"])
    if not video.is_file():
        raise InputNotFoundError(f"SynthStreet video {video} does not exist")
    labels = [root / str(p) for p in record["labels"]]  # type: ignore[attr-defined]
    source = VideoFileSource(video, int(record["frames"]))  # type: ignore[call-overload]
    clip = Path(str(record["video"])).parent.as_posix()
    return [LabelledFrame(f"synth/{clip}/{i:06d}", source, i, path) for i, path in enumerate(labels)]
