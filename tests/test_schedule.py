"""Keyframe scheduling: where each policy puts keyframes, on hand-made frames and on an encoded scene cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arseg_cli.errors import OptionsError
from arseg_cli.schedule import FrameKind, Scheduler, intra_fraction
from arseg_cli.video.decode import decode_frames
from arseg_cli.video.motion import flows_to_key
from arseg_cli.video.records import BlockMotion, DecodedFrame, PictType
from _segment_fixtures import write_cut_clip

H, W = 16, 32  # a 2 x 4 grid of 8-px cells


def _motion(cells: int) -> BlockMotion:
    """Past-reference 8x8 blocks on the first `cells` cells of the grid (row-major), offset (1, 0)."""
    centres = [(8 * (i % 4) + 4, 8 * (i // 4) + 4) for i in range(cells)]
    return BlockMotion(
        dst_xy=np.array(centres, np.int32).reshape(-1, 2),
        size_wh=np.full((cells, 2), 8, np.int32),
        offset_px=np.tile(np.array([1.0, 0.0], np.float32), (cells, 1)),
        source=np.full(cells, -1, np.int8),
        frame_hw=(H, W),
    )


def _frame(index: int, pict: PictType = "P", covered_cells: int = 8) -> DecodedFrame:
    motion = None if pict == "I" else _motion(covered_cells)
    return DecodedFrame(index, index, index / 25, np.zeros((H, W, 3), np.uint8), pict, pict == "I", motion)


def _keys(scheduler: Scheduler, frames: list[DecodedFrame]) -> list[int]:
    return [f.index for f in frames if scheduler.decide(f).kind is FrameKind.KEY]


def test_fixed_puts_a_keyframe_every_l_frames_whatever_the_stream() -> None:
    frames = [_frame(i, "I" if i in (0, 5) else "P", covered_cells=1 if i == 7 else 8) for i in range(10)]
    assert _keys(Scheduler("fixed", 4), frames) == [0, 4, 8]


def test_iframe_follows_the_stream_and_never_leaves_more_than_l_frames() -> None:
    frames = [_frame(i, "I" if i in (0, 2, 9) else "P") for i in range(12)]
    scheduler = Scheduler("iframe", 4)
    decisions = [scheduler.decide(f) for f in frames]
    assert [i for i, d in enumerate(decisions) if d.is_key] == [0, 2, 6, 9]
    assert [d.reason for d in decisions if d.is_key] == ["first", "iframe", "interval", "iframe"]
    assert [d.distance for d in decisions] == [0, 1, 0, 1, 2, 3, 0, 1, 2, 0, 1, 2]
    assert scheduler.keyframes == 4


def test_motion_to_key_and_the_iframe_policy_choose_the_same_keyframes() -> None:
    """`arseg motion --to-key L` (flows_to_key) and `segment --keyframe-policy iframe` share one rule."""
    frames = [_frame(i, "I" if i in (0, 2, 9, 10) else "P", covered_cells=0 if i == 13 else 8) for i in range(20)]
    for interval in (1, 3, 4, 7):
        scheduler = Scheduler("iframe", interval)
        scheduled = [f.index for f in frames if scheduler.decide(f).is_key]
        motion_keys = sorted({record.key_index for _, record in flows_to_key(frames, keyframe_interval=interval)})
        assert motion_keys == scheduled
    assert sorted({r.key_index for _, r in flows_to_key(frames)}) == [0, 2, 9, 10, 13]


def test_adaptive_adds_a_keyframe_where_most_of_the_frame_has_no_past_motion() -> None:
    # 8 cells: 3 covered -> 5/8 intra (above 0.5); 4 covered -> exactly 0.5 (not above).
    frames = [_frame(0, "I"), _frame(1), _frame(2, covered_cells=3), _frame(3), _frame(4, covered_cells=4)]
    scheduler = Scheduler("adaptive", 12)
    decisions = [scheduler.decide(f) for f in frames]
    assert [d.reason for d in decisions] == ["first", "", "intra", "", ""]
    assert _keys(Scheduler("iframe", 12), frames) == [0]


def test_intra_fraction_is_the_share_of_cells_without_a_past_vector() -> None:
    assert intra_fraction(_frame(1, covered_cells=8)) == 0.0
    assert intra_fraction(_frame(1, covered_cells=2)) == 0.75
    assert intra_fraction(_frame(0, "I")) == 1.0


def test_keyframe_interval_one_makes_every_frame_a_keyframe() -> None:
    frames = [_frame(i, "I" if i == 0 else "P") for i in range(5)]
    for policy in ("fixed", "iframe", "adaptive"):
        assert _keys(Scheduler(policy, 1), frames) == [0, 1, 2, 3, 4]  # type: ignore[arg-type]


@pytest.mark.parametrize(("policy", "keyint", "threshold"), [("sometimes", 4, 0.5), ("fixed", 0, 0.5), ("adaptive", 4, 0.0)])
def test_bad_scheduler_options_are_usage_errors(policy: str, keyint: int, threshold: float) -> None:
    with pytest.raises(OptionsError):
        Scheduler(policy, keyint, intra_threshold=threshold)  # type: ignore[arg-type]


def test_adaptive_finds_an_encoded_scene_cut_that_is_not_an_i_frame(tmp_path: Path) -> None:
    clip = write_cut_clip(tmp_path / "cut.mp4", before=5, after=4)
    frames = list(decode_frames(clip))
    assert [f.pict_type for f in frames][5] == "P"  # x264's scene-cut detection is off
    assert intra_fraction(frames[5]) > 0.5 > max(intra_fraction(f) for f in frames[1:5] + frames[6:])
    assert _keys(Scheduler("adaptive", 12), frames) == [0, 5]
    assert _keys(Scheduler("iframe", 12), frames) == [0]
    assert _keys(Scheduler("fixed", 4), frames) == [0, 4, 8]
