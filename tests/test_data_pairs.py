"""make_pair and PairCache: decoded frames close to the source, bitstream flow that agrees with the
ground truth, zero flow at d = 0, determinism, and a cache that returns what make_pair made."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from _data_fixtures import SYNTH_SPEC, make_synthstreet, save_png, texture_frame

from arseg_cli.data import Dataset, LabelledFrame, PairCache, make_pair, open_dataset
from arseg_cli.data.sources import ImageSequenceSource
from arseg_cli.errors import InputError, OptionsError
from arseg_cli.palettes import CAMVID
from arseg_cli.synth import SynthClip


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return open_dataset(make_synthstreet(tmp_path_factory.mktemp("synth") / "set"), split="all")


def _frame(dataset: Dataset, clip: int, index: int) -> LabelledFrame:
    return dataset.frames[clip * SYNTH_SPEC.frames + index]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse)


def test_decoded_frames_are_close_to_the_source(synth: Dataset) -> None:
    frame = _frame(synth, 0, 11)
    pair = make_pair(synth, frame, 11)
    source = frame.source.read(0, 12)
    # crf 23 on SynthStreet's fine textures at 128x192 measured 28-31 dB (9 clips, 3 seeds): 26 dB
    # leaves room for encoder versions, while a wrong or shifted frame scores below 15 dB.
    assert psnr(pair.rgb, source[11]) > 26 and psnr(pair.key_rgb, source[0]) > 26
    assert psnr(pair.rgb, source[10]) < psnr(pair.rgb, source[11]) - 3
    np.testing.assert_array_equal(pair.labels, synth.read_labels(frame))
    assert pair.flow.shape == (2, SYNTH_SPEC.height, SYNTH_SPEC.width) and pair.flow.dtype == np.float32
    assert (pair.name, pair.distance) == (frame.name, 11)


def test_source_frames_carry_the_data_sets_pixels_and_the_same_flow(synth: Dataset, tmp_path: Path) -> None:
    frame = _frame(synth, 0, 10)
    decoded, source = make_pair(synth, frame, 7), make_pair(synth, frame, 7, frames="source")
    pixels = frame.source.read(3, 11)
    np.testing.assert_array_equal(source.key_rgb, pixels[0])
    np.testing.assert_array_equal(source.rgb, pixels[-1])
    np.testing.assert_array_equal(source.flow, decoded.flow)  # the vectors of the same compressed snippet
    np.testing.assert_array_equal(source.labels, decoded.labels)
    assert not np.array_equal(source.rgb, decoded.rgb)
    cache = PairCache(tmp_path / "cache")
    assert cache.path_for(synth, frame, 7, 23, "medium", "source") != cache.path_for(synth, frame, 7, 23, "medium")
    np.testing.assert_array_equal(cache.get(synth, frame, 7, frames="source").rgb, pixels[-1])
    with pytest.raises(InputError, match="unknown pair frames"):
        make_pair(synth, frame, 7, frames="raw")  # type: ignore[arg-type]


def test_distance_zero_is_the_keyframe_with_zero_flow(synth: Dataset) -> None:
    pair = make_pair(synth, _frame(synth, 1, 5), 0)
    np.testing.assert_array_equal(pair.key_rgb, pair.rgb)
    assert not pair.flow.any() and pair.flow.shape == (2, SYNTH_SPEC.height, SYNTH_SPEC.width)


def test_distance_beyond_the_video_start_is_refused(synth: Dataset) -> None:
    with pytest.raises(InputError, match="needs frame index >= 4"):
        make_pair(synth, _frame(synth, 0, 3), 4)
    with pytest.raises(InputError):
        make_pair(synth, _frame(synth, 0, 3), -1)


def test_pairs_are_deterministic(synth: Dataset) -> None:
    first, second = (make_pair(synth, _frame(synth, 2, 9), 6) for _ in range(2))
    for name in ("key_rgb", "rgb", "flow", "labels"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


def test_flow_of_a_pure_translation_is_exact(tmp_path: Path) -> None:
    """A smooth texture moving 2 px right per frame: pixel p of frame t comes from p - (2 d, 0) in the
    keyframe d frames before. Whole-frame translation by whole pixels is what block vectors represent
    exactly, so away from the entering left edge the accumulated flow must be exact."""
    height, width, distance = 48, 64, 7
    paths = {t: save_png(tmp_path / f"{t:03d}.png", texture_frame(t, height, width)) for t in range(10)}
    labels = save_png(tmp_path / "labels.png", np.zeros((height, width), np.uint8), "L")
    frame = LabelledFrame("shift/9", ImageSequenceSource("shift", paths), 9, labels)
    dataset = Dataset("shift", "test", "all", CAMVID.classes, CAMVID, (frame,))
    flow = make_pair(dataset, frame, distance).flow
    interior = flow[:, 8:-8, 2 * distance + 16 : -8]
    assert np.mean(np.abs(interior[0] + 2 * distance) <= 0.25) > 0.95
    assert np.mean(np.abs(interior[1]) <= 0.25) > 0.95


def test_flow_agrees_with_synthstreet_ground_truth(synth: Dataset) -> None:
    """End-point error against SynthStreet's exact flow to the keyframe, 11 frames back, on pixels
    visible in the keyframe and textured (a 9x9 mean Sobel magnitude > 40: on flat road or sky any
    vector predicts equally well, so the codec's choice there says nothing about the motion).

    The bound is relative, because the flow is not expected to be exact on this data: block vectors
    are constant per 8x8 cell while forward motion makes flow vary within a cell (zoom, parallax), x264
    picks vectors by rate-distortion rather than truth, and 11 hops add their errors. Measured on 9
    clips (3 seeds) at 128x192, crf 23: median EPE / median |true flow| = 0.17-0.39, mean 0.25; zero
    flow scores 1.0 by definition. Bound 0.45, and the EPE must also beat zero flow by far.
    """
    seed, h, w = SYNTH_SPEC.seed, SYNTH_SPEC.height, SYNTH_SPEC.width
    for clip_index in range(SYNTH_SPEC.clips):
        clip = SynthClip(seed, clip_index, SYNTH_SPEC.frames, h, w)
        key, current = clip.render(0), clip.render(11)
        truth = clip.flow(11, current, 0, key)
        flow = make_pair(synth, _frame(synth, clip_index, 11), 11).flow
        grey = cv2.cvtColor(current.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gradient = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
        mask = truth.visible & (cv2.blur(gradient, (9, 9)) > 40)
        assert mask.mean() > 0.2
        epe = np.median(np.linalg.norm(flow - truth.flow_px, axis=0)[mask])
        magnitude = np.median(np.linalg.norm(truth.flow_px, axis=0)[mask])
        assert magnitude > 2, "the clip must move for the test to mean anything"
        assert epe < 0.45 * magnitude, (clip_index, epe, magnitude)


def test_cache_returns_the_pair_it_stored(synth: Dataset, tmp_path: Path) -> None:
    cache = PairCache(tmp_path / "cache")
    frame = _frame(synth, 0, 8)
    made = cache.get(synth, frame, 5)
    files = list((tmp_path / "cache").rglob("*.npz"))
    assert len(files) == 1
    again = cache.get(synth, frame, 5)
    for name in ("key_rgb", "rgb", "flow", "labels"):
        np.testing.assert_array_equal(getattr(made, name), getattr(again, name))
        np.testing.assert_array_equal(getattr(made, name), getattr(make_pair(synth, frame, 5), name))
    assert cache.path_for(synth, frame, 4, 23, "medium") != files[0]
    assert cache.path_for(synth, frame, 5, 30, "medium") != files[0]
    files[0].write_bytes(b"damaged")
    np.testing.assert_array_equal(cache.get(synth, frame, 5).flow, made.flow)


def test_odd_frame_sizes_keep_their_size(tmp_path: Path) -> None:
    """H.264 4:2:0 needs even sizes: the snippet is padded for encoding and cropped back after."""
    height, width = 47, 63
    paths = {t: save_png(tmp_path / f"{t:03d}.png", texture_frame(t, 48, 64)[:height, :width]) for t in range(4)}
    labels = save_png(tmp_path / "labels.png", np.ones((height, width), np.uint8), "L")
    frame = LabelledFrame("odd/3", ImageSequenceSource("odd", paths), 3, labels)
    pair = make_pair(Dataset("odd", "test", "all", CAMVID.classes, CAMVID, (frame,)), frame, 3)
    assert pair.rgb.shape == pair.key_rgb.shape == (height, width, 3) and pair.flow.shape == (2, height, width)
    # measured 27.2 dB (4:2:0 chroma on saturated random colours costs most of it); a wrong frame: < 20 dB
    assert psnr(pair.rgb, texture_frame(3, 48, 64)[:height, :width]) > 24
    assert psnr(pair.rgb, texture_frame(1, 48, 64)[:height, :width]) < 20


def test_the_cache_key_includes_the_codec_and_h264_keeps_the_old_keys(synth: Dataset, tmp_path: Path) -> None:
    cache, frame = PairCache(tmp_path / "cache"), _frame(synth, 0, 7)
    h264 = cache.path_for(synth, frame, 4, 23, "medium")
    assert cache.path_for(synth, frame, 4, 23, "medium", codec="h264") == h264
    assert cache.path_for(synth, frame, 4, 23, "medium", codec="hevc") != h264


def test_hevc_pairs_without_the_parser_are_refused_in_one_line(synth: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("arseg_cli.data.pairs.parser_problem", lambda: "arseg's HEVC motion-vector parser is not built")
    with pytest.raises(OptionsError, match="`codec` hevc reads the snippets' vectors with arseg's HEVC parser: .* not built"):
        make_pair(synth, _frame(synth, 0, 7), 3, codec="hevc")
    with pytest.raises(OptionsError, match="unknown `codec` 'vp9'"):
        make_pair(synth, _frame(synth, 0, 7), 3, codec="vp9")  # type: ignore[arg-type]
