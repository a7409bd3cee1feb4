"""The streaming pipeline: one output per frame in order, keyframes where the policy says, and the same
labels as the model API called by hand (per-frame HR for L = 1, LR + CReFF with the same flow)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from _segment_fixtures import HEIGHT, L, WIDTH, tiny_model, write_cut_clip, write_test_clip
from _segment_fixtures import one_torch_thread  # noqa: F401  (autouse fixture)
from arseg_cli.errors import OptionsError
from arseg_cli.model.resize import downscale
from arseg_cli.model.arseg import ARSeg
from arseg_cli.palettes import CAMVID, CITYSCAPES
from arseg_cli.pipeline import OutputTargets, Settings, StageTimes, segment_frames, segment_video
from arseg_cli.schedule import FrameKind
from arseg_cli.video.decode import decode_frames
from arseg_cli.video.writers import read_label_video
from arseg_cli.video.motion import FlowAccumulator
from arseg_cli.video.records import DecodedFrame

FRAMES = 9


@pytest.fixture(scope="module")
def model() -> ARSeg:
    return tiny_model()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", FRAMES)


def _by_hand_labels(scores: torch.Tensor) -> np.ndarray:
    return scores.argmax(dim=1)[0].to(torch.uint8).numpy()


def test_every_frame_gives_one_output_in_order_with_keyframes_every_l(model: ARSeg, clip: Path) -> None:
    times = StageTimes()
    results = list(segment_frames(decode_frames(clip), model, Settings(keyframe_interval=L, policy="fixed"), times=times))
    assert [r.index for r in results] == list(range(FRAMES))
    assert [r.kind for r in results] == [FrameKind.KEY if i % L == 0 else FrameKind.NONKEY for i in range(FRAMES)]
    assert [r.key_index for r in results] == [i - i % L for i in range(FRAMES)]
    assert all(r.labels.shape == (HEIGHT, WIDTH) and r.labels.dtype == np.uint8 for r in results)
    assert len({r.labels.tobytes() for r in results}) > 1  # the random model does not answer one constant
    assert times.decode > 0 and times.motion > 0 and times.model > 0


def test_nonkeyframes_equal_the_model_api_called_by_hand_with_the_same_flow(model: ARSeg, clip: Path) -> None:
    results = list(segment_frames(decode_frames(clip), model, Settings(scale=0.5, keyframe_interval=L, policy="fixed")))
    accumulator = FlowAccumulator()
    with torch.inference_mode():
        feat = None
        for frame, result in zip(decode_frames(clip), results):
            flow = accumulator.push(frame, is_key=frame.index % L == 0)
            x = model.normalize(frame.rgb)
            if frame.index % L == 0:
                scores, feat = model.keyframe(x)
            else:
                assert flow.key_index == result.key_index and np.abs(flow.flow_px).max() > 0
                flow_t = torch.from_numpy(flow.flow_px[None])
                scores = model.nonkeyframe(downscale(x, 0.5), feat, flow_t)
            np.testing.assert_array_equal(result.labels, _by_hand_labels(scores))


def test_the_default_policy_starts_a_keyframe_at_a_scene_cut(model: ARSeg, tmp_path: Path) -> None:
    clip = write_cut_clip(tmp_path / "cut.mp4", before=3, after=3)
    results = list(segment_frames(decode_frames(clip), model, Settings(keyframe_interval=L)))
    assert [r.reason for r in results] == ["first", "", "", "intra", "", ""]
    assert [r.distance for r in results] == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("settings", [Settings(keyframe_interval=1), Settings(scale=1.0, keyframe_interval=L)])
def test_l_one_or_scale_one_is_per_frame_hr(model: ARSeg, clip: Path, settings: Settings) -> None:
    results = list(segment_frames(decode_frames(clip, end=4), model, settings))
    assert all(r.kind is FrameKind.KEY for r in results)
    with torch.inference_mode():
        for frame, result in zip(decode_frames(clip, end=4), results):
            np.testing.assert_array_equal(result.labels, _by_hand_labels(model.keyframe(model.normalize(frame.rgb))[0]))


def test_hr_only_weights_run_per_frame_hr_and_refuse_a_scale(clip: Path) -> None:
    hr_only = tiny_model(scale=None)
    assert Settings().resolve(hr_only) == (1.0, 1)
    with pytest.raises(OptionsError, match="no LR branch"):
        Settings(scale=0.5).resolve(hr_only)


def test_segment_video_writes_every_output_keeping_the_input_timing(model: ARSeg, tmp_path: Path) -> None:
    clip = write_test_clip(tmp_path / "in.mp4", 6, fps=Fraction(30000, 1001))  # type: ignore[arg-type]
    targets = OutputTargets(png_dir=str(tmp_path / "png"), colour=str(tmp_path / "c.mp4"),
                            overlay=str(tmp_path / "o.mp4"), lossless=str(tmp_path / "l.mkv"))  # fmt: skip
    summary = segment_video(clip, model, targets, Settings(keyframe_interval=L), palette=CAMVID)
    expected = np.stack([r.labels for r in segment_frames(decode_frames(clip), model, Settings(keyframe_interval=L))])
    assert (summary.frames, summary.keyframes, summary.size_hw) == (6, 2, (HEIGHT, WIDTH))
    pngs = sorted((tmp_path / "png").iterdir())
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(6)]
    np.testing.assert_array_equal(np.stack([np.asarray(Image.open(p)) for p in pngs]), expected)
    np.testing.assert_array_equal(np.stack(list(read_label_video(tmp_path / "l.mkv"))), expected)
    source_duration = _duration(clip)
    for name in ("c.mp4", "o.mp4"):
        with av.open(str(tmp_path / name)) as container:
            stream = container.streams.video[0]
            assert sum(1 for _ in container.decode(stream)) == 6
            assert stream.average_rate == Fraction(30000, 1001)
        assert _duration(tmp_path / name) == pytest.approx(source_duration, abs=1e-3)
    macs = summary.macs(model.arch, model.num_classes)
    assert macs["mean"] == pytest.approx((2 * macs["keyframe"] + 4 * macs["nonkeyframe"]) / 6)
    assert macs["nonkeyframe"] < macs["keyframe"]


def _duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        step = frames[1].time - frames[0].time
        return float(frames[-1].time - frames[0].time + step)


def test_a_palette_with_another_class_count_is_refused_before_any_output(model: ARSeg, clip: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionsError, match="19 classes but the weights have 12"):
        segment_video(clip, model, OutputTargets(png_dir=str(tmp_path / "png")), palette=CITYSCAPES)
    assert not (tmp_path / "png").exists()


def test_a_truncated_video_keeps_the_frames_decoded_before_the_damage(model: ARSeg, tmp_path: Path) -> None:
    whole = write_test_clip(tmp_path / "whole.ts", 12)
    data = whole.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) * 2 // 3 + 5])  # inside a transport packet, mid-stream
    targets = OutputTargets(png_dir=str(tmp_path / "png"), lossless=str(tmp_path / "l.mkv"))
    summary = segment_video(cut, model, targets, Settings(keyframe_interval=L), palette=CAMVID)
    assert summary.damaged is not None and "truncated" in summary.damaged
    written = sorted((tmp_path / "png").iterdir())
    assert 0 < len(written) == summary.frames < 12
    assert len(list(read_label_video(tmp_path / "l.mkv"))) == len(written)


def test_weights_options_name_official_files_by_role_by_name_or_by_release_directory(tmp_path: Path) -> None:
    from test_official import release

    from arseg_cli.model.weights_specs import load_model
    from arseg_cli.model import load_official

    (tmp_path / "flat").mkdir()
    files = release(tmp_path / "flat", "camvid-bise18")
    tree = tmp_path / "checkpoints" / "camvid-bise18"
    for role, folder in (("hr", "HR"), ("ar", "AR")):
        (tree / folder).mkdir(parents=True)
        (tree / folder / files[role].name).write_bytes(files[role].read_bytes())
    expected = load_official(hr=files["hr"], ar=files["ar"]).state_dict()
    forms = [
        [f"hr={files['hr']}", f"ar={files['ar']}"],
        [str(files["hr"]), str(files["ar"])],  # roles from the names' scale field
        [str(tmp_path / "checkpoints")],  # the release directory, with --arch
    ]
    for specs in forms:
        model, _ = load_model(specs, arch="camvid-bise18")
        assert model.has_creff and model.scale == 0.5
        state = model.state_dict()
        assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in expected)
    with pytest.raises(OptionsError, match="role"):
        load_model([f"key={files['hr']}"])
    with pytest.raises(OptionsError, match="two HR"):
        load_model([f"hr={files['hr']}", f"hr={files['hr']}"])


def test_no_frame_is_kept_once_its_result_is_consumed(model: ARSeg, clip: Path) -> None:
    """Streaming frame by frame (--low-latency): the pipeline holds on to no earlier frame (memory flat
    in the video's length). The grouped default holds one group: tests/test_groups.py."""
    import gc
    import weakref

    seen: list[weakref.ref[np.ndarray]] = []

    def frames() -> Iterator[DecodedFrame]:
        for frame in decode_frames(clip):
            seen.append(weakref.ref(frame.rgb))
            yield frame

    def earlier_frames_freed() -> bool:
        return all(ref() is None for ref in seen[:-1])

    for result in segment_frames(frames(), model, Settings(keyframe_interval=L, policy="fixed", low_latency=True)):
        del result
        if not earlier_frames_freed():
            # Perhaps only in a garbage cycle. Collecting costs ~1 s in a process that has run much of
            # the suite, so only when reference counting alone left an earlier frame alive.
            gc.collect()
        assert earlier_frames_freed(), "an earlier frame is still referenced"
    assert len(seen) == FRAMES
