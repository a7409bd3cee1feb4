"""The exact motion between any two frames of a SynthStreet set on disk, rendered again from its manifest.

A SynthStreet clip is a pure function of (seed, clip index, frames, size, fps), all in the manifest, so
the flow between a labelled frame and any earlier frame (a keyframe d frames before it) can be made
again without having been written. Used to measure what the codec's block motion costs against perfect
motion (benchmarks/fusion_by_distance.py `--flow exact`). A set made by another generator version would
render other frames: the rendered labels are compared with the set's label file, and a mismatch is an
InputError.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from arseg_cli.data.labels import read_label_png
from arseg_cli.data.records import Dataset, LabelledFrame
from arseg_cli.errors import InputError
from arseg_cli.synth.clip import SynthClip
from arseg_cli.synth.dataset import FORMAT_NAME, MANIFEST_NAME
from arseg_cli.synth.render import RenderedFrame


class SynthTruth:
    """Exact backward flow and visibility between frames of `dataset` (a SynthStreet split)."""

    def __init__(self, dataset: Dataset) -> None:
        if dataset.layout != "synthstreet":
            raise InputError(f"exact motion exists only for SynthStreet sets, not for {dataset.layout!r} data")
        self.dataset = dataset
        self._clips: dict[Path, SynthClip] = {}
        self._renders: dict[tuple[Path, int], RenderedFrame] = {}

    def flow(self, frame: LabelledFrame, reference: int) -> tuple[np.ndarray, np.ndarray]:
        """(flow (2, H, W) float32, visible (H, W) bool): pixel p of `frame` shows what frame `reference`
        of its clip shows at p + flow[:, p] (docs/MOTION.md's convention); visible is False where that
        point is hidden in the reference."""
        clip = self._clip(frame)
        if not 0 <= reference < clip.num_frames or not 0 <= frame.index < clip.num_frames:
            raise InputError(f"{frame.name}: frames {reference} and {frame.index} are not both in its clip of {clip.num_frames} frames")
        current = self._render(frame.labels, clip, frame.index)
        stored = read_label_png(frame.labels, self.dataset.label_format, num_classes=len(self.dataset.classes))
        if not np.array_equal(current.labels, stored):
            raise InputError(f"{frame.labels} differs from the frame rendered again from its manifest "
                             "(a set made by another arseg version): no exact motion for it")  # fmt: skip
        if reference == frame.index:
            return np.zeros((2, *stored.shape), np.float32), np.ones(stored.shape, bool)
        truth = clip.flow(frame.index, current, reference, self._render(frame.labels, clip, reference))
        return truth.flow_px.astype(np.float32), truth.visible

    def _clip(self, frame: LabelledFrame) -> SynthClip:
        clip_dir = frame.labels.parent.parent
        if clip_dir not in self._clips:
            manifest, record = _manifest_record(clip_dir)
            self._clips[clip_dir] = SynthClip(int(manifest["seed"]), int(record["index"]), int(record["frames"]),
                                              int(manifest["height"]), int(manifest["width"]), float(manifest["fps"]))  # fmt: skip
        return self._clips[clip_dir]

    def _render(self, labels: Path, clip: SynthClip, index: int) -> RenderedFrame:
        key = (labels.parent.parent, index)
        if key not in self._renders:
            if len(self._renders) >= 32:
                self._renders.pop(next(iter(self._renders)))
            self._renders[key] = clip.render(index)
        return self._renders[key]


def _manifest_record(clip_dir: Path) -> tuple[dict, dict]:
    path = clip_dir.parent / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT_NAME:
            raise ValueError(f"no \"format\": \"{FORMAT_NAME}\"")
        records = [r for r in manifest["clip_list"] if Path(str(r["video"])).parent.name == clip_dir.name]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(f"cannot read the SynthStreet manifest {path}: {error}") from None
    if len(records) != 1:
        raise InputError(f"{path} lists no clip {clip_dir.name!r}")
    return manifest, records[0]
