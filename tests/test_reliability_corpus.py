"""The corpus of bad and unusual inputs (tests/_corpus.py) through `arseg segment` and `arseg info`, each
a real process with a timeout: correct output, or a one-line error with exit code 1; never a
traceback, an internal error, another exit code or a hang."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _corpus import CASES, HEIGHT, WIDTH, Case
from _forked_cli import ForkedCli, Outcome
from _segment_fixtures import tiny_weights
from arseg_cli.atomic_files import is_temp_output

TIMEOUT_S = 90  # per command line; the tiny inputs take 1-3 s, even on the busy shared machine


@pytest.fixture(scope="module")
def cli(forked_cli: ForkedCli) -> ForkedCli:
    return forked_cli  # the session's server (conftest.py)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_no_crash(outcome: Outcome) -> None:
    """Ended by itself, in time, with exit code 0 or 1, and without a traceback or an internal error."""
    assert not outcome.timed_out, f"hang: killed after {outcome.seconds:.0f} s"
    assert outcome.code in (0, 1), (outcome.code, outcome.stderr)
    assert "Traceback" not in outcome.stderr and "internal error" not in outcome.stderr, outcome.stderr


def assert_one_error_line(outcome: Outcome, words: str = "") -> str:
    """Exit code 1 and exactly one line on stderr, `error: ...` containing `words`; returns it."""
    assert outcome.code == 1, outcome.stderr
    shown = lines(outcome.stderr)
    assert len(shown) == 1 and shown[0].startswith("error: "), outcome.stderr
    assert words in shown[0], shown[0]
    return shown[0]


def label_pngs(directory: Path) -> list[np.ndarray]:
    """The label PNGs of `directory` in name order; asserts no temporary file was left beside them."""
    if not directory.exists():
        return []
    names = sorted(p.name for p in directory.iterdir())
    assert not [name for name in names if is_temp_output(name)], names
    assert names == [f"{i:06d}.png" for i in range(len(names))], names
    return [np.asarray(Image.open(directory / name)) for name in names]


def check_segment(case: Case, outcome: Outcome, out: Path) -> None:
    assert_no_crash(outcome)
    expect = case.expect
    pngs = label_pngs(out)
    assert all(p.dtype == np.uint8 and p.ndim == 2 and p.max() < 12 for p in pngs)
    if expect.outcome == "error":
        assert_one_error_line(outcome, expect.words)
        assert pngs == []
    elif expect.outcome == "ok":
        assert outcome.code == 0, outcome.stderr
        assert len(pngs) == (expect.frames or len(pngs)) >= 1
        if expect.size_hw is not None:
            assert {p.shape for p in pngs} == {expect.size_hw}
        assert expect.warns in " ".join(outcome.stderr.split()), outcome.stderr
    else:  # damaged: one warning line, exit code 1, the frames that decoded kept
        assert expect.outcome == "damaged"
        shown = lines(outcome.stderr)
        assert outcome.code == 1 and len(shown) == 1 and shown[0].startswith("warning: ") and pngs, outcome.stderr
        assert "corrupt or truncated" in shown[0] and f"the {len(pngs)} frames decoded" in shown[0]


@pytest.mark.parametrize("name", CASES)
def test_corpus_input_through_segment_and_info(cli: ForkedCli, weights: Path, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    source = case.make(tmp_path)
    out = tmp_path / "masks"
    segmented = cli.run(["segment", str(source), "-o", str(out), "-w", str(weights), "-q"], tmp_path / "run-segment",
                        timeout=TIMEOUT_S)  # fmt: skip
    check_segment(case, segmented, out)
    described = cli.run(["info", str(source), "--json"], tmp_path / "run-info", timeout=TIMEOUT_S)
    assert_no_crash(described)
    if described.code == 0:
        report = json.loads(described.stdout)
        assert report["width"] > 0 and report["height"] > 0 and report["frame_count"] >= 1
    else:
        assert_one_error_line(described)
        assert described.stdout == b""
    if case.expect.outcome in ("ok", "error"):  # info agrees with segment on what is usable
        assert described.code == segmented.code, (described.stderr, segmented.stderr)


def test_a_resolution_change_makes_a_keyframe_and_video_outputs_stop_with_one_line(
    cli: ForkedCli, weights: Path, tmp_path: Path
) -> None:
    source = CASES["resolution-change"].make(tmp_path)
    fixed = cli.run(["segment", str(source), "-o", str(tmp_path / "a"), "-w", str(weights), "--json", "-q",
                     "--keyframe-policy", "fixed", "-L", "12"], tmp_path / "run-a", timeout=TIMEOUT_S)  # fmt: skip
    assert_no_crash(fixed)
    assert fixed.code == 0, fixed.stderr
    assert json.loads(fixed.stdout)[0]["keyframe_reasons"] == {"first": 1, "resize": 1}
    assert [p.shape for p in label_pngs(tmp_path / "a")] == [(HEIGHT, WIDTH)] * 3 + [(48, 80)] * 3
    colour = tmp_path / "colour.mp4"
    video = cli.run(["segment", str(source), "-o", str(tmp_path / "b"), "--video", str(colour), "-w", str(weights),
                     "-q"], tmp_path / "run-b", timeout=TIMEOUT_S)  # fmt: skip
    assert_no_crash(video)
    assert_one_error_line(video, "frame size changes from 96x64 to 80x48")
    # Every output keeps the frames before the change, finished and playable; nothing temporary is left.
    assert len(label_pngs(tmp_path / "b")) == 3
    import av

    with av.open(str(colour)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3
    assert not [p for p in tmp_path.iterdir() if is_temp_output(p)]


def test_max_pixels_refuses_a_larger_stream_before_decoding(cli: ForkedCli, weights: Path, tmp_path: Path) -> None:
    source = CASES["two-frames"].make(tmp_path)
    refused = cli.run(["segment", str(source), "-o", str(tmp_path / "a"), "-w", str(weights), "--max-pixels",
                       str(HEIGHT * WIDTH - 1)], tmp_path / "run-a", timeout=TIMEOUT_S)  # fmt: skip
    assert_one_error_line(refused, f"frames of {WIDTH}x{HEIGHT} pixels are over --max-pixels {HEIGHT * WIDTH - 1}")
    assert not (tmp_path / "a").exists()
    allowed = cli.run(["segment", str(source), "-o", str(tmp_path / "b"), "-w", str(weights), "--max-pixels",
                       str(HEIGHT * WIDTH), "-q"], tmp_path / "run-b", timeout=TIMEOUT_S)  # fmt: skip
    assert allowed.code == 0 and len(label_pngs(tmp_path / "b")) == 2

