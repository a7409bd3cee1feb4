"""Interruptions: SIGTERM during `arseg segment` is handled like Ctrl-C (every output valid with the same
frames, videos finalised, no temporary file; exit code 143), and `--resume` continues a stopped run to
exactly the result of an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from _corpus import valid_clip
from _segment_fixtures import tiny_model, tiny_weights
from _segment_fixtures import one_torch_thread  # noqa: F401  (autouse fixture)
from arseg_cli.cli import main
from arseg_cli.atomic_files import is_temp_output
from arseg_cli.palettes import CAMVID
from arseg_cli.pipeline import OutputTargets, Settings, segment_video
from arseg_cli.video.writers import read_label_video

FRAMES = 40


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


def pngs(directory: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(directory.glob("*.png"))])


def video_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def assert_same_lossy_video(a: Path, b: Path) -> None:
    """Exactly the same decoded frames: the same labels encode to the same H.264 stream (no mbtree)."""
    np.testing.assert_array_equal(video_frames(a), video_frames(b))


def outputs(folder: Path) -> list[str]:
    return ["-o", str(folder / "masks"), "--video", str(folder / "colour.mp4"), "--overlay",
            str(folder / "overlay.mp4"), "--lossless", str(folder / "labels.mkv")]  # fmt: skip


def temporaries(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if is_temp_output(path)]


def test_sigterm_keeps_valid_outputs_and_resume_gives_the_uninterrupted_result(weights: Path, tmp_path: Path) -> None:
    clip = valid_clip(tmp_path / "clip.mp4", frames=FRAMES, keyint=12)
    stopped = tmp_path / "stopped"
    command = [sys.executable, "-m", "arseg_cli", "segment", str(clip), *outputs(stopped), "-w", str(weights), "-L", "4"]
    # Started with SIGINT ignored, as a background job of a script or `nohup` is: SIGTERM must still work.
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "OMP_NUM_THREADS": "1"},
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (stopped / "masks").is_dir() or len(list((stopped / "masks").glob("*.png"))) < 6:
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.02)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    message = stderr.decode()
    assert child.returncode == 143 and "terminated" in message and "Traceback" not in message, message
    kept = pngs(stopped / "masks")
    assert 6 <= len(kept) < FRAMES
    np.testing.assert_array_equal(np.stack(list(read_label_video(stopped / "labels.mkv"))), kept)
    assert len(video_frames(stopped / "colour.mp4")) == len(video_frames(stopped / "overlay.mp4")) == len(kept)
    assert temporaries(tmp_path) == []
    first_png = (stopped / "masks" / "000000.png").stat()

    assert main(["segment", str(clip), *outputs(stopped), "-w", str(weights), "-L", "4", "--resume", "-q"]) == 0
    whole = tmp_path / "whole"
    assert main(["segment", str(clip), *outputs(whole), "-w", str(weights), "-L", "4", "-q"]) == 0
    np.testing.assert_array_equal(pngs(stopped / "masks"), pngs(whole / "masks"))
    np.testing.assert_array_equal(np.stack(list(read_label_video(stopped / "labels.mkv"))), pngs(whole / "masks"))
    for name in ("colour.mp4", "overlay.mp4"):
        assert_same_lossy_video(stopped / name, whole / name)
    again = (stopped / "masks" / "000000.png").stat()
    assert (again.st_ino, again.st_mtime_ns) == (first_png.st_ino, first_png.st_mtime_ns)  # kept, not rewritten
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("ignore_sigint", [False, True])
def test_sigterm_inside_a_command_becomes_an_interrupt_with_exit_code_143(ignore_sigint: bool) -> None:
    from arseg_cli.cli._app import EXIT_TERMINATED, _interrupted, _sigterm_as_interrupt

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with _sigterm_as_interrupt():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handlers run at the next bytecode: never reached
        assert _interrupted() == EXIT_TERMINATED
        assert signal.getsignal(signal.SIGINT) == (signal.SIG_IGN if ignore_sigint else signal.default_int_handler)
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("stop", [0, 4, 6, 13])
def test_resume_from_any_frame_equals_the_uninterrupted_run(tmp_path: Path, stop: int) -> None:
    """A run stopped after `stop` frames (keyframes at 0, 4, 8, 12 with L = 4): the model restarts at the
    keyframe at or before frame `stop`; labels and videos equal those of the whole run."""
    model, clip = tiny_model(), valid_clip(tmp_path / "clip.mkv", frames=14, keyint=4)
    settings = Settings(keyframe_interval=4)

    def run(folder: Path, resume: bool) -> None:
        targets = OutputTargets(png_dir=str(folder / "masks"), colour=str(folder / "colour.mp4"),
                                lossless=str(folder / "labels.mkv"))  # fmt: skip
        summary = segment_video(clip, model, targets, settings, palette=CAMVID, resume=resume, force=resume)
        assert summary.frames == 14 and summary.damaged is None

    run(tmp_path / "whole", resume=False)
    stopped = tmp_path / "stopped" / "masks"
    stopped.mkdir(parents=True)
    for index in range(stop):  # what the stopped run had written (its videos are re-created anyway)
        name = f"{index:06d}.png"
        (stopped / name).write_bytes((tmp_path / "whole" / "masks" / name).read_bytes())
    run(tmp_path / "stopped", resume=True)
    np.testing.assert_array_equal(pngs(stopped), pngs(tmp_path / "whole" / "masks"))
    np.testing.assert_array_equal(np.stack(list(read_label_video(tmp_path / "stopped" / "labels.mkv"))),
                                  pngs(tmp_path / "whole" / "masks"))  # fmt: skip
    assert_same_lossy_video(tmp_path / "stopped" / "colour.mp4", tmp_path / "whole" / "colour.mp4")


def test_resume_into_the_masks_of_another_video_is_one_line(weights: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    clip = valid_clip(tmp_path / "clip.mp4", frames=3)
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "masks" / "000000.png")
    assert main(["segment", str(clip), "-o", str(tmp_path / "masks"), "-w", str(weights), "--resume", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "not a label PNG of this video" in " ".join(err.split())


@pytest.mark.parametrize("args", [["-o", "-"], ["--video", "c.mp4"]])
def test_resume_needs_a_png_directory(weights: Path, tmp_path: Path, args: list[str],
                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    clip = valid_clip(tmp_path / "clip.mp4", frames=2)
    assert main(["segment", str(clip), *args, "-w", str(weights), "--resume"]) == 2
    assert "their directory as --output" in " ".join(capsys.readouterr().err.split())
