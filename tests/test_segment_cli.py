"""`arseg segment` end to end: default weights, outputs, several inputs, pipes, bad input, Ctrl-C, and the
mIoU of its label PNGs equal to what `arseg eval --source stream` reports for the same clips."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from _segment_fixtures import HEIGHT, L, WIDTH, write_test_clip
from _segment_fixtures import one_torch_thread, weights  # noqa: F401  (fixtures)
from _video_inputs import run_arseg
from arseg_cli.cli import main
from arseg_cli.data import open_dataset
from arseg_cli.evaluate.metrics import ConfusionMatrix
from arseg_cli.evaluate.protocol import ModeResult, class_rule, target_ids
from arseg_cli.synth import SynthSpec, write_dataset
from arseg_cli.video.writers import read_label_video

FRAMES = 9


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_clip(tmp_path_factory.mktemp("clip") / "street.mp4", FRAMES)


@pytest.fixture()
def default_weights(weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny weights as the installed default (ARSEG_WEIGHTS, also seen by subprocesses, which run
    torch on one thread: two threads on the 2 busy shared cores run ~10x slower)."""
    monkeypatch.setenv("ARSEG_WEIGHTS", str(weights))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return weights


def _pngs(directory: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(directory.glob("*.png"))])


def test_input_and_output_alone_use_the_default_weights_and_write_label_pngs(
    default_weights: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["segment", str(clip), "-o", str(tmp_path / "masks"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)[0]
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [f"{i:06d}.png" for i in range(FRAMES)]
    assert _pngs(tmp_path / "masks").shape == (FRAMES, HEIGHT, WIDTH)
    assert (summary["frames"], summary["keyframes"], summary["scale"], summary["keyframe_interval"]) == (FRAMES, 3, 0.5, L)
    assert summary["policy"] == "adaptive" and summary["weights"] == str(default_weights)
    assert set(summary["seconds"]) == {"decode", "motion", "model", "write", "total"}
    macs = summary["macs_per_frame"]
    assert macs["mean"] == pytest.approx((3 * macs["keyframe"] + 6 * macs["nonkeyframe"]) / FRAMES)


def test_no_weights_installed_is_a_one_line_error(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARSEG_WEIGHTS", raising=False)
    monkeypatch.setattr("arseg_cli.model.defaults.weights_dir", lambda: tmp_path / "none")
    assert main(["segment", str(clip), "-o", str(tmp_path / "masks")]) == 1
    assert not (tmp_path / "masks").exists()


def test_raw_labels_on_stdout_from_mpegts_on_stdin_equal_the_pngs(default_weights: Path, tmp_path: Path) -> None:
    stream = write_test_clip(tmp_path / "in.ts", FRAMES)
    piped = run_arseg("segment", "-", "-o", "-", stdin=stream.read_bytes())
    assert piped.returncode == 0, piped.stderr.decode()
    assert main(["segment", str(stream), "-o", str(tmp_path / "png"), "--quiet"]) == 0
    assert piped.stdout == _pngs(tmp_path / "png").tobytes()  # FRAMES x H x W bytes, nothing else


def test_several_inputs_get_their_own_sub_directories_with_distinct_names(
    default_weights: Path, clip: Path, tmp_path: Path
) -> None:
    other = tmp_path / "b" / clip.name  # same stem as `clip`
    other.parent.mkdir()
    other.write_bytes(clip.read_bytes())
    out = tmp_path / "out"
    assert main(["segment", str(clip), str(tmp_path / "b"), "-o", str(out), "--video", "colour.mp4", "-L", "1", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["street", "street-2"]
    for sub in ("street", "street-2"):
        assert sorted(p.name for p in (out / sub).iterdir()) == ["colour.mp4", "labels"]
        assert len(list((out / sub / "labels").iterdir())) == FRAMES
    np.testing.assert_array_equal(_pngs(out / "street" / "labels"), _pngs(out / "street-2" / "labels"))


def test_an_unreadable_input_among_several_is_reported_and_the_others_are_segmented(
    default_weights: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out"
    code = main(["segment", str(junk), str(clip), "-o", str(out), "-L", "1", "--json", "-q"])
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].count("junk.mp4") == 1 and "Traceback" not in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["street"]  # nothing for the unreadable one
    assert len(list((out / "street" / "labels").glob("*.png"))) == FRAMES
    summaries = json.loads(captured.out)
    assert [entry["input"] for entry in summaries] == [str(junk), str(clip)]
    assert "error" in summaries[0] and summaries[1]["frames"] == FRAMES


def test_existing_output_needs_force(default_weights: Path, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "masks"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    done = run_arseg("segment", str(clip), "-o", str(out))
    assert done.returncode == 1 and b"--force" in done.stderr and b"Traceback" not in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main(["segment", str(clip), "-o", str(out), "--force", "-q"]) == 0
    assert (out / "notes.txt").read_text() == "keep me" and len(list(out.glob("*.png"))) == FRAMES


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--half", "--device", "cpu"], 2, "CUDA"),
        (["--palette", "cityscapes"], 2, "19 classes"),
        (["-o", "-", "--json"], 2, "standard output"),
        (["--keyframe-policy", "sometimes"], 2, "sometimes"),
        (["--start", "5", "--end", "3"], 2, "--end"),
    ],
    ids=["half-on-cpu", "palette-classes", "json-with-raw-stdout", "bad-policy", "end-before-start"],
)
def test_bad_option_combinations_are_one_line_usage_errors(
    default_weights: Path, clip: Path, tmp_path: Path, args: list[str], code: int, words: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = [] if "-o" in args else ["-o", str(tmp_path / "masks")]
    assert main(["segment", str(clip), *output, *args]) == code
    message = " ".join(capsys.readouterr().err.split())  # the console wraps at its width
    assert words in message and "Traceback" not in message and message.count("error:") == 1
    assert not (tmp_path / "masks").exists()


def test_a_truncated_input_warns_keeps_its_frames_and_exits_1(default_weights: Path, tmp_path: Path) -> None:
    whole = write_test_clip(tmp_path / "whole.mkv", 12).read_bytes()
    (tmp_path / "cut.mkv").write_bytes(whole[: len(whole) * 2 // 3])
    done = run_arseg("segment", str(tmp_path / "cut.mkv"), "-o", str(tmp_path / "masks"))
    message = done.stderr.decode()
    assert done.returncode == 1 and "warning" in message and "truncated" in message and "Traceback" not in message
    assert 0 < len(list((tmp_path / "masks").glob("*.png"))) < 12


def test_a_file_that_is_not_a_video_is_a_one_line_error_and_writes_nothing(
    default_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a video\n")
    assert main(["segment", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "masks")]) == 1
    assert capsys.readouterr().err.count("error:") == 1
    assert not (tmp_path / "masks").exists()


def test_ctrl_c_leaves_valid_outputs_with_the_same_frames(default_weights: Path, tmp_path: Path) -> None:
    clip = write_test_clip(tmp_path / "long.mp4", 400, keyint=L)
    out = tmp_path / "masks"
    child = subprocess.Popen(
        [sys.executable, "-m", "arseg_cli", "segment", str(clip), "-o", str(out), "--lossless", str(tmp_path / "l.mkv"),
         "--video", str(tmp_path / "c.mp4")],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while not (out.is_dir() and len(list(out.glob("*.png"))) >= 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130 and b"interrupted" in stderr and b"Traceback" not in stderr
    pngs = _pngs(out)
    assert 3 <= len(pngs) < 400
    np.testing.assert_array_equal(np.stack(list(read_label_video(tmp_path / "l.mkv"))), pngs)
    with av.open(str(tmp_path / "c.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(pngs)


def test_eval_stream_scores_exactly_the_miou_of_the_pngs_segment_writes(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "synth"
    write_dataset(data, SynthSpec(clips=2, frames=FRAMES, height=HEIGHT, width=WIDTH, seed=3, keyint=L, crf=20, preset="ultrafast"))
    assert main(["eval", str(data), "--split", "all", "-w", str(weights), "--source", "stream", "--json",
                 "--keyframe-policy", "fixed"]) == 0
    reported = json.loads(capsys.readouterr().out)
    dataset = open_dataset(data, split="all")
    videos = sorted({str(f.source.path) for f in dataset.frames})  # type: ignore[attr-defined]
    assert main(["segment", *videos, "-o", str(tmp_path / "out"), "-w", str(weights), "-q", "--keyframe-policy", "fixed"]) == 0
    rule = class_rule(dataset.classes)
    per_d = [ConfusionMatrix(len(dataset.classes), dataset.ignore_index) for _ in range(L)]
    for frame, sub in zip(dataset.frames, [s for s in ("video", "video-2") for _ in range(FRAMES)]):
        predicted = np.asarray(Image.open(tmp_path / "out" / sub / "labels" / f"{frame.index:06d}.png"))
        per_d[frame.index % L].update(predicted, target_ids(dataset.read_labels(frame), rule, dataset.ignore_index))
    assert reported["frames"] == 2 * FRAMES and reported["source"] == "stream"
    assert reported["ar"]["miou"] == round(ModeResult(per_d).miou(rule), 6)
    assert reported["ar"]["per_d"] == [round(m.miou(rule.counted), 6) for m in per_d]


def test_progress_shows_frames_fps_and_keyframes_on_a_terminal_only(
    default_weights: Path, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr("arseg_cli.cli.segment.console", Console(file=screen, force_terminal=True, width=150))
    assert main(["segment", str(clip), "-o", str(tmp_path / "a")]) == 0
    shown = screen.getvalue()
    assert f"{FRAMES}/{FRAMES}" in shown and " fps, 3 keyframes" in shown  # the bar, not the summary line
    screen.truncate(0)
    assert main(["segment", str(clip), "-o", str(tmp_path / "b"), "--quiet"]) == 0
    assert screen.getvalue().strip("\x00") == ""
