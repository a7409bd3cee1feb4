"""Writers: exact round trips where the maths is exact, timing kept, atomic and interrupt-safe outputs."""

from __future__ import annotations

import errno
import io
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from arseg_cli.errors import InputError, OptionsError, OutputError, OutputExistsError
from arseg_cli.palettes import CAMVID, CITYSCAPES
from arseg_cli.video._sink import interrupts_deferred
from arseg_cli.video.writers import (
    ColorVideoWriter,
    LabelPngWriter,
    LabelVideoWriter,
    OverlayVideoWriter,
    RawLabelWriter,
    blend,
    colorize,
    read_label_video,
)
from arseg_cli.video.synthetic import make_clip, write_clip


@dataclass
class Video:
    """What a decoder sees in a video file."""

    frames: list[np.ndarray]  # (H, W, 3) uint8 RGB
    times_s: list[float]
    average_rate: Fraction
    duration_s: float  # container duration
    size: tuple[int, int]  # (W, H) of the coded stream
    codec: str
    pix_fmt: str
    container: str  # FFmpeg's demuxer name


def probe(source: Path | io.BytesIO) -> Video:
    with av.open(source if isinstance(source, io.BytesIO) else str(source)) as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
        return Video(
            [f.to_ndarray(format="rgb24") for f in decoded],
            [float(f.time) for f in decoded],
            stream.average_rate,
            container.duration / av.time_base,
            (stream.width, stream.height),
            stream.codec_context.name,
            stream.codec_context.pix_fmt,
            container.format.name,
        )


def random_labels(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(T, H, W) uint8 ids over the whole 0..255 range (ignore and out-of-palette ids included)."""
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width), dtype=np.uint8)


def band_labels(height: int, width: int, ids: list[int]) -> np.ndarray:
    """(H, W) uint8: vertical bands of equal width, one id each (flat regions to measure colours on)."""
    band = np.repeat(np.asarray(ids, np.uint8), -(-width // len(ids)))[:width]
    return np.ascontiguousarray(np.broadcast_to(band, (height, width)))


def band_interiors(width: int, count: int, margin: int = 4) -> list[slice]:
    """Column ranges inside each band, `margin` px from its edges (chroma is shared by 2x2 pixels and
    the codec smooths edges, so colours are only reliable away from them)."""
    step = -(-width // count)
    return [slice(i * step + margin, min((i + 1) * step, width) - margin) for i in range(count)]


@pytest.fixture(scope="module")
def input_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-frame 64x48 H.264 clip at 25 fps, as a user's input would be."""
    path = tmp_path_factory.mktemp("input") / "input.mp4"
    return write_clip(make_clip(10, 48, 64).frames, path, fps=25, preset="ultrafast")


@pytest.fixture(scope="module")
def ntsc_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 7-frame 33x21 clip at 30000/1001 fps (time base 1/30000, 1001 ticks a frame): a rate no
    integer or float step of 1/fps reproduces, and an odd size."""
    path = tmp_path_factory.mktemp("input") / "ntsc.mp4"
    return write_clip(make_clip(7, 21, 33).frames, path, fps=Fraction(30000, 1001), preset="ultrafast")


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A variable-rate H.264 mp4 (time base 1/90000, nominal 30 fps) whose frames last 1, 2, 1, 4, 1
    and 3 nominal frames: gaps as a phone recording or a screen capture has them."""
    path = tmp_path_factory.mktemp("input") / "vfr.mp4"
    durations = [3000, 6000, 3000, 12000, 3000, 9000]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 90000)
        stream.options = {"preset": "ultrafast", "x264-params": "bframes=0"}
        pts, by_pts = 0, {}
        for image, duration in zip(make_clip(len(durations), 16, 32).frames, durations):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, by_pts[pts] = pts, duration
            pts += duration
            for packet in stream.encode(frame):
                packet.duration = by_pts[packet.pts]
                container.mux(packet)
        for packet in stream.encode(None):
            packet.duration = by_pts[packet.pts]
            container.mux(packet)
    return path


def decode_input(path: Path) -> tuple[list[Any], Fraction, Fraction]:
    """Decoded frames, the stream's time base and average rate, as the pipeline passes them on."""
    container = av.open(str(path))
    stream = container.streams.video[0]
    frames = list(container.decode(stream))
    time_base, rate = stream.time_base, stream.average_rate  # a closed container's streams are not to be read
    container.close()
    return frames, time_base, rate


VIDEO_KINDS = ("colour", "overlay", "lossless")


def video_writer(kind: str, path: Path, fps: float | Fraction = 25, **options: Any) -> Any:
    """A fresh writer of `kind` ('colour', 'overlay', 'lossless'); fast settings for tests."""
    if kind == "colour":
        return ColorVideoWriter(path, CAMVID, fps, preset="ultrafast", **options)
    if kind == "overlay":
        return OverlayVideoWriter(path, CAMVID, fps, preset="ultrafast", **options)
    return LabelVideoWriter(path, fps, **options)


def video_path(directory: Path, kind: str, stem: str = "out") -> Path:
    return directory / f"{stem}.{'mkv' if kind == 'lossless' else 'mp4'}"


def write_one(writer: Any, labels: np.ndarray, **timing: Any) -> None:
    """Write `labels` (over a black input frame for the overlay)."""
    if isinstance(writer, OverlayVideoWriter):
        writer.write(labels, np.zeros((*labels.shape, 3), np.uint8), **timing)
    else:
        writer.write(labels, **timing)


# --- label PNGs ---------------------------------------------------------------------------------


def test_label_pngs_round_trip_ids_exactly_with_the_palette_stored(tmp_path: Path) -> None:
    labels = random_labels(3, 23, 37)
    with LabelPngWriter(tmp_path / "masks", CAMVID) as writer:
        paths = [writer.write(frame) for frame in labels]
    assert [p.name for p in paths] == ["000000.png", "000001.png", "000002.png"]
    for path, expected in zip(paths, labels):
        with Image.open(path) as image:
            assert image.mode == "P"
            np.testing.assert_array_equal(np.asarray(image), expected)
            stored = np.asarray(image.getpalette(), np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(stored[:12], np.asarray(CAMVID.colors, np.uint8))
    assert not stored[12:].any()  # ids outside the palette, 255 included, show black


def test_label_png_names_use_the_given_index_and_width(tmp_path: Path) -> None:
    writer = LabelPngWriter(tmp_path / "m", CITYSCAPES, digits=4)
    assert writer.write(np.zeros((4, 4), np.uint8), index=123).name == "0123.png"
    assert writer.write(np.zeros((4, 4), np.uint8), index=12345).name == "12345.png"


def test_label_pngs_refuse_a_non_empty_directory_without_force(tmp_path: Path) -> None:
    out = tmp_path / "masks"
    out.mkdir()
    (out / "000000.png").write_bytes(b"old")
    (out / "readme.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        LabelPngWriter(out, CAMVID)
    assert (out / "000000.png").read_bytes() == b"old"
    LabelPngWriter(out, CAMVID, force=True).write(np.full((4, 4), 3, np.uint8))
    with Image.open(out / "000000.png") as image:
        assert np.asarray(image).tolist() == [[3] * 4] * 4
    assert (out / "readme.txt").read_text() == "mine"


def test_label_png_failing_mid_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(self: Image.Image, fp: Path, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    writer = LabelPngWriter(tmp_path / "masks", CAMVID)
    writer.write(np.zeros((4, 4), np.uint8))
    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(OutputError, match="000001.png: No space left on device"):
        writer.write(np.zeros((4, 4), np.uint8))
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["000000.png"]


def test_writers_reject_labels_that_are_not_2d_uint8(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        LabelPngWriter(tmp_path / "m", CAMVID).write(np.zeros((4, 4), np.int64))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        colorize(np.zeros((4, 4, 1), np.uint8), CAMVID)


# --- lossless label video ----------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "name"), [("ffv1", "labels.mkv"), ("png", "labels.mov")])
def test_lossless_label_video_decodes_to_identical_ids_at_an_odd_size(tmp_path: Path, codec: str, name: str) -> None:
    labels = random_labels(4, 27, 41)
    with LabelVideoWriter(tmp_path / name, 25, codec=codec) as writer:
        for frame in labels:
            writer.write(frame)
    decoded = list(read_label_video(tmp_path / name))
    assert len(decoded) == 4
    for got, expected in zip(decoded, labels):
        assert got.shape == (27, 41) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)


def test_lossless_label_video_keeps_the_input_timing(tmp_path: Path, input_clip: Path) -> None:
    frames, time_base, rate = decode_input(input_clip)
    with LabelVideoWriter(tmp_path / "labels.mkv", rate, time_base=time_base) as writer:
        for frame in frames:
            writer.write(np.zeros((frame.height, frame.width), np.uint8), pts=frame.pts)
    source, out = probe(input_clip), probe(tmp_path / "labels.mkv")
    assert len(out.frames) == len(source.frames)
    assert out.average_rate == source.average_rate
    # Matroska stores milliseconds: times and duration agree to 1 ms.
    np.testing.assert_allclose(out.times_s, source.times_s, atol=1e-3)
    assert out.duration_s == pytest.approx(source.duration_s, abs=1e-3)


def test_reading_a_colour_video_as_labels_is_refused(tmp_path: Path) -> None:
    with ColorVideoWriter(tmp_path / "c.mp4", CAMVID, 25) as writer:
        writer.write(np.zeros((16, 16), np.uint8))
    with pytest.raises(InputError, match="not a label video"):
        list(read_label_video(tmp_path / "c.mp4"))


def test_unknown_lossless_codec_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="ffv1, png"):
        LabelVideoWriter(tmp_path / "l.mkv", 25, codec="h264")
    assert list(tmp_path.iterdir()) == []


def test_codec_the_container_cannot_hold_gives_output_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not support 'png'"), LabelVideoWriter(
        tmp_path / "l.mkv", 25, codec="png"
    ) as writer:
        writer.write(np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


# --- raw labels --------------------------------------------------------------------------------


def test_raw_labels_are_the_row_major_bytes_of_each_frame(tmp_path: Path) -> None:
    labels = random_labels(3, 5, 7)
    sink = io.BytesIO()
    with RawLabelWriter(sink) as writer:
        for frame in labels:
            writer.write(frame)
    assert sink.getvalue() == labels.tobytes()
    np.testing.assert_array_equal(np.frombuffer(sink.getvalue(), np.uint8).reshape(3, 5, 7), labels)


def test_raw_labels_to_dash_go_to_stdout(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    labels = random_labels(2, 3, 4)
    with RawLabelWriter("-") as writer:
        for frame in labels:
            writer.write(frame)
    assert capfdbinary.readouterr().out == labels.tobytes()


def test_raw_labels_to_a_file_are_atomic_and_keep_whole_frames_on_interrupt(tmp_path: Path) -> None:
    labels = random_labels(3, 5, 7)
    with pytest.raises(KeyboardInterrupt), RawLabelWriter(tmp_path / "labels.raw") as writer:
        for frame in labels[:2]:
            writer.write(frame)
        assert [p.name for p in tmp_path.iterdir()] != ["labels.raw"]  # still a temporary name
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.raw"]
    assert (tmp_path / "labels.raw").read_bytes() == labels[:2].tobytes()


def test_raw_labels_do_not_overwrite_an_existing_file_without_force(tmp_path: Path) -> None:
    path = tmp_path / "labels.raw"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="use `force`"):
        RawLabelWriter(path)
    assert path.read_bytes() == b"precious" and [p.name for p in tmp_path.iterdir()] == ["labels.raw"]
    with RawLabelWriter(path, force=True) as writer:
        writer.write(np.full((2, 2), 7, np.uint8))
    assert path.read_bytes() == bytes([7] * 4)


def test_raw_labels_to_a_pipe_whose_reader_left_raise_broken_pipe() -> None:
    # `arseg segment in.mp4 -o - | head -c 10`: the CLI ends quietly on BrokenPipeError.
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "wb", buffering=0) as pipe, pytest.raises(BrokenPipeError):
        with RawLabelWriter(pipe) as writer:
            writer.write(np.zeros((4, 4), np.uint8))


def test_raw_frames_must_keep_one_size() -> None:
    writer = RawLabelWriter(io.BytesIO())
    writer.write(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="must all be"):
        writer.write(np.zeros((4, 5), np.uint8))


# --- colour and overlay videos -----------------------------------------------------------------


@pytest.mark.parametrize("kind", VIDEO_KINDS)
@pytest.mark.parametrize("clip", ["input_clip", "ntsc_clip"])
def test_video_keeps_frame_count_fps_times_and_duration_of_the_input(
    tmp_path: Path, kind: str, clip: str, request: pytest.FixtureRequest
) -> None:
    source_path: Path = request.getfixturevalue(clip)
    frames, time_base, rate = decode_input(source_path)
    path = video_path(tmp_path, kind)
    with video_writer(kind, path, rate, time_base=time_base) as writer:
        for frame in frames:
            write_one(writer, np.full((frame.height, frame.width), 3, np.uint8), pts=frame.pts)
    source, out = probe(source_path), probe(path)
    if kind == "lossless":
        assert (out.codec, out.pix_fmt, out.container) == ("ffv1", "gray", "matroska,webm")
    else:
        assert (out.codec, out.pix_fmt, out.container) == ("h264", "yuv420p", "mov,mp4,m4a,3gp,3g2,mj2")
    assert len(out.frames) == len(source.frames) == len(frames) > 1
    assert out.average_rate == source.average_rate == rate
    if kind == "lossless":  # Matroska stores milliseconds
        np.testing.assert_allclose(out.times_s, source.times_s, atol=1e-3)
        assert out.duration_s == pytest.approx(source.duration_s, abs=1e-3)
    else:
        assert out.times_s == source.times_s
        # Container durations are in microseconds.
        assert out.duration_s == source.duration_s == pytest.approx(float(len(frames) / rate), abs=1e-6)


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_video_keeps_the_timing_of_a_variable_rate_input(tmp_path: Path, kind: str, vfr_clip: Path) -> None:
    frames, time_base, rate = decode_input(vfr_clip)
    path = video_path(tmp_path, kind)
    with video_writer(kind, path, rate, time_base=time_base) as writer:
        for frame in frames:
            labels = np.zeros((frame.height, frame.width), np.uint8)
            write_one(writer, labels, pts=frame.pts, duration=frame.duration)
    source, out = probe(vfr_clip), probe(path)
    assert np.diff(source.times_s).tolist() == pytest.approx([1 / 30, 2 / 30, 1 / 30, 4 / 30, 1 / 30])
    assert source.duration_s == pytest.approx(12 / 30)  # the last frame lasts 3/30 s
    np.testing.assert_allclose(out.times_s, source.times_s, atol=1e-3 if kind == "lossless" else 0)
    assert out.duration_s == pytest.approx(source.duration_s, abs=1e-3 if kind == "lossless" else 1e-9)


@pytest.mark.parametrize("kind", ["colour", "lossless"])
def test_video_keeps_variable_frame_timing_and_the_last_frame_duration(tmp_path: Path, kind: str) -> None:
    # In 1/90 s at a nominal 30 fps (3 ticks): gaps as a variable-rate input has them, and a last
    # frame lasting 6 ticks, not the nominal 3, so the total duration is 33/90 s.
    pts = [0, 3, 9, 12, 24, 27]
    durations = [3, 6, 3, 12, 3, 6]
    path = tmp_path / ("vfr.mkv" if kind == "lossless" else "vfr.mp4")
    make = LabelVideoWriter if kind == "lossless" else lambda p, fps, **kw: ColorVideoWriter(p, CAMVID, fps, **kw)
    with make(path, 30, time_base=Fraction(1, 90)) as writer:
        for p, d in zip(pts, durations):
            writer.write(np.zeros((16, 16), np.uint8), pts=p, duration=d)
    out = probe(path)
    np.testing.assert_allclose(out.times_s, [p / 90 for p in pts], atol=1e-3)  # Matroska: 1 ms
    assert out.duration_s == pytest.approx(33 / 90, abs=1e-3)


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_video_starting_at_a_negative_timestamp_keeps_every_frame(tmp_path: Path, kind: str) -> None:
    # Decoders can give the first frames negative pts (B-frame delay without an edit list).
    path = video_path(tmp_path, kind)
    with video_writer(kind, path, 25, time_base=Fraction(1, 12800)) as writer:
        for i in range(4):
            write_one(writer, np.zeros((16, 16), np.uint8), pts=-1024 + 512 * i)
    out = probe(path)
    assert len(out.frames) == 4
    np.testing.assert_allclose(out.times_s, [0, 0.04, 0.08, 0.12], atol=1e-3)
    assert out.duration_s == pytest.approx(0.16, abs=1e-3)


def test_colour_video_refuses_timestamps_that_do_not_increase(tmp_path: Path) -> None:
    with ColorVideoWriter(tmp_path / "c.mp4", CAMVID, 25) as writer:
        writer.write(np.zeros((16, 16), np.uint8), pts=5)
        with pytest.raises(ValueError, match="must increase"):
            writer.write(np.zeros((16, 16), np.uint8), pts=5)


def test_colour_video_shows_each_class_in_its_palette_colour(tmp_path: Path) -> None:
    ids = list(range(CITYSCAPES.num_classes))
    labels = band_labels(32, 16 * len(ids), ids)
    with ColorVideoWriter(tmp_path / "c.mp4", CITYSCAPES, 25) as writer:
        for _ in range(3):
            writer.write(labels)
    palette = np.asarray(CITYSCAPES.colors, np.int32)
    for frame in probe(tmp_path / "c.mp4").frames:
        for class_id, columns in zip(ids, band_interiors(labels.shape[1], len(ids))):
            got = frame[4:-4, columns].reshape(-1, 3).astype(np.int32)
            # 8-bit limited-range YUV alone moves a colour by up to ~2 per channel and x264 at crf 18
            # adds a little on flat areas: 8 leaves margin while the closest pair of Cityscapes
            # colours (wall/fence, bus/train) differs by >= 20 in some channel.
            assert np.abs(got - palette[class_id]).max() <= 8, CITYSCAPES.classes[class_id]
            nearest = np.argmin(((got[:, None] - palette[None]) ** 2).sum(-1), axis=1)
            assert (nearest == class_id).all()


@pytest.mark.parametrize("kind", ["colour", "overlay"])
def test_video_of_an_odd_size_is_padded_by_one_edge_row_and_column(tmp_path: Path, kind: str) -> None:
    labels = band_labels(27, 65, [0, 3, 8])  # bands of 22 columns
    path = video_path(tmp_path, kind)
    with video_writer(kind, path) as writer:
        write_one(writer, labels)
        write_one(writer, labels)
    out = probe(path)
    assert out.size == (66, 28) and len(out.frames) == 2
    black = np.zeros((*labels.shape, 3), np.uint8)
    expected = colorize(labels, CAMVID) if kind == "colour" else blend(black, labels, CAMVID, 0.5)
    # The padded bottom row repeats the last one (car, class 8, in columns 48..59), and the padded
    # right column the last column; tolerance as in the palette-colour test.
    for got in (out.frames[0][-1, 48:60], out.frames[0][4:-4, -1]):
        np.testing.assert_allclose(got.astype(np.int32), np.broadcast_to(expected[-1, 50], got.shape), atol=8)


def test_overlay_blends_the_input_with_the_given_opacity(tmp_path: Path) -> None:
    height, width = 32, 64
    image = np.empty((height, width, 3), np.uint8)
    image[:] = (200, 100, 40)
    labels = band_labels(height, width, [3, 255])  # left: road (128, 64, 128); right: ignore
    for opacity in (0.25, 0.75):
        path = tmp_path / f"overlay-{opacity}.mp4"
        with OverlayVideoWriter(path, CAMVID, 25, opacity=opacity) as writer:
            writer.write(labels, image)
        frame = probe(path).frames[0].astype(np.float64)
        left, right = band_interiors(width, 2)
        expected = (1 - opacity) * np.array([200, 100, 40]) + opacity * np.array([128, 64, 128])
        # Flat areas: 8-bit limited-range YUV alone moves these colours by up to 3 per channel
        # (measured with swscale, no codec); x264 adds < 1 on flat areas. An opacity off by 0.1
        # moves red by 7.2, so 4 still catches a wrong blend.
        np.testing.assert_allclose(frame[4:-4, left].mean(axis=(0, 1)), expected, atol=4)
        np.testing.assert_allclose(frame[4:-4, right].mean(axis=(0, 1)), [200, 100, 40], atol=4)


def test_blend_is_exact_integer_maths() -> None:
    rgb = np.array([[[200, 100, 40], [0, 255, 10]]], np.uint8)
    labels = np.array([[3, 200]], np.uint8)  # 200: outside the palette, left unblended
    np.testing.assert_array_equal(blend(rgb, labels, CAMVID, 0.5), [[[164, 82, 84], [0, 255, 10]]])
    np.testing.assert_array_equal(blend(rgb, labels, CAMVID, 0.0), rgb)
    np.testing.assert_array_equal(blend(rgb, labels, CAMVID, 1.0)[0, 0], CAMVID.colors[3])
    with pytest.raises(ValueError, match="opacity"):
        blend(rgb, labels, CAMVID, 1.5)


def test_overlay_refuses_an_opacity_outside_0_to_1(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="opacity"):
        OverlayVideoWriter(tmp_path / "o.mp4", CAMVID, 25, opacity=-0.1)


@pytest.mark.parametrize(
    ("options", "message"), [({"preset": "quick"}, "unknown x264 preset 'quick'"), ({"crf": 60}, "crf")]
)
def test_bad_h264_settings_are_usage_errors_before_any_file(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(OptionsError, match=message):
        ColorVideoWriter(tmp_path / "c.mp4", CAMVID, 25, **options)
    assert list(tmp_path.iterdir()) == []


class Pipe(io.RawIOBase):
    """A write-only stream without seek, as a pipe is; once `broken`, writes fail as when the reader left."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.broken = False

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        if self.broken:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        self.data += bytes(b)
        return len(b)


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_video_to_a_pipe_whose_reader_left_raises_broken_pipe_even_while_closing(kind: str) -> None:
    pipe = Pipe()
    with pytest.raises(BrokenPipeError), video_writer(kind, pipe) as writer:  # type: ignore[arg-type]
        for frame in random_labels(3, 16, 16):
            write_one(writer, frame)
        pipe.broken = True  # the reader leaves before the last packets and the trailer


def test_mp4_to_a_non_seekable_stream_is_fragmented_and_playable() -> None:
    pipe = Pipe()
    with ColorVideoWriter(pipe, CAMVID, 25) as writer:
        for i in range(5):
            writer.write(np.full((16, 16), i, np.uint8))
    out = probe(io.BytesIO(bytes(pipe.data)))
    assert len(out.frames) == 5
    assert out.duration_s == pytest.approx(5 / 25)


# --- atomic outputs and interruption -----------------------------------------------------------

@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_interrupted_video_is_playable_with_the_frames_written(tmp_path: Path, kind: str) -> None:
    path = video_path(tmp_path, kind)
    labels = random_labels(8, 16, 24) % 12
    with pytest.raises(KeyboardInterrupt), video_writer(kind, path) as writer:
        for i, frame in enumerate(labels):
            if i == 5:
                assert not path.exists() and len(list(tmp_path.iterdir())) == 1  # a temporary until closed
                raise KeyboardInterrupt  # Ctrl-C while frame 5 is being computed
            write_one(writer, frame)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    out = probe(path)
    assert len(out.frames) == 5
    assert out.duration_s == pytest.approx(5 / 25, abs=1e-3)
    if kind == "lossless":
        np.testing.assert_array_equal(np.stack(list(read_label_video(path))), labels[:5])


class _HookedContainer:
    """A PyAV output container that calls `before_mux(n)` before muxing its n-th packet (from 1) and
    `before_close()` before closing (writing the trailer)."""

    def __init__(self, container: Any, before_mux: Callable[[int], None], before_close: Callable[[], None]) -> None:
        self._container, self._before_mux, self._before_close, self._count = container, before_mux, before_close, 0

    def mux(self, packet: av.Packet) -> None:
        self._count += 1
        self._before_mux(self._count)
        self._container.mux(packet)

    def close(self) -> None:
        self._before_close()
        self._container.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)


def hook_containers(
    monkeypatch: pytest.MonkeyPatch,
    before_mux: Callable[[int], None] = lambda count: None,
    before_close: Callable[[], None] = lambda: None,
) -> None:
    """Make every container opened with av.open call the hooks (monkeypatch.undo() before reading)."""
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **kw: _HookedContainer(real_open(*a, **kw), before_mux, before_close))


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_ctrl_c_inside_a_write_is_delivered_after_it_and_loses_no_packet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    def ctrl_c_at_the_third_packet(count: int) -> None:
        if count == 3:  # between the encoder handing the packet out and the muxer writing it
            signal.raise_signal(signal.SIGINT)

    hook_containers(monkeypatch, ctrl_c_at_the_third_packet)
    path = video_path(tmp_path, kind)
    # Frame i is all class i: a dropped or repeated frame shows as a wrong colour.
    labels = [np.full((16, 16), i, np.uint8) for i in range(CAMVID.num_classes)]
    writing = -1
    with pytest.raises(KeyboardInterrupt), video_writer(kind, path) as writer:
        for writing, frame in enumerate(labels):
            write_one(writer, frame)
    assert writing < len(labels) - 1  # interrupted mid-stream, not while closing
    assert writer.frames_written == writing + 1  # the frame being written when Ctrl-C came is kept
    monkeypatch.undo()
    out = probe(path)
    assert len(out.frames) == writing + 1
    black = np.zeros((16, 16, 3), np.uint8)
    for frame, ids in zip(out.frames, labels):
        expected = colorize(ids, CAMVID) if kind != "overlay" else blend(black, ids, CAMVID, 0.5)
        if kind == "lossless":
            expected = np.repeat(ids[..., None], 3, axis=2)  # gray decoded as RGB: id in each channel
        np.testing.assert_allclose(frame.astype(np.int32), expected, atol=8)


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_second_ctrl_c_while_closing_does_not_throw_the_video_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    hook_containers(monkeypatch, before_close=lambda: signal.raise_signal(signal.SIGINT))
    path = video_path(tmp_path, kind)
    with pytest.raises(KeyboardInterrupt), video_writer(kind, path) as writer:
        for frame in random_labels(3, 16, 16):
            write_one(writer, frame)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert len(probe(path).frames) == 3


def test_ctrl_c_deferred_reaches_a_custom_handler_once_and_an_ignored_one_not_at_all() -> None:
    calls: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            assert calls == []  # held back inside the block
        assert calls == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is not None
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_writing_from_another_thread_works_without_touching_signals() -> None:
    sink = io.BytesIO()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with RawLabelWriter(sink) as writer:
                writer.write(np.ones((2, 3), np.uint8))
        except BaseException as error:  # noqa: BLE001 - reported to the main thread
            errors.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == [] and sink.getvalue() == bytes([1] * 6)


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_existing_video_is_not_overwritten_without_force(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "out.mkv"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="use `force`"):
        video_writer(kind, path)
    assert path.read_bytes() == b"precious"
    with video_writer(kind, path, force=True) as writer:
        write_one(writer, np.zeros((16, 16), np.uint8))
    assert len(probe(path).frames) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.mkv"]


def test_video_with_no_frames_is_not_written(tmp_path: Path) -> None:
    with ColorVideoWriter(tmp_path / "c.mp4", CAMVID, 25):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_disk_full_mid_video_gives_output_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    def disk_full_after_two_packets(count: int) -> None:
        if count > 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    hook_containers(monkeypatch, disk_full_after_two_packets)
    path = tmp_path / "out.mkv"
    with pytest.raises(OutputError, match="No space left on device"), video_writer(kind, path) as writer:
        for frame in random_labels(30, 16, 16):
            write_one(writer, frame)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_ctrl_c_and_a_failed_write_together_still_discard_the_broken_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    def ctrl_c_then_disk_full(count: int) -> None:
        if count == 3:
            signal.raise_signal(signal.SIGINT)
            raise OSError(errno.ENOSPC, "No space left on device")

    hook_containers(monkeypatch, ctrl_c_then_disk_full)
    with pytest.raises(KeyboardInterrupt) as info, video_writer(kind, video_path(tmp_path, kind)) as writer:
        for frame in random_labels(30, 16, 16):
            write_one(writer, frame)
    assert isinstance(info.value.__context__, OutputError)
    assert list(tmp_path.iterdir()) == []


def test_disk_full_on_a_stream_gives_output_error(tmp_path: Path) -> None:
    with open("/dev/full", "wb", buffering=0) as full:
        with pytest.raises(OutputError, match="/dev/full: No space left on device"), RawLabelWriter(full) as writer:
            writer.write(np.zeros((8, 8), np.uint8))


def test_colour_video_is_the_same_bytes_every_time_beside_a_threaded_decoder(tmp_path: Path) -> None:
    """The same labels give the same file, also while an H.264 decoder runs frame-threaded in the
    process (as in `arseg segment`). With x264's mbtree on, about 1 run in 16 of this loop encoded
    differently (measured); 80 runs show such a regression with a probability above 0.99."""
    from arseg_cli.video.decode import decode_frames

    source = write_clip(make_clip(frames=14, height=64, width=96).frames, tmp_path / "source.mp4", keyint=4, fps=25)
    blocks = np.random.default_rng(3).integers(0, len(CAMVID.colors), (8, 12)).astype(np.uint8)
    labels = [np.kron(np.roll(blocks, index // 4, axis=1), np.ones((8, 8), np.uint8)) for index in range(14)]
    digests = set()
    for run in range(80):
        target = tmp_path / f"colour{run}.mp4"
        with ColorVideoWriter(target, CAMVID, 25, time_base=Fraction(1, 1000)) as writer:
            for index, (frame, label) in enumerate(zip(decode_frames(source), labels, strict=True)):
                assert frame.motion is not None or frame.is_stream_keyframe  # the decoder exports vectors, as in segment
                writer.write(label, pts=40 * index)
        digests.add(target.read_bytes())
        target.unlink()
    assert len(digests) == 1
