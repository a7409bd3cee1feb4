"""SegmentOutputs, the one way `arseg segment` and `arseg bench --video` open their outputs: the
lossless codec from the file's extension, parent directories, the timestamp rule, and resuming."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from arseg_cli.errors import InputError, OptionsError
from arseg_cli.output_plan import OutputTargets
from arseg_cli.palettes import CAMVID
from arseg_cli.segment_outputs import SegmentOutputs
from arseg_cli.video.writers import read_label_video

HW = (16, 24)


def _frame(index: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.full(HW, index % CAMVID.num_classes, np.uint8)
    return labels, np.zeros((*HW, 3), np.uint8)


def _write(outputs: SegmentOutputs, indices: range, pts_step: int = 1) -> None:
    with outputs:
        for index in indices:
            outputs.write(index, index * pts_step, *_frame(index))


@pytest.mark.parametrize(("name", "codec"), [("labels.mov", "png"), ("labels.mkv", "ffv1")])
def test_lossless_codec_follows_the_extension_and_parent_folders_are_made(tmp_path: Path, name: str, codec: str) -> None:
    target = tmp_path / "new" / "deeper" / name
    outputs = SegmentOutputs(OutputTargets(lossless=str(target)), CAMVID, fps=Fraction(25), time_base=Fraction(1, 25))
    assert outputs.described == {"lossless": str(target)}
    _write(outputs, range(3))
    with av.open(str(target)) as container:
        assert container.streams.video[0].codec_context.name == codec
    assert [int(labels[0, 0]) for labels in read_label_video(target)] == [0, 1, 2]


def test_videos_need_the_input_frame_rate_label_pngs_do_not(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="frame rate is unknown"):
        SegmentOutputs(OutputTargets(colour=str(tmp_path / "c.mp4")), CAMVID, fps=None, time_base=None)
    _write(SegmentOutputs(OutputTargets(png_dir=str(tmp_path / "png")), CAMVID, fps=None, time_base=None), range(2))
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["000000.png", "000001.png"]


def test_decoded_timestamps_are_kept_when_the_time_base_is_known(tmp_path: Path) -> None:
    """pts 0, 2, 4 in units of 1/50 s: a 25 fps stream's frames, timed as decoded. Without a time base
    the pts (here 0, 1000, 2000) are not used: the frames are 1/fps apart."""
    for time_base, pts_step in ((Fraction(1, 50), 2), (None, 1000)):
        target = tmp_path / f"{pts_step}.mkv"
        outputs = SegmentOutputs(OutputTargets(lossless=str(target)), CAMVID, fps=Fraction(25), time_base=time_base)
        _write(outputs, range(3), pts_step)
        with av.open(str(target)) as container:
            assert [float(frame.time) for frame in container.decode(video=0)] == pytest.approx([0.0, 0.04, 0.08])


def test_resuming_keeps_the_stopped_runs_pngs_and_writes_the_rest(tmp_path: Path) -> None:
    png = tmp_path / "png"
    _write(SegmentOutputs(OutputTargets(png_dir=str(png)), CAMVID, fps=Fraction(25), time_base=None), range(2))
    kept = {p.name: p.stat().st_mtime_ns for p in png.iterdir()}
    targets = OutputTargets(png_dir=str(png), lossless=str(tmp_path / "labels.mkv"))
    outputs = SegmentOutputs(targets, CAMVID, fps=Fraction(25), time_base=None, force=True, resume_from=0)
    assert outputs.resume is not None and outputs.resume.first_missing == 2
    _write(outputs, range(4))
    assert {p.name: p.stat().st_mtime_ns for p in png.iterdir() if p.name in kept} == kept
    assert sorted(p.name for p in png.iterdir()) == [f"{i:06d}.png" for i in range(4)]
    assert len(list(read_label_video(tmp_path / "labels.mkv"))) == 4  # the videos are written whole


def test_nothing_to_write_or_nothing_to_resume_from_is_an_options_error(tmp_path: Path) -> None:
    with pytest.raises(OptionsError, match="no output requested"):
        SegmentOutputs(OutputTargets(), CAMVID, fps=Fraction(25), time_base=None)
    with pytest.raises(OptionsError, match="label PNGs of the stopped run"):
        SegmentOutputs(OutputTargets(raw=str(tmp_path / "l.raw")), CAMVID, fps=Fraction(25), time_base=None, resume_from=0)
    assert not any(tmp_path.iterdir())
