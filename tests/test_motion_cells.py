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
from test_motion import _named, frame
from arseg_cli.groups import scheduled_frames
from arseg_cli.schedule import Scheduler
from arseg_cli.stage_times import StageClock, StageTimes
from arseg_cli.video import block_cells
from arseg_cli.video.decode import decode_frames
from arseg_cli.video.motion import FlowAccumulator
from arseg_cli.video.records import DecodedFrame, FlowToKey
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


def test_named_references_are_painted_in_the_same_rasterisation(rasterised: Counter[int]) -> None:
    # HEVC-like blocks naming their reference: a pan of (0.75, -0.5) px per frame, the top row of cells
    # taken from two frames back. Keyframes every 4 (0, 4, 8): frames 5 and 9 point partly before theirs.
    hw, step = (16, 32), (0.75, -0.5)
    two_back = [(2 * step[0], 2 * step[1], -2)] * 4 + [(step[0], step[1], -1)] * 4
    frames = [frame(0, "I", None), frame(1, "P", _named(hw, [(step[0], step[1], -1)] * 8))]
    frames += [frame(t, "P", _named(hw, two_back)) for t in range(2, 10)]
    clock = StageClock(torch.device("cpu"), StageTimes())
    staged = list(scheduled_frames(frames, Scheduler("adaptive", 4), FlowAccumulator(), clock))

    keys = [item.frame.index for item in staged if item.decision.is_key]
    assert keys == [0, 4, 8]
    assert sorted(rasterised.values()) == [1] * (len(frames) - len(keys))  # each non-keyframe once
    for item in staged:
        if item.flow_px is not None:
            since = item.frame.index - max(k for k in keys if k <= item.frame.index)
            assert np.all(item.flow_px[0] == step[0] * since) and np.all(item.flow_px[1] == step[1] * since)
    exact = {t: record.exact for t, record in enumerate(_flows(frames, keys))}
    # 5 and 9 point before their keyframe; 6 and 7 compose through 5 (not exact).
    assert [t for t, is_exact in exact.items() if not is_exact] == [5, 6, 7, 9]


def _flows(frames: list[DecodedFrame], keys: list[int]) -> list[FlowToKey]:
    accumulator = FlowAccumulator()
    return [accumulator.push(f, is_key=f.index in keys) for f in frames]
