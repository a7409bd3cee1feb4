"""Writes a SynthStreet data set: per clip an H.264 video, label PNGs, optional ground-truth flow, and
one manifest for the whole set.

Layout (docs/SYNTH.md):

    DIR/manifest.json                    written last: its presence means the set is complete
    DIR/clip_0000/video.mp4              H.264, yuv420p, keyframe every `keyint`, no B-frames, 1 reference
    DIR/clip_0000/labels/000000.png      palette-mode PNG, pixel value = CamVid class id
    DIR/clip_0000/flow/000000.npy        with `flow`: (2, H, W) float32 backward flow to the previous
                                         frame, or with `flow_to_key` to the frame's keyframe (zeros
                                         for frame 0 / a keyframe); flow/motion.json names each frame's
                                         reference, as `arseg motion` does
    DIR/clip_0000/visible/000000.png     with `flow`: 1-bit PNG, the flow's point is visible in the
                                         reference frame (see synth/flow.py)

Every file is written atomically; nothing that exists is replaced without `force`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from arseg_cli import __version__
from arseg_cli.errors import OptionsError
from arseg_cli.atomic_files import AtomicFile, atomic_path, os_errors_as_output_errors, prepare_output_dir
from arseg_cli.synth.classes import NUM_CLASSES, PALETTE
from arseg_cli.synth.clip import SynthClip, SynthFrame
from arseg_cli.video.writers import LabelPngWriter
from arseg_cli.video.flowio import FlowFileWriter
from arseg_cli.video.records import FlowToKey
from arseg_cli.video.x264 import H264Writer, x264_params

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "arseg-synthstreet"
FORMAT_VERSION = 1
MIN_SIDE = 16

OnFrame = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True)
class SynthSpec:
    """What to generate: `clips` clips of `frames` frames of height x width at `fps`, from `seed`;
    H.264 with a keyframe every `keyint` frames at quality `crf` (x264 `preset`); GT flow if `flow`,
    to the previous frame or, with `flow_to_key`, to the frame's keyframe."""

    clips: int
    frames: int
    height: int
    width: int
    seed: int = 0
    fps: float = 30.0
    keyint: int = 12
    crf: float = 20.0
    preset: str = "medium"
    flow: bool = False
    flow_to_key: bool = False

    def __post_init__(self) -> None:
        if self.clips < 1 or self.frames < 1:
            raise OptionsError(f"need at least one clip of one frame, got {self.clips} clips of {self.frames} frames")
        if min(self.height, self.width) < MIN_SIDE or self.height % 2 or self.width % 2:
            raise OptionsError(
                f"size {self.height}x{self.width}: height and width must be even (H.264 4:2:0) and >= {MIN_SIDE}"
            )
        if self.seed < 0:
            raise OptionsError(f"the seed must be >= 0, got {self.seed}")
        if self.keyint < 1 or not 0 <= self.crf <= 51 or self.fps <= 0:
            raise OptionsError(
                f"need keyint >= 1, 0 <= crf <= 51 and fps > 0 (got {self.keyint}, {self.crf}, {self.fps})"
            )


def write_dataset(
    out_dir: str | Path, spec: SynthSpec, *, force: bool = False, on_frame: OnFrame | None = None
) -> Path:
    """Generate and write the data set described by `spec` into `out_dir`; returns the manifest's path.

    `out_dir` must be new or empty unless `force` (then namesakes are replaced, other files kept).
    `on_frame(done, total)` is called after each frame written.
    """
    root = prepare_output_dir(out_dir, force)
    total = spec.clips * spec.frames
    done = 0
    records = []
    counts = np.zeros(NUM_CLASSES, np.int64)
    for index in range(spec.clips):
        clip = SynthClip(spec.seed, index, spec.frames, spec.height, spec.width, spec.fps)
        clip_counts = np.zeros(NUM_CLASSES, np.int64)
        with _ClipWriter(root / f"clip_{index:04d}", spec, force) as writer:
            for frame in clip.frames(keyint=spec.keyint if spec.flow_to_key else None):
                writer.write(frame)
                clip_counts += np.bincount(frame.labels.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
                done += 1
                if on_frame is not None:
                    on_frame(done, total)
            record = writer.record(root)
        counts += clip_counts
        k = clip.world.intrinsics
        records.append({
            "index": index,
            **record,
            "class_frequencies": _frequencies(clip_counts),
            "camera": {"f_px": k.f, "cx_px": k.cx, "cy_px": k.cy, "height_m": float(np.mean(clip.world.camera.y))},
        })  # fmt: skip
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator": f"arseg {__version__} synth",
        **asdict(spec),
        "x264_params": x264_params(spec.keyint),
        "pix_fmt": "yuv420p",
        "classes": PALETTE.to_json(),
        "flow_convention": (
            f"backward, to {'the keyframe (every keyint frames)' if spec.flow_to_key else 'the previous frame'}: "
            "pixel p of frame t comes from p + flow[:, p] in its reference frame (flow/motion.json); "
            "(2, H, W) float32 pixels, channel 0 = dx, 1 = dy; zeros where the reference is the frame itself"
        ) if spec.flow else None,
        "class_frequencies": _frequencies(counts),
        "clip_list": records,
    }  # fmt: skip
    path = root / MANIFEST_NAME
    with os_errors_as_output_errors(path), atomic_path(path, force=force) as temp:
        temp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return path


def _frequencies(counts: np.ndarray) -> dict[str, float]:
    """Pixel share of each class, by name."""
    shares = counts / max(int(counts.sum()), 1)
    return {name: round(float(share), 6) for name, share in zip(PALETTE.classes, shares)}


class _ClipWriter:
    """The files of one clip, written frame by frame."""

    def __init__(self, directory: Path, spec: SynthSpec, force: bool) -> None:
        self.directory = prepare_output_dir(directory, force)
        self.spec, self.force = spec, force
        self.labels = LabelPngWriter(directory / "labels", PALETTE, force=force)
        self.flows = FlowFileWriter(directory / "flow", fmt="npy", force=force) if spec.flow else None
        self.visible_dir = prepare_output_dir(directory / "visible", force) if spec.flow else None
        self.video_file = AtomicFile(directory / "video.mp4", force=force)
        self.video = H264Writer(
            self.video_file.temp, spec.width, spec.height, spec.fps, keyint=spec.keyint, crf=spec.crf, bframes=0,
            refs=1, preset=spec.preset,
        )  # fmt: skip
        self.frames = 0

    def write(self, frame: SynthFrame) -> None:
        with os_errors_as_output_errors(self.video_file.final):
            self.video.write(frame.rgb)
        self.labels.write(frame.labels, frame.index)
        if self.flows is not None and self.visible_dir is not None:
            self.flows.write(FlowToKey(frame.index, frame.reference, frame.flow, exact=True), pict_type="?")
            mask = self.visible_dir / f"{frame.index:06d}.png"
            buffer = io.BytesIO()
            Image.fromarray(frame.visible).save(buffer, format="PNG")
            with os_errors_as_output_errors(mask), atomic_path(mask, force=self.force) as temp:
                temp.write_bytes(buffer.getvalue())
        self.frames += 1

    def record(self, root: Path) -> dict[str, object]:
        """The clip's entry in the manifest (paths relative to the data set's root)."""
        rel = self.directory.relative_to(root).as_posix()
        names = [f"{i:06d}" for i in range(self.frames)]
        return {
            "video": f"{rel}/video.mp4",
            "frames": self.frames,
            "labels": [f"{rel}/labels/{n}.png" for n in names],
            "flow": [f"{rel}/flow/{n}.npy" for n in names] if self.flows is not None else None,
            "visible": [f"{rel}/visible/{n}.png" for n in names] if self.flows is not None else None,
        }

    def __enter__(self) -> _ClipWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            with os_errors_as_output_errors(self.video_file.final):
                self.video.close()
        except BaseException:
            self.video_file.discard()
            raise
        self.labels.close()
        if exc_type is not None or self.frames == 0:
            self.video_file.discard()
            return
        self.video_file.commit()
        if self.flows is not None:
            reference = f"keyframe every {self.spec.keyint}" if self.spec.flow_to_key else "previous frame"
            self.flows.close({"source": "arseg synth ground truth", "reference": reference})
