"""Unusable inputs through `arseg info` and `arseg encode`: one line on stderr, exit 1, nothing overwritten."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from _video_inputs import FPS, run_arseg, small_clip
from arseg_cli.cli import main
from arseg_cli.video.synthetic import write_clip


def _silence(container: av.container.OutputContainer, seconds: float = 0.5) -> None:
    """Add an AAC stream with `seconds` of silence to an open output container."""
    stream = container.add_stream("aac", rate=44100)
    for index in range(int(seconds * 44100 / 1024)):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, index * 1024
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "no-such-video.mp4"


def _directory(tmp_path: Path) -> Path:
    (tmp_path / "frames.mp4").mkdir()
    return tmp_path / "frames.mp4"


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty.mp4").touch()
    return tmp_path / "empty.mp4"


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    return path


def _audio_only(tmp_path: Path) -> Path:
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as container:
        _silence(container)
    return path


def _zero_frames(tmp_path: Path) -> Path:
    """A Matroska file that declares a video track but holds only audio packets."""
    path = tmp_path / "no-frames.mkv"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        _silence(container)
        for packet in video.encode(None):
            container.mux(packet)
    return path


def _clip(tmp_path: Path, name: str) -> Path:
    return write_clip(small_clip().frames, tmp_path / name, fps=FPS)


def _truncated_mp4(tmp_path: Path) -> Path:
    whole = _clip(tmp_path, "whole.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(whole[: len(whole) // 2])  # the index (moov) is at the end: lost
    return path


def _truncated_mkv(tmp_path: Path) -> Path:
    whole = _clip(tmp_path, "whole.mkv").read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(whole[: len(whole) // 2])  # decodes partly; the header's duration says it is short
    return path


def _truncated_ts(tmp_path: Path) -> Path:
    whole = _clip(tmp_path, "whole.ts").read_bytes()
    path = tmp_path / "cut.ts"
    # Cut between two frames' packets plus a partial packet: TS has no index or duration to compare with,
    # only its fixed packet size gives the cut away.
    cut = (len(whole) // 2) // 188 * 188 + 100
    path.write_bytes(whole[:cut])
    return path


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (_missing, "no such file"),
    "directory": (_directory, "directory"),
    "empty": (_empty, "empty"),
    "text": (_text, "not a video"),
    "audio-only": (_audio_only, "no video stream"),
    "zero-frames": (_zero_frames, "no video frames"),
    "truncated-mp4": (_truncated_mp4, "truncated"),
    "truncated-mkv": (_truncated_mkv, "truncated"),
    "truncated-ts": (_truncated_ts, "transport packet"),
}


def assert_one_line_error(err: str, expected: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and expected in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_info_rejects_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    make, expected = BAD_INPUTS[case]
    assert main(["info", str(make(tmp_path))]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_line_error(captured.err, expected)


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_encode_rejects_bad_input_and_leaves_the_output_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, force: bool
) -> None:
    make, expected = BAD_INPUTS[case]
    source = make(tmp_path)
    output = tmp_path / "out" / "result.mp4"
    output.parent.mkdir()
    output.write_bytes(b"an earlier result")
    args = ["encode", str(source), "-o", str(output)] + (["--force"] if force else [])
    assert main(args) == 1
    err = capsys.readouterr().err
    # Without --force, inputs that open fine meet the existing output first (checked before decoding).
    assert_one_line_error(err, expected if force or expected in err else "exists; use --force")
    assert output.read_bytes() == b"an earlier result"
    assert [path.name for path in output.parent.iterdir()] == ["result.mp4"]  # no temporary left behind


def test_truncated_input_to_a_new_output_keeps_the_frames_that_decoded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "salvage.mp4"
    assert main(["encode", str(_truncated_mkv(tmp_path)), "-o", str(output)]) == 1
    assert_one_line_error(capsys.readouterr().err, f"written to {output}")
    assert output.stat().st_size > 0


def test_a_real_process_reports_bad_input_without_traceback(tmp_path: Path) -> None:
    for args in (["info", str(_text(tmp_path))], ["encode", str(_missing(tmp_path)), "-o", str(tmp_path / "o.mp4")]):
        done = run_arseg(*args)
        assert done.returncode == 1
        assert_one_line_error(done.stderr.decode(), "error")
        assert done.stdout == b""


def test_stdin_with_garbage_is_one_line(tmp_path: Path) -> None:
    done = run_arseg("info", "-", stdin=b"\x00garbage" * 1000)
    assert done.returncode == 1
    assert_one_line_error(done.stderr.decode(), "pipe")
