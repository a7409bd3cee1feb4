"""`arseg motion`: file names, file contents equal to the library's flows, no overwrite, stdin, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _video_inputs import FRAMES, HEIGHT, KEYINT, WIDTH, run_arseg, small_clip

from arseg_cli.cli import main
from arseg_cli.video.decode import decode_frames
from arseg_cli.video.flowio import INDEX_NAME, read_flow
from arseg_cli.video.motion import flows_to_key, flows_to_reference
from arseg_cli.video.synthetic import write_clip


def names(n: int, suffix: str) -> list[str]:
    return [f"{i:06d}.{suffix}" for i in range(n)]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(small_clip().frames, tmp_path_factory.mktemp("v") / "clip.mp4", keyint=KEYINT)


@pytest.mark.parametrize("to_key", [None, 5], ids=["previous-frame", "to-key-5"])
def test_writes_one_flow_per_frame_equal_to_the_library_flows(video: Path, tmp_path: Path, to_key: int | None) -> None:
    out = tmp_path / "flows"
    args = [] if to_key is None else ["--to-key", str(to_key)]
    assert main(["motion", str(video), "-o", str(out), *args]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*names(FRAMES, "flo"), INDEX_NAME])
    frames = decode_frames(video)
    expected = flows_to_reference(frames) if to_key is None else flows_to_key(frames, keyframe_interval=to_key)
    index = json.loads((out / INDEX_NAME).read_text())
    for (_, record), entry in zip(expected, index["frames"], strict=True):
        flow = read_flow(out / f"{record.index:06d}.flo")
        assert flow.shape == (2, HEIGHT, WIDTH)
        assert flow.tobytes() == record.flow_px.tobytes()
        assert entry["reference"] == record.key_index and entry["exact"]
    keys = [e["index"] for e in index["frames"] if e["reference"] == e["index"]]
    assert keys == ([0, 12] if to_key is None else [0, 5, 10, 12])  # every 5, restarting at the I-frame
    for key in keys:
        assert not read_flow(out / f"{key:06d}.flo").any()
    assert index["mode"] == ("previous" if to_key is None else "to-key") and index["motion"] == "bitstream"


def test_npy_format_and_colour_pictures(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "flows"
    assert main(["motion", str(video), "-o", str(out), "--format", "npy", "--png", "--to-key", "12"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*names(FRAMES, "npy"), *names(FRAMES, "png"), INDEX_NAME])
    assert np.load(out / "000003.npy").shape == (2, HEIGHT, WIDTH)


def test_existing_outputs_are_not_overwritten_without_force(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "flows"
    out.mkdir()
    (out / "000000.flo").write_bytes(b"keep me")
    done = run_arseg("motion", str(video), "-o", str(out))
    assert done.returncode == 1
    assert b"--force" in done.stderr and b"Traceback" not in done.stderr
    assert (out / "000000.flo").read_bytes() == b"keep me" and len(list(out.iterdir())) == 1
    assert main(["motion", str(video), "-o", str(out), "--force"]) == 0
    assert not read_flow(out / "000000.flo").any()


def test_reads_mpegts_from_stdin(tmp_path: Path) -> None:
    stream = write_clip(small_clip().frames, tmp_path / "clip.ts", keyint=KEYINT)
    done = run_arseg("motion", "-", "-o", str(tmp_path / "flows"), "--to-key", "12", stdin=stream.read_bytes())
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b""  # data went to files, messages to stderr
    assert sorted(p.name for p in (tmp_path / "flows").iterdir()) == sorted([*names(FRAMES, "flo"), INDEX_NAME])
    assert json.loads((tmp_path / "flows" / INDEX_NAME).read_text())["input"] == "<stdin>"
    for (_, record) in flows_to_key(decode_frames(stream), keyframe_interval=12):
        assert read_flow(tmp_path / "flows" / f"{record.index:06d}.flo").tobytes() == record.flow_px.tobytes()


@pytest.mark.parametrize(
    ("args", "code"),
    [(["motion", "{missing}", "-o", "{out}"], 1), (["motion", "{video}", "-o", "{out}", "--to-key", "0"], 2),
     (["motion", "{video}", "-o", "{out}", "--format", "png"], 2), (["motion", "{text}", "-o", "{out}"], 1)],
    ids=["missing-input", "to-key-0", "bad-format", "text-file"],
)
def test_bad_input_and_options_create_nothing(
    video: Path, tmp_path: Path, args: list[str], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through `main`, as the entry point calls it (the real processes of this file show its exit code
    is the process's)."""
    (tmp_path / "notes.txt").write_text("not a video\n")
    values = {
        "missing": tmp_path / "nope.mp4", "out": tmp_path / "flows", "video": video, "text": tmp_path / "notes.txt"
    }
    assert main([a.format(**values) for a in args]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().count("\n") == 0 and "error: " in err
    assert not (tmp_path / "flows").exists()


def test_truncated_input_keeps_the_flows_of_the_frames_that_decoded(tmp_path: Path) -> None:
    whole = write_clip(small_clip().frames, tmp_path / "clip.mkv", keyint=KEYINT).read_bytes()
    (tmp_path / "cut.mkv").write_bytes(whole[: len(whole) * 2 // 3])
    done = run_arseg("motion", str(tmp_path / "cut.mkv"), "-o", str(tmp_path / "flows"))
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert b"truncated" in done.stderr and b"their flows are in" in done.stderr
    index = json.loads((tmp_path / "flows" / INDEX_NAME).read_text())
    decoded = len(index["frames"])
    assert 0 < decoded < FRAMES
    assert sorted(p.name for p in (tmp_path / "flows").iterdir()) == sorted([*names(decoded, "flo"), INDEX_NAME])
