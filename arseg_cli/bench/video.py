"""Per-frame latency of the video stages on a real video: decode, motion, model, writing.

The frames go through the segment pipeline itself (`arseg_cli.pipeline.segment_frames`, which adds the
seconds of each stage to a StageTimes as it goes; the difference after each frame is that frame's
time), and each frame's labels are written by the outputs `arseg segment -o DIR --video FILE` opens
(`segment_outputs.SegmentOutputs`): label PNGs and the colour mask video (H.264), into a temporary
directory removed afterwards. The first
`warmup` frames are left out of the statistics (the first frame pays for allocations, the first
keyframe for building the inference copies).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arseg_cli.bench.timing import LatencyStats
from arseg_cli.errors import InputError
from arseg_cli.model.protocol import ModelBackend
from arseg_cli.output_plan import OutputTargets
from arseg_cli.palettes import Palette
from arseg_cli.pipeline import Settings, StageTimes, segment_frames
from arseg_cli.schedule import FrameKind
from arseg_cli.segment_outputs import SegmentOutputs
from arseg_cli.video.decode import open_video

STAGES = ("decode", "motion", "model_keyframe", "model_nonkeyframe", "write")


@dataclass(frozen=True, slots=True)
class VideoLatency:
    """Per-frame seconds of each stage over the timed frames of one video (model time split by kind)."""

    video: str
    size_hw: tuple[int, int]
    frames: int
    warmup: int
    scale: float
    keyframe_interval: int
    stages: dict[str, LatencyStats]

    def to_json(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "size": list(self.size_hw),
            "frames_timed": self.frames,
            "warmup_frames": self.warmup,
            "scale": self.scale,
            "keyframe_interval": self.keyframe_interval,
            "written": "label PNGs + colour mask video (H.264)",
            "stages": {name: stats.to_json() for name, stats in self.stages.items()},
        }


def measure_video(
    video: str | Path, model: ModelBackend, *, scale: float, keyframe_interval: int, frames: int, warmup: int = 1
) -> VideoLatency:
    """Segment the first `warmup + frames` frames of `video` at (s, L) and time every stage per frame."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    settings = Settings(scale=scale, keyframe_interval=keyframe_interval)
    s, keyframe_interval = settings.resolve(model)
    palette = Palette(model.arch, model.meta.classes, model.meta.palette)
    per_frame: dict[str, list[float]] = {name: [] for name in STAGES}
    times, seen, size = StageTimes(), 0, (0, 0)
    with tempfile.TemporaryDirectory(prefix="arseg-bench-") as tmp, open_video(
        video, motion="auto" if keyframe_interval > 1 else "none", end=warmup + frames
    ) as reader:
        targets = OutputTargets(png_dir=str(Path(tmp) / "labels"), colour=str(Path(tmp) / "colour.mp4"))
        with SegmentOutputs(targets, palette, fps=reader.info.fps, time_base=reader.info.time_base) as outputs:
            before = dataclasses.replace(times)
            for result in segment_frames(reader, model, settings, times=times):
                tick = time.perf_counter()
                outputs.write(result.index, result.pts, result.labels, result.rgb)
                write_s = time.perf_counter() - tick
                seen += 1
                size = (int(result.labels.shape[0]), int(result.labels.shape[1]))
                if seen > warmup:
                    model_stage = "model_keyframe" if result.kind is FrameKind.KEY else "model_nonkeyframe"
                    per_frame["decode"].append(times.decode - before.decode)
                    per_frame["motion"].append(times.motion - before.motion)
                    per_frame[model_stage].append(times.model - before.model)
                    per_frame["write"].append(write_s)
                before = dataclasses.replace(times)
    if seen <= warmup:
        raise InputError(f"{video}: {seen} frames decoded, more than `warmup` ({warmup}) are needed to time the video stages")
    stages = {name: LatencyStats(tuple(runs), warmup) for name, runs in per_frame.items() if runs}
    return VideoLatency(str(video), size, seen - warmup, warmup, s, keyframe_interval, stages)
