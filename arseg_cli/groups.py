"""The stages between decoding and the model: schedule + motion per frame, then keyframe groups.

A keyframe group is a keyframe and the non-keyframes that follow it up to the next keyframe: at most L
frames, since the scheduler starts a keyframe at the latest L frames after the last one. The frames of
a group depend only on their keyframe's feature and their own flow to it, so the model can run on the
whole group at once (`group_step.GroupStep`). Memory stays flat with the video's length: a group holds
at most L decoded frames and their flows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from arseg_cli.schedule import Decision, Scheduler
from arseg_cli.stage_times import StageClock
from arseg_cli.video.block_cells import BlockCells
from arseg_cli.video.decode import PartialDecodeError
from arseg_cli.video.motion import FlowAccumulator
from arseg_cli.video.records import DecodedFrame


@dataclass(frozen=True, slots=True)
class ScheduledFrame:
    """A decoded frame, the scheduler's decision on it and, for a non-keyframe, its backward flow to
    the keyframe ((2, H, W) float32, pixels; None when no flow is needed: L = 1)."""

    frame: DecodedFrame
    decision: Decision
    flow_px: np.ndarray | None

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.frame.rgb.shape[0]), int(self.frame.rgb.shape[1]))


def scheduled_frames(
    frames: Iterable[DecodedFrame], scheduler: Scheduler, accumulator: FlowAccumulator | None, clock: StageClock
) -> Iterator[ScheduledFrame]:
    """Each frame with its decision and (with an accumulator) its flow to the keyframe, in order.

    The frame's block motion is rasterised at most once (`BlockCells`, on first use): the scheduler
    reads its intra coverage, the accumulator its field. Without an accumulator (L = 1) every frame
    is a keyframe and no motion is needed.
    """
    for frame in frames:
        if accumulator is None:
            yield ScheduledFrame(frame, scheduler.decide(frame), None)
            continue
        with clock.stage("motion"):
            cells = BlockCells.of(frame, accumulator.cell)
            decision = scheduler.decide(frame, cells)
            flow = accumulator.push(frame, is_key=decision.is_key, cells=cells).flow_px
        yield ScheduledFrame(frame, decision, flow if not decision.is_key else None)


def keyframe_groups(scheduled: Iterable[ScheduledFrame], max_frames: int) -> Iterator[list[ScheduledFrame]]:
    """The frames in runs that each start at a keyframe and hold at most `max_frames` frames, in order.

    A group is handed on as soon as it is known to be complete: at `max_frames` frames, or when the
    next keyframe arrives. `max_frames` = 1 hands on every frame alone (low latency). When decoding
    stops at damage (PartialDecodeError), the frames decoded before it are handed on first.
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    group: list[ScheduledFrame] = []
    try:
        for item in scheduled:
            if item.decision.is_key and group:
                yield group
                group = []
            group.append(item)
            if len(group) >= max_frames:
                yield group
                group = []
    except PartialDecodeError:
        if group:
            yield group
        raise
    if group:
        yield group


__all__ = ["ScheduledFrame", "keyframe_groups", "scheduled_frames"]
