"""video/fallback.py and decode's 'auto' choice: motion for streams without usable bitstream vectors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from _video_inputs import FPS, FRAMES, KEYINT, PAN, background_offsets, encode_frames, small_clip
from arseg_cli.video.decode import decode_frames, open_video
from arseg_cli.video.fallback import ReencodeMotion
from arseg_cli.video.records import DecodedFrame
from arseg_cli.video.synthetic import SyntheticClip, make_clip, write_clip


@pytest.fixture(scope="module")
def clip() -> SyntheticClip:
    return small_clip()


@pytest.fixture
def notices(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Records of the `arseg_cli` logger (attached directly: the CLI may have turned propagation off)."""
    logger = logging.getLogger("arseg_cli")
    propagate, level = logger.propagate, logger.level
    logger.propagate = False  # each record reaches caplog once, through the handler added here
    logger.setLevel(logging.INFO)
    logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate, logger.level = propagate, level


def assert_reencoded_pan(frames: list[DecodedFrame], clip: SyntheticClip) -> None:
    """Frame 0 has no motion; every later frame has x264's vectors, +PAN on the background."""
    assert [frame.index for frame in frames] == list(range(len(frames)))
    assert frames[0].motion is None
    for frame in frames[1:]:
        assert frame.motion is not None and frame.motion.method == "x264-reencode", frame.index
        offsets = background_offsets(frame.motion, clip.object_mask[frame.index])
        assert np.median(offsets, axis=0).tolist() == list(PAN), frame.index
        assert np.mean(np.abs(offsets - PAN).max(axis=1) <= 0.5) >= 0.8, frame.index


def _hevc(frames: list[np.ndarray], path: Path) -> Path:
    return encode_frames(frames, path / "clip.mkv", "libx265", options={"x265-params": "log-level=error"})


def _vp9(frames: list[np.ndarray], path: Path) -> Path:
    return encode_frames(frames, path / "clip.webm", "libvpx-vp9", options={"deadline": "realtime", "cpu-used": "8"})


def _av1(frames: list[np.ndarray], path: Path) -> Path:
    return encode_frames(frames, path / "clip.mkv", "libsvtav1", options={"preset": "12"})


def _mjpeg(frames: list[np.ndarray], path: Path) -> Path:
    return encode_frames(frames, path / "clip.avi", "mjpeg", pix_fmt="yuvj420p", bit_rate=20_000_000)


@pytest.mark.parametrize(("codec", "encode"), [("hevc", _hevc), ("vp9", _vp9), ("av1", _av1), ("mjpeg", _mjpeg)])
def test_codecs_without_vectors_get_motion_from_the_reencode_with_one_notice(
    clip: SyntheticClip, tmp_path: Path, notices: pytest.LogCaptureFixture, codec: str, encode: object
) -> None:
    path = encode(clip.frames, tmp_path)  # type: ignore[operator]
    with open_video(path) as reader:
        assert reader.info.codec == codec
        assert reader.plan.source == "reencode"
        frames = list(reader)
    assert len(frames) == FRAMES
    assert_reencoded_pan(frames, clip)
    messages = [record.getMessage() for record in notices.records if "libx264" in record.getMessage()]
    assert len(messages) == 1, messages
    assert codec in messages[0] and "re-encoding" in messages[0] and "ms/frame" in messages[0]
    assert notices.records[0].levelno == logging.WARNING


def test_motion_none_skips_the_reencode(clip: SyntheticClip, tmp_path: Path, notices: pytest.LogCaptureFixture) -> None:
    frames = list(decode_frames(_mjpeg(clip.frames[:4], tmp_path), motion="none"))
    assert len(frames) == 4 and all(frame.motion is None for frame in frames)
    assert not notices.records


def test_intra_only_h264_switches_auto_to_the_reencode(clip: SyntheticClip, tmp_path: Path) -> None:
    path = write_clip(clip.frames, tmp_path / "intra.mkv", fps=FPS, keyint=1)
    frames = list(decode_frames(path))
    assert {frame.pict_type for frame in frames} == {"I"}
    assert_reencoded_pan(frames, clip)
    # Asked for explicitly, the bitstream is used as it is: no vectors at all.
    assert all(frame.motion is None for frame in decode_frames(path, motion="bitstream"))


def test_forced_reencode_replaces_clean_bitstream_vectors_and_keeps_keyframes(
    clip: SyntheticClip, tmp_path: Path, notices: pytest.LogCaptureFixture
) -> None:
    path = write_clip(clip.frames, tmp_path / "clip.mp4", fps=FPS, keyint=KEYINT)
    with open_video(path, motion="reencode") as reader:
        assert reader.plan.source == "reencode"
        frames = list(reader)
    # The re-encode restarts where the source has keyframes, so chains end at the same frames.
    assert [frame.motion is None for frame in frames] == [index % KEYINT == 0 for index in range(FRAMES)]
    assert_reencoded_pan([frames[0], *frames[1:KEYINT]], clip)
    assert [record.getMessage().split(":")[0] for record in notices.records] == ["h264 stream"]


def test_reencode_from_a_start_frame_primes_with_the_frame_before(clip: SyntheticClip, tmp_path: Path) -> None:
    path = _mjpeg(clip.frames, tmp_path)
    window = list(decode_frames(path, start=4, end=9))
    assert [frame.index for frame in window] == [4, 5, 6, 7, 8]
    for frame in window:  # frame 4 too: its motion points to frame 3, which was decoded but not yielded
        assert frame.motion is not None
        offsets = background_offsets(frame.motion, clip.object_mask[frame.index])
        assert np.median(offsets, axis=0).tolist() == list(PAN)


def test_reencode_motion_pairs_tokens_in_order_for_odd_sizes() -> None:
    odd = make_clip(frames=6, height=63, width=95, object_px=None)
    estimator: ReencodeMotion[int] = ReencodeMotion(95, 63, reason="test")
    pairs = []
    for index, rgb in enumerate(odd.frames):
        pairs += estimator.push(rgb, index, key=index == 4)
    pairs += estimator.flush()
    assert [token for token, _ in pairs] == list(range(6))
    assert [motion is None for _, motion in pairs] == [True, False, False, False, True, False]
    for token, motion in pairs:
        if motion is not None:
            assert motion.frame_hw == (63, 95)
            assert motion.offset_px.dtype == np.float32 and motion.dst_xy.dtype == np.int32
    assert estimator.ms_per_frame is not None and estimator.ms_per_frame > 0


def test_reencode_motion_rejects_frames_of_another_size() -> None:
    estimator: ReencodeMotion[None] = ReencodeMotion(64, 48, reason="test")
    with pytest.raises(ValueError, match="expected"):
        estimator.push(np.zeros((48, 66, 3), np.uint8), None)
