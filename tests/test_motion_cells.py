"""The motion stage rasterises each frame's block vectors once and hands the cells on: the scheduler
reads their intra coverage, the flow accumulator their field. Decisions and flows equal those of the
scheduler and accumulator each rasterising the frame themselves, exactly, on a clip with intra blocks,
a scene cut and I-frames."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from _segment_fixtures import clip_frames
from arseg_cli.groups import scheduled_frames
from arseg_cli.schedule import Scheduler
from arseg_cli.stage_times import StageClock, StageTimes
from arseg_cli.video import block_cells
from arseg_cli.video.decode import decode_frames
from arseg_cli.video.motion import FlowAccumulator
from arseg_cli.video.records import DecodedFrame
from arseg_cli.video.synthetic import write_clip

L = 6


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[DecodedFrame]:
    """Two scenes cut hard at frame 5 (x264's scene-cut detection off: the cut is a P-frame of intra
    blocks), an I-frame every 8 frames."""
    path = tmp_path_factory.mktemp("cells") / "cut.mp4"
    write_clip(clip_frames(5, seed=1) + clip_frames(11, seed=2), path, keyint=8, preset="ultrafast", fps=25)
    return list(decode_frames(path))


@pytest.fixture
def rasterised(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Counts the rasterisations per motion record (one per frame)."""
    calls: Counter[int] = Counter()
    original = block_cells.rasterise_blocks

    def counting(motion, frame_hw, cell=block_cells.CELL_PX):  # type: ignore[no-untyped-def]
        calls[id(motion)] += 1
        return original(motion, frame_hw, cell)

    monkeypatch.setattr(block_cells, "rasterise_blocks", counting)
    return calls


def _each_on_its_own(frames: list[DecodedFrame]) -> list[tuple[object, np.ndarray | None]]:
    """The scheduler and the accumulator given no cells: each rasterises what it needs itself."""
    scheduler, accumulator, out = Scheduler("adaptive", L), FlowAccumulator(), []
    for frame in frames:
        decision = scheduler.decide(frame)
        flow = accumulator.push(frame, is_key=decision.is_key).flow_px
        out.append((decision, None if decision.is_key else flow))
    return out


def test_scheduler_and_flow_share_one_rasterisation_per_frame(frames: list[DecodedFrame], rasterised: Counter[int]) -> None:
    clock = StageClock(torch.device("cpu"), StageTimes())
    staged = [(item.decision, item.flow_px) for item in scheduled_frames(frames, Scheduler("adaptive", L), FlowAccumulator(), clock)]
    once = dict(rasterised)
    rasterised.clear()
    alone = _each_on_its_own(frames)

    assert [decision for decision, _ in staged] == [decision for decision, _ in alone]
    for (_, ours), (_, theirs) in zip(staged, alone):
        assert (ours is None) == (theirs is None)
        if ours is not None:
            np.testing.assert_array_equal(ours, theirs)
    reasons = [decision.reason for decision, _ in staged]
    assert "intra" in reasons and "iframe" in reasons and "interval" in reasons  # every kind of cut is covered
    assert max(once.values()) == 1  # no frame rasterised twice
    nonkeys = sum(not decision.is_key for decision, _ in staged)
    assert sum(once.values()) == nonkeys + reasons.count("intra")  # and only the frames whose motion is used
    assert sum(rasterised.values()) > sum(once.values())  # each on its own: the non-keyframes twice
