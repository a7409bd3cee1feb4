"""The AR-Seg video pipeline, a chain of streaming stages: decode -> motion (block cells) -> schedule ->
flow to the keyframe -> keyframe groups -> model -> outputs.

`segment_frames` turns decoded frames into segmented frames; `segment_video` decodes a video, runs
`segment_frames` and writes each frame as it comes to the outputs of its targets (opened, and resumed,
by `segment_outputs.SegmentOutputs`). The model is any `ModelBackend`. Memory does not grow with
the video's length: the state kept is one keyframe group (at most L frames, `groups.py`), the
keyframe's feature, the scheduler's count and the motion accumulator's chain back to the keyframe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from arseg_cli.choices import DEFAULT_POLICY, KeyframePolicy
from arseg_cli.frame_step import FrameStep
from arseg_cli.group_step import DEFAULT_BATCH, GroupStep
from arseg_cli.groups import keyframe_groups, scheduled_frames
from arseg_cli.model.protocol import ModelBackend
from arseg_cli.output_plan import OutputTargets
from arseg_cli.resume import Resume
from arseg_cli.schedule import FrameKind, Scheduler
from arseg_cli.scale_interval import ScaleInterval, check_keyframe_interval, check_scale, resolve_scale_interval
from arseg_cli.segment_outputs import SegmentOutputs
from arseg_cli.segment_summary import SegmentSummary
from arseg_cli.stage_times import StageClock, StageTimes
from arseg_cli.video.decode import PartialDecodeError, open_video
from arseg_cli.video.motion import FlowAccumulator
from arseg_cli.video.probe import DEFAULT_MAX_PIXELS, MotionRequest, Source
from arseg_cli.video.records import DecodedFrame


@dataclass(frozen=True, slots=True)
class SegmentedFrame:
    """One frame's segmentation.

    index:     display index in the input stream; pts / time_s: its timestamp (as DecodedFrame).
    labels:    (H, W) uint8 class ids at the input size.
    kind:      KEY (HR network) or NONKEY (LR + CReFF); reason: why a keyframe ('' otherwise).
    key_index: display index of its keyframe; distance: frames since that keyframe (0 for a keyframe).
    rgb:       (H, W, 3) uint8, the decoded input frame (for overlays).
    """

    index: int
    pts: int | None
    time_s: float | None
    labels: np.ndarray
    kind: FrameKind
    reason: str
    key_index: int
    distance: int
    rgb: np.ndarray


@dataclass(frozen=True)
class Settings:
    """How frames are segmented.

    scale:  LR scale s of non-keyframes (None: the weights' scale; 1.0, or weights without an LR
            branch: every frame HR).
    keyframe_interval: keyframe interval L, the most frames from one keyframe to the next (None: the weights').
    policy: keyframe policy (arseg_cli.schedule; a KeyframePolicy or its value). half: float16 on CUDA.
    low_latency: segment frame by frame, each result before the next frame is decoded (live
            pipelines); otherwise (the default) whole keyframe groups of up to L frames at once.
    group_batch: most non-keyframes of a group per model call (memory grows with it).
    cuda_graphs: replay the non-keyframe step from CUDA graphs (`graphed_step.py`; PyTorch on CUDA
            only, elsewhere it runs eagerly with one warning). Opt-in: not yet measured on a GPU.
    """

    scale: float | None = None
    keyframe_interval: int | None = None
    policy: KeyframePolicy = DEFAULT_POLICY
    half: bool = False
    low_latency: bool = False
    group_batch: int = DEFAULT_BATCH
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy", KeyframePolicy.parse(self.policy, "keyframe policy"))
        if self.scale is not None:
            check_scale(self.scale)
        if self.keyframe_interval is not None:
            check_keyframe_interval(self.keyframe_interval)

    def resolve(self, model: ModelBackend) -> ScaleInterval:
        """(s, L) for `model` (arseg_cli.scale_interval): per-frame HR is (1.0, 1)."""
        return resolve_scale_interval(self.scale, self.keyframe_interval, trained_scale=model.meta.scale,
                                      trained_interval=model.meta.keyframe_interval, has_lr=model.has_lr)  # fmt: skip


def segment_frames(
    frames: Iterable[DecodedFrame],
    model: ModelBackend,
    settings: Settings = Settings(),
    *,
    times: StageTimes | None = None,
    resume: Resume | None = None,
) -> Iterator[SegmentedFrame]:
    """Segment decoded frames: one SegmentedFrame per frame, in order.

    decode -> motion + schedule (`groups.scheduled_frames`) -> keyframe groups -> the model on each
    group (`group_step.GroupStep`) -> one result per frame.
    With `settings.low_latency` every frame is handed on alone, so its result comes before the next
    frame is decoded. The model runs on its own device (eval mode). `times`, when given, accumulates
    the seconds spent decoding (pulling the next frame from `frames`), on motion and in the model.
    resume: the frames before `resume.first_missing` were segmented by an earlier run: their labels
    come from `resume.labels`, and every frame gets the labels an uninterrupted run gives.
    """
    scale, keyframe_interval = settings.resolve(model)
    batch = min(settings.group_batch, model.max_batch or settings.group_batch)
    step = GroupStep(FrameStep(model, scale, half=settings.half), keep_feature=keyframe_interval > 1, batch=batch,
                     resume=resume, cuda_graphs=settings.cuda_graphs)  # fmt: skip
    clock = StageClock(model.device, times or StageTimes())
    accumulator = FlowAccumulator() if keyframe_interval > 1 else None
    scheduled = scheduled_frames(clock.pulled(frames), Scheduler(settings.policy, keyframe_interval), accumulator, clock)
    with torch.inference_mode():
        for group in keyframe_groups(scheduled, 1 if settings.low_latency else keyframe_interval):
            with clock.stage("model"):
                labels = step.labels(group)
            group.reverse()
            labels.reverse()
            while group:  # popped as handed on: a consumed frame is not kept until the group ends
                item, item_labels = group.pop(), labels.pop()
                decision = item.decision
                yield SegmentedFrame(index=item.frame.index, pts=item.frame.pts, time_s=item.frame.time_s,
                                     labels=item_labels, kind=decision.kind, reason=decision.reason,
                                     key_index=item.frame.index - decision.distance, distance=decision.distance,
                                     rgb=item.frame.rgb)  # fmt: skip
                del item, item_labels


OnFrame = Callable[[SegmentedFrame, SegmentSummary, int | None], None]


def segment_video(
    source: Source,
    model: ModelBackend,
    targets: OutputTargets,
    settings: Settings = Settings(),
    *,
    palette: Any,
    force: bool = False,
    opacity: float = 0.5,
    start: int | None = None,
    end: int | None = None,
    motion: MotionRequest = "auto",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    resume: bool = False,
    on_frame: OnFrame | None = None,
) -> SegmentSummary:
    """Segment the video `source` (a path or '-') into `targets`; returns what was done.

    palette: the class colours (arseg_cli.palettes.Palette) of PNGs and videos, one per model class.
    on_frame(frame, summary so far, expected frame count or None) after each frame is written.
    A damaged input (corrupt or truncated mid-stream: decode's PartialDecodeError) keeps every frame
    decoded before the damage in every output and returns normally with `damaged` set to what was wrong:
    check it. Ctrl-C leaves the outputs valid with the frames written so far.
    max_pixels: the largest frame decoded (arseg_cli.video.decode; None or 0: FFmpeg's own limit).
    resume: continue a stopped run into the same targets (`SegmentOutputs`): the label PNGs already
    written are kept, the model runs from the keyframe at or before the first missing frame, and the
    video outputs are written anew from the start (the earlier frames from their PNGs), replacing those
    of the stopped run. The result equals an uninterrupted run's. Needs `targets.png_dir`.
    """
    palette.check_fits(model.num_classes)
    scale, keyframe_interval = settings.resolve(model)
    started = time.perf_counter()
    summary = SegmentSummary(input=str(source), scale=scale, keyframe_interval=keyframe_interval, policy=settings.policy,
                             device=str(model.device), half=settings.half, low_latency=settings.low_latency)  # fmt: skip
    with open_video(source, motion=motion if keyframe_interval > 1 else "none", start=start, end=end, max_pixels=max_pixels) as reader:
        info = reader.info
        summary.input, summary.fps = info.name, float(info.fps) if info.fps else None
        expected = _expected_frames(info.frame_count, info.duration_s, summary.fps, start, end)
        with SegmentOutputs(targets, palette, fps=info.fps, time_base=info.time_base, opacity=opacity, force=force,
                            resume_from=(start or 0) if resume else None) as outputs:  # fmt: skip
            summary.outputs = outputs.described
            try:
                for result in segment_frames(reader, model, settings, times=summary.times, resume=outputs.resume):
                    tick = time.perf_counter()
                    outputs.write(result.index, result.pts, result.labels, result.rgb)
                    summary.times.write += time.perf_counter() - tick
                    summary.count((int(result.labels.shape[0]), int(result.labels.shape[1])), result.kind, result.reason)
                    summary.wall_s = time.perf_counter() - started
                    if on_frame is not None:
                        on_frame(result, summary, expected)
            except PartialDecodeError as error:
                summary.damaged = str(error)
    summary.wall_s = time.perf_counter() - started
    return summary


def _expected_frames(
    count: int | None, duration_s: float | None, fps: float | None, start: int | None, end: int | None
) -> int | None:
    """Frames the run will give, from the container's count or duration x fps; None when unknown."""
    total = count if count else (round(duration_s * fps) if duration_s and fps else None)
    if total is not None and end is not None:
        total = min(total, end)
    elif total is None and end is not None:
        return None
    return None if total is None else max(0, total - (start or 0))


__all__ = ["OutputTargets", "Resume", "SegmentSummary", "SegmentedFrame", "Settings", "StageTimes", "segment_frames", "segment_video"]
