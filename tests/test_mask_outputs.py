"""MaskOutputs: one call per frame feeds every requested output; Ctrl-C leaves them all valid and equal."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from arseg_cli.errors import InputError, OptionsError, OutputError, OutputExistsError
from arseg_cli.palettes import CAMVID
from arseg_cli.video.writers import ColorVideoWriter, blend, colorize, read_label_video
from arseg_cli.output_plan import OutputKind, output_paths, parse_kinds
from arseg_cli.video.mask_outputs import MaskOutputs, Timing
from arseg_cli.video.synthetic import make_clip

ALL = ["png", "colour", "overlay", "lossless", "raw"]


def frame_labels(index: int, height: int, width: int) -> np.ndarray:
    """(H, W) uint8 ids that differ from frame to frame (diagonal stripes of the 12 CamVid classes)."""
    rows, cols = np.indices((height, width))
    return ((rows + cols + index) // 3 % CAMVID.num_classes).astype(np.uint8)


def decoded(path: Path) -> tuple[list[np.ndarray], list[float], float]:
    """RGB frames, frame times (s) and container duration (s) of a video file."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return [f.to_ndarray(format="rgb24") for f in frames], [float(f.time) for f in frames], container.duration / 1e6


@pytest.fixture(scope="module")
def ntsc_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-frame H.264 clip at 30000/1001 fps of an odd size, 33x21 (4:4:4, which allows odd sizes)."""
    path = tmp_path_factory.mktemp("input") / "ntsc.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 33, 21, "yuv444p"
        stream.options = {"preset": "ultrafast"}
        for i, image in enumerate(make_clip(6, 21, 33).frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_output_kinds_are_parsed_by_name_with_aliases() -> None:
    assert parse_kinds(["labels", "Color", "overlay"]) == {OutputKind.PNG, OutputKind.COLOUR, OutputKind.OVERLAY}
    assert parse_kinds("png, lossless") == parse_kinds(["png,lossless"]) == {OutputKind.PNG, OutputKind.LOSSLESS}
    assert parse_kinds([OutputKind.RAW]) == {OutputKind.RAW}
    with pytest.raises(OptionsError, match="unknown output 'gif': choose from png, colour, overlay, lossless, raw"):
        parse_kinds(["png", "gif"])
    for nothing in ([], "", [" , "]):
        with pytest.raises(OptionsError, match="no output requested"):
            parse_kinds(nothing)


def test_outputs_have_fixed_names_in_the_directory_and_raw_alone_may_go_to_stdout(tmp_path: Path) -> None:
    paths = output_paths(tmp_path, parse_kinds(ALL))
    assert {kind: Path(p).name for kind, p in paths.items()} == {
        OutputKind.PNG: "labels",
        OutputKind.COLOUR: "colour.mp4",
        OutputKind.OVERLAY: "overlay.mp4",
        OutputKind.LOSSLESS: "labels.mkv",
        OutputKind.RAW: "labels.raw",
    }
    assert output_paths(tmp_path, {OutputKind.LOSSLESS}, "png")[OutputKind.LOSSLESS] == tmp_path / "labels.mov"
    assert output_paths("-", {OutputKind.RAW}) == {OutputKind.RAW: "-"}
    with pytest.raises(OptionsError, match="only raw labels can go to standard output"):
        output_paths("-", {OutputKind.RAW, OutputKind.COLOUR})


def test_every_output_gets_every_frame_with_the_input_timing(tmp_path: Path, ntsc_clip: Path) -> None:
    with av.open(str(ntsc_clip)) as container:
        stream = container.streams.video[0]
        timing = Timing.of(stream.average_rate, stream.time_base)
        inputs = [(f.pts, f.duration, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        _, source_times, source_duration = decoded(ntsc_clip)
    assert timing == Timing(Fraction(30000, 1001), Fraction(1, 30000))
    labels = [frame_labels(i, 21, 33) for i in range(len(inputs))]
    out = tmp_path / "out"
    with MaskOutputs(out, ALL, CAMVID, timing, opacity=0.25, preset="ultrafast") as outputs:
        assert outputs.needs_rgb
        for i, ((pts, duration, rgb), ids) in enumerate(zip(inputs, labels)):
            outputs.write(ids, rgb, index=i, pts=pts, duration=duration)
    assert outputs.frames_written == len(inputs) == 6

    pngs = sorted((out / "labels").iterdir())
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(6)]
    for path, ids in zip(pngs, labels):
        with Image.open(path) as image:
            assert image.mode == "P"
            np.testing.assert_array_equal(np.asarray(image), ids)
    assert (out / "labels.raw").read_bytes() == np.stack(labels).tobytes()
    np.testing.assert_array_equal(np.stack(list(read_label_video(out / "labels.mkv"))), np.stack(labels))
    for name, expected in [
        ("colour.mp4", [colorize(ids, CAMVID) for ids in labels]),
        ("overlay.mp4", [blend(rgb, ids, CAMVID, 0.25) for (_, _, rgb), ids in zip(inputs, labels)]),
    ]:
        frames, times, duration = decoded(out / name)
        assert times == source_times and duration == source_duration
        assert frames[0].shape == (22, 34, 3)  # odd size padded to even
        # Thin 3-pixel stripes at 4:2:0 and crf 18 blur colours: compare means, which catch a wrong
        # frame (each frame's stripes are shifted) or a wrong opacity, not exact pixels.
        for got, want in zip(frames, expected):
            assert np.abs(got[:21, :33].astype(float).mean((0, 1)) - want.mean((0, 1))).max() < 4
    assert sorted(p.name for p in out.iterdir()) == ["colour.mp4", "labels", "labels.mkv", "labels.raw", "overlay.mp4"]


def test_raw_labels_to_dash_go_to_stdout_and_need_no_timing_details(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    labels = [frame_labels(i, 3, 5) for i in range(3)]
    with MaskOutputs("-", ["raw"], CAMVID, Timing.of(25)) as outputs:
        assert not outputs.needs_rgb
        for ids in labels:
            outputs.write(ids)
    assert capfdbinary.readouterr().out == np.stack(labels).tobytes()


def test_an_existing_output_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "overlay.mp4").write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="overlay.mp4 exists; use `force`"):
        MaskOutputs(tmp_path, ALL, CAMVID, Timing.of(25))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.mp4"]  # no temporaries, no labels/
    assert (tmp_path / "overlay.mp4").read_bytes() == b"precious"
    with MaskOutputs(tmp_path, ALL, CAMVID, Timing.of(25), force=True, preset="ultrafast") as outputs:
        outputs.write(np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint8))
    assert len(decoded(tmp_path / "overlay.mp4")[0]) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [({"opacity": 1.5}, "opacity must be between 0 and 1"), ({"lossless_codec": "h264"}, "ffv1, png, got 'h264'")],
)
def test_bad_options_are_usage_errors_that_create_nothing(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(OptionsError, match=message):
        MaskOutputs(tmp_path / "out", ALL, CAMVID, Timing.of(25), **options)
    assert list(tmp_path.iterdir()) == []


def test_overlay_without_the_input_frame_is_refused(tmp_path: Path) -> None:
    with MaskOutputs(tmp_path, ["overlay"], CAMVID, Timing.of(25)) as outputs:
        with pytest.raises(ValueError, match="needs the input frame"):
            outputs.write(np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []  # no frame, no video


def test_unknown_frame_rate_is_an_input_error() -> None:
    with pytest.raises(InputError, match="frame rate is unknown"):
        Timing.of(None)


def test_one_output_failing_leaves_the_others_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saves = 0
    real_save = Image.Image.save

    def disk_full_on_the_third_png(self: Image.Image, fp: Path, *args: object, **kwargs: object) -> None:
        nonlocal saves
        saves += 1
        if saves == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", disk_full_on_the_third_png)
    labels = [frame_labels(i, 8, 8) for i in range(5)]
    with pytest.raises(OutputError, match="000002.png: No space left"):
        with MaskOutputs(tmp_path, ["png", "lossless"], CAMVID, Timing.of(25)) as outputs:
            for ids in labels:
                outputs.write(ids)
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == ["000000.png", "000001.png"]
    # The lossless video got frame 2 before the PNG failed (a failure, unlike Ctrl-C, is not deferred).
    np.testing.assert_array_equal(np.stack(list(read_label_video(tmp_path / "labels.mkv"))), np.stack(labels[:3]))


def test_ctrl_c_during_a_frame_is_delivered_once_every_output_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = ColorVideoWriter.write

    def write_then_ctrl_c(self: ColorVideoWriter, *args: Any, **kwargs: Any) -> None:
        real_write(self, *args, **kwargs)
        if self.frames_written == 3:  # the colour video is written first: the others still lack frame 2
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(ColorVideoWriter, "write", write_then_ctrl_c)
    labels = [frame_labels(i, 8, 8) for i in range(6)]
    with pytest.raises(KeyboardInterrupt):
        with MaskOutputs(tmp_path, ["colour", "lossless", "raw", "png"], CAMVID, Timing.of(25)) as outputs:
            for ids in labels:
                outputs.write(ids)
    assert outputs.frames_written == 3
    assert len(decoded(tmp_path / "colour.mp4")[0]) == 3
    np.testing.assert_array_equal(np.stack(list(read_label_video(tmp_path / "labels.mkv"))), np.stack(labels[:3]))
    assert (tmp_path / "labels.raw").read_bytes() == np.stack(labels[:3]).tobytes()
    assert len(list((tmp_path / "labels").iterdir())) == 3


# A run the way `arseg segment` will drive MaskOutputs, slowed to ~5 ms a frame as by a model, and
# Ctrl-C'd from outside once it is in its stride.
_CHILD = textwrap.dedent(
    """
    import sys, time
    from fractions import Fraction
    import numpy as np
    from arseg_cli.palettes import CAMVID
    from arseg_cli.video.mask_outputs import MaskOutputs, Timing
    sys.path.insert(0, sys.argv[2])
    from test_mask_outputs import ALL, frame_labels

    outputs = MaskOutputs(sys.argv[1], ALL, CAMVID, Timing(Fraction(30000, 1001), Fraction(1, 30000)),
                          preset="ultrafast")
    rgb = np.zeros((12, 18, 3), np.uint8)
    try:
        with outputs:
            for i in range(100000):
                outputs.write(frame_labels(i, 12, 18), rgb, index=i, pts=1001 * i)
                if i == 4:
                    print("ready", flush=True)
                time.sleep(0.005)
    finally:
        print(outputs.frames_written, flush=True)
    """
)


def test_ctrl_c_mid_stream_leaves_every_output_valid_with_the_same_frames(tmp_path: Path) -> None:
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(out), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGINT  # an uncaught KeyboardInterrupt, as at a terminal
    assert "KeyboardInterrupt" in stderr
    written = int(stdout)
    assert written >= 5
    expected = np.stack([frame_labels(i, 12, 18) for i in range(written)])

    assert sorted(p.name for p in out.iterdir()) == ["colour.mp4", "labels", "labels.mkv", "labels.raw", "overlay.mp4"]
    pngs = sorted((out / "labels").iterdir())
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(written)]
    with Image.open(pngs[-1]) as last:
        np.testing.assert_array_equal(np.asarray(last), expected[-1])
    assert (out / "labels.raw").read_bytes() == expected.tobytes()
    np.testing.assert_array_equal(np.stack(list(read_label_video(out / "labels.mkv"))), expected)
    for name in ("colour.mp4", "overlay.mp4"):
        frames, times, duration = decoded(out / name)
        assert len(frames) == written
        assert times == pytest.approx([i * 1001 / 30000 for i in range(written)])
        assert duration == pytest.approx(written * 1001 / 30000, abs=1e-6)
