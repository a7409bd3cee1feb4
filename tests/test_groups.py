"""Keyframe groups, the default unit of work: a group is a keyframe and the non-keyframes after it (at
most L frames); the model runs on the whole group. Grouped and frame-by-frame (--low-latency) runs give
the same labels, every input frame gives exactly one output frame in order, memory holds one group,
and Ctrl-C and --resume keep their guarantees with a group in flight."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _segment_fixtures import HEIGHT, L, WIDTH, clip_frames, tiny_model, tiny_weights, write_cut_clip, write_test_clip
from _segment_fixtures import one_torch_thread  # noqa: F401  (autouse fixture)
from arseg_cli.frame_step import FrameStep
from arseg_cli.group_step import GroupStep
from arseg_cli.groups import ScheduledFrame, keyframe_groups
from arseg_cli.model.arseg import ARSeg
from arseg_cli.palettes import CAMVID
from arseg_cli.pipeline import OutputTargets, SegmentedFrame, Settings, segment_frames, segment_video
from arseg_cli.schedule import Decision, FrameKind
from arseg_cli.video.decode import PartialDecodeError, decode_frames
from arseg_cli.video.records import DecodedFrame
from arseg_cli.video.synthetic import write_clip
from arseg_cli.video.writers import read_label_video

#: Labels of the two modes may differ where two classes' scores tie to within float rounding: batched
#: and single-frame convolutions sum in another order (about 1e-6 apart).
MIN_AGREEMENT = 0.9999


@pytest.fixture(scope="module")
def model() -> ARSeg:
    return tiny_model()


def _run(frames: Iterator[DecodedFrame], model: ARSeg, settings: Settings) -> list[SegmentedFrame]:
    return list(segment_frames(frames, model, settings))


def _assert_modes_agree(grouped: list[SegmentedFrame], single: list[SegmentedFrame], frames: int) -> None:
    assert [r.index for r in grouped] == [r.index for r in single] == list(range(frames))
    assert [(r.kind, r.reason, r.key_index, r.distance) for r in grouped] == [
        (r.kind, r.reason, r.key_index, r.distance) for r in single
    ]
    same = np.mean(np.stack([g.labels for g in grouped]) == np.stack([s.labels for s in single]))
    assert same >= MIN_AGREEMENT, same


def test_grouped_and_low_latency_agree_on_a_b_frame_clip(model: ARSeg, tmp_path: Path) -> None:
    frames = 17
    clip = write_clip(clip_frames(frames), tmp_path / "b.mkv", keyint=8, bframes=2, preset="ultrafast")
    assert "B" in {frame.pict_type for frame in decode_frames(clip, motion="none")}
    settings = Settings(keyframe_interval=L)
    grouped = _run(decode_frames(clip), model, settings)
    single = _run(decode_frames(clip), model, Settings(keyframe_interval=L, low_latency=True))
    _assert_modes_agree(grouped, single, frames)
    assert sum(r.kind is FrameKind.NONKEY for r in grouped) >= frames // 2  # groups with several non-keyframes


def test_grouped_and_low_latency_agree_across_scene_cuts(model: ARSeg, tmp_path: Path) -> None:
    """Adaptive keyframes at the cut end a group early: groups of unequal length."""
    clip = write_cut_clip(tmp_path / "cut.mp4", before=6, after=7)
    grouped = _run(decode_frames(clip), model, Settings(keyframe_interval=L, policy="adaptive"))
    single = _run(decode_frames(clip), model, Settings(keyframe_interval=L, policy="adaptive", low_latency=True))
    _assert_modes_agree(grouped, single, 13)
    assert grouped[6].kind is FrameKind.KEY and grouped[6].reason == "intra"


def test_grouped_and_low_latency_agree_on_stdin(tmp_path: Path) -> None:
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    stream = write_test_clip(tmp_path / "in.ts", 11).read_bytes()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ARSEG_WEIGHTS": str(weights)}
    runs = [subprocess.run([sys.executable, "-m", "arseg_cli", "segment", "-", "-o", "-", "-L", str(L), *extra],
                           input=stream, capture_output=True, env=env, timeout=120)
            for extra in ([], ["--low-latency"])]  # fmt: skip
    for run in runs:
        assert run.returncode == 0, run.stderr.decode()
    grouped, single = (np.frombuffer(run.stdout, np.uint8).reshape(-1, HEIGHT, WIDTH) for run in runs)
    assert len(grouped) == len(single) == 11  # one output per input frame
    assert np.mean(grouped == single) >= MIN_AGREEMENT


def test_low_latency_option_and_its_json_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from arseg_cli.cli import main

    monkeypatch.setenv("ARSEG_WEIGHTS", str(tiny_weights(tmp_path / "tiny.safetensors")))
    clip = write_test_clip(tmp_path / "clip.mp4", 6)
    for extra, expected in (([], False), (["--low-latency"], True)):
        out = tmp_path / f"masks-{expected}"
        assert main(["segment", str(clip), "-o", str(out), "-L", str(L), "--json", "-q", *extra]) == 0
        summary = json.loads(capsys.readouterr().out)[0]
        assert summary["low_latency"] is expected and summary["frames"] == 6
        assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(6)]


class _RecordingStep(FrameStep):
    """FrameStep that keeps every non-keyframe's scores, one tensor per frame, in call order: the scores
    of each batch that GroupStep asks labels of."""

    def __init__(self, model: ARSeg) -> None:
        super().__init__(model, 0.5)
        self.scores: list[torch.Tensor] = []
        self.batches: list[int] = []

    def nonkey_labels(self, x: torch.Tensor, feat: torch.Tensor, flow_px: np.ndarray | torch.Tensor) -> torch.Tensor:
        self.scores.extend(self.nonkey(x, feat, flow_px).unbind(0))
        self.batches.append(int(x.shape[0]))
        return super().nonkey_labels(x, feat, flow_px)


def _scheduled_groups(clip: Path, model: ARSeg) -> list[list[ScheduledFrame]]:
    from arseg_cli.groups import scheduled_frames
    from arseg_cli.schedule import Scheduler
    from arseg_cli.stage_times import StageClock, StageTimes
    from arseg_cli.video.motion import FlowAccumulator

    clock = StageClock(model.device, StageTimes())
    scheduled = scheduled_frames(decode_frames(clip), Scheduler("fixed", 6), FlowAccumulator(), clock)
    return list(keyframe_groups(scheduled, 6))


def test_batched_logits_equal_frame_by_frame_logits(model: ARSeg, tmp_path: Path) -> None:
    """The maths is the same: the LR + CReFF step on a batch of a group's frames gives each frame's
    logits to 1e-4 of the step on that frame alone."""
    groups = _scheduled_groups(write_test_clip(tmp_path / "clip.mp4", 12, keyint=6), model)
    assert [len(group) for group in groups] == [6, 6]
    batched, single = _RecordingStep(model), _RecordingStep(model)
    with torch.inference_mode():
        labels = [GroupStep(batched, keep_feature=True, batch=4).labels(group) for group in groups]
        one_by_one = GroupStep(single, keep_feature=True, batch=1)
        single_labels = [one_by_one.labels(group) for group in groups]
    assert batched.batches == [4, 1, 4, 1] and single.batches == [1] * 10
    for a, b in zip(batched.scores, single.scores):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    assert np.mean(np.stack(sum(labels, [])) == np.stack(sum(single_labels, []))) >= MIN_AGREEMENT


def _item(index: int, key: bool) -> ScheduledFrame:
    frame = DecodedFrame(index=index, pts=index, time_s=None, rgb=np.zeros((2, 2, 3), np.uint8), pict_type="P",
                         motion=None, is_stream_keyframe=key)  # type: ignore[call-arg]
    return ScheduledFrame(frame, Decision(FrameKind.KEY if key else FrameKind.NONKEY, "x" if key else "", 0), None)


def test_groups_start_at_keyframes_hold_at_most_l_frames_and_keep_the_order() -> None:
    keys = [1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0]
    items = [_item(i, bool(k)) for i, k in enumerate(keys)]
    groups = list(keyframe_groups(iter(items), 4))
    assert [[item.frame.index for item in group] for group in groups] == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9], [10], [11, 12]]
    assert [[item.frame.index for item in group] for group in keyframe_groups(iter(items), 1)] == [[i] for i in range(13)]


def test_damage_mid_group_hands_on_the_frames_decoded_before_it() -> None:
    def damaged() -> Iterator[ScheduledFrame]:
        yield from (_item(i, i == 0) for i in range(3))
        raise PartialDecodeError("broken at frame 3", 3)

    groups = keyframe_groups(damaged(), 4)
    assert [item.frame.index for item in next(groups)] == [0, 1, 2]
    with pytest.raises(PartialDecodeError):
        next(groups)


def test_memory_holds_one_group_at_most(model: ARSeg, tmp_path: Path) -> None:
    """Grouped: once a result is consumed, no frame of an earlier group is referenced, and never more
    than L + 1 frames are alive (the group and the next keyframe that closed it)."""
    clip = write_test_clip(tmp_path / "clip.mp4", 14)
    seen: list[weakref.ref[np.ndarray]] = []

    def frames() -> Iterator[DecodedFrame]:
        for frame in decode_frames(clip):
            seen.append(weakref.ref(frame.rgb))
            yield frame

    count = 0
    for result in segment_frames(frames(), model, Settings(keyframe_interval=L, policy="fixed")):
        key_index, count = result.key_index, count + 1
        del result
        gc.collect()
        alive = [i for i, ref in enumerate(seen) if ref() is not None]
        assert all(i >= key_index for i in alive), (key_index, alive)
        assert len(alive) <= L + 1
    assert count == len(seen) == 14


def test_batches_of_one_for_a_backend_that_takes_batch_one(model: ARSeg, tmp_path: Path) -> None:
    """A model with max_batch = 1 (the ONNX graphs) gets the group's non-keyframes one by one."""

    class BatchOne:
        max_batch = 1

        def __init__(self, inner: ARSeg) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def optimize_for_inference(self, *, half: bool = False) -> BatchOne:
            self.inner.optimize_for_inference(half=half)
            return self

        def nonkeyframe(self, x_lr: torch.Tensor, feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
            assert x_lr.shape[0] == feat.shape[0] == flow.shape[0] == 1
            return self.inner.nonkeyframe(x_lr, feat, flow)

    clip = write_test_clip(tmp_path / "clip.mp4", 9)
    results = _run(decode_frames(clip), BatchOne(model), Settings(keyframe_interval=L, policy="fixed"))  # type: ignore[arg-type]
    single = _run(decode_frames(clip), model, Settings(keyframe_interval=L, policy="fixed", low_latency=True))
    for a, b in zip(results, single):
        np.testing.assert_array_equal(a.labels, b.labels)


def _pngs(directory: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(directory.glob("*.png"))])


@pytest.mark.parametrize("stop_after", [2, 6])
def test_ctrl_c_with_a_group_in_flight_keeps_valid_outputs_and_resume_completes_them(
    model: ARSeg, tmp_path: Path, stop_after: int
) -> None:
    """Ctrl-C after `stop_after` frames were written, with the rest of their group (L = 4) already
    segmented but not written: every output holds exactly the frames written; --resume, grouped or
    frame by frame, then gives the uninterrupted run's labels."""
    clip = write_test_clip(tmp_path / "clip.mp4", 13)

    def targets(folder: Path) -> OutputTargets:
        return OutputTargets(png_dir=str(folder / "masks"), lossless=str(folder / "labels.mkv"))

    def stop(frame: SegmentedFrame, *_: object) -> None:
        if frame.index + 1 == stop_after:
            raise KeyboardInterrupt

    settings = Settings(keyframe_interval=L)
    with pytest.raises(KeyboardInterrupt):
        segment_video(clip, model, targets(tmp_path / "stopped"), settings, palette=CAMVID, on_frame=stop)
    kept = _pngs(tmp_path / "stopped" / "masks")
    assert len(kept) == stop_after
    np.testing.assert_array_equal(np.stack(list(read_label_video(tmp_path / "stopped" / "labels.mkv"))), kept)

    whole = segment_video(clip, model, targets(tmp_path / "whole"), settings, palette=CAMVID)
    assert whole.frames == 13
    for low_latency, folder in ((False, "stopped"), (True, "stopped-ll")):
        if low_latency:  # the same stopped state, resumed frame by frame
            (tmp_path / folder / "masks").mkdir(parents=True)
            for index in range(stop_after):
                name = f"{index:06d}.png"
                (tmp_path / folder / "masks" / name).write_bytes((tmp_path / "whole" / "masks" / name).read_bytes())
        resumed = segment_video(clip, model, targets(tmp_path / folder), Settings(keyframe_interval=L, low_latency=low_latency),
                                palette=CAMVID, resume=True, force=True)  # fmt: skip
        assert resumed.frames == 13
        np.testing.assert_array_equal(_pngs(tmp_path / folder / "masks"), _pngs(tmp_path / "whole" / "masks"))
        np.testing.assert_array_equal(np.stack(list(read_label_video(tmp_path / folder / "labels.mkv"))),
                                      _pngs(tmp_path / "whole" / "masks"))  # fmt: skip


def test_a_group_batch_below_one_is_an_options_error(model: ARSeg) -> None:
    from arseg_cli.errors import OptionsError

    with pytest.raises(OptionsError, match="group batch"):
        list(segment_frames(iter([]), model, Settings(group_batch=0)))
