"""The synthetic clips' ground truth is exact, and the libx264 writer makes the GOP AR-Seg needs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from arseg_cli.video.synthetic import make_clip, write_clip
from arseg_cli.video.x264 import as_fraction, x264_params


def test_true_flow_maps_every_pixel_to_identical_content() -> None:
    clip = make_clip(frames=4, height=64, width=80, pan_px=(3, -2), object_px=(-2, 1), object_size=20, seed=1)
    for t in range(1, 4):
        cur, prev, flow = clip.frames[t], clip.frames[t - 1], clip.flow_prev[t]
        ys, xs = np.mgrid[0:64, 0:80]
        sx, sy = xs + flow[0].astype(int), ys + flow[1].astype(int)
        inside = (sx >= 0) & (sx < 80) & (sy >= 0) & (sy < 64)
        # Background pixels the object covered in the previous frame are disoccluded: no true match.
        was_hidden = np.zeros_like(inside)
        was_hidden[inside] = clip.object_mask[t - 1][sy[inside], sx[inside]] & ~clip.object_mask[t][inside]
        valid = inside & ~was_hidden
        assert valid.mean() > 0.8
        np.testing.assert_array_equal(cur[valid], prev[sy[valid], sx[valid]])


def test_flow_values_are_pan_and_object_motion() -> None:
    clip = make_clip(frames=3, height=48, width=64, pan_px=(2, 1), object_px=(-3, 2), object_size=16)
    assert np.all(clip.flow_prev[0] == 0)
    flow, mask = clip.flow_prev[2], clip.object_mask[2]
    assert set(np.unique(flow[0][~mask])) == {2.0} and set(np.unique(flow[1][~mask])) == {1.0}
    assert set(np.unique(flow[0][mask])) == {3.0} and set(np.unique(flow[1][mask])) == {-2.0}


def test_same_seed_same_clip_other_seed_other_clip() -> None:
    a, b, c = (make_clip(frames=2, height=32, width=32, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.frames[1], b.frames[1])
    assert not np.array_equal(a.frames[1], c.frames[1])


def test_x264_params_fix_the_gop() -> None:
    assert x264_params(12) == "keyint=12:min-keyint=12:bframes=0:ref=1:scenecut=0"
    assert x264_params(12, mbtree=False) == "keyint=12:min-keyint=12:bframes=0:ref=1:scenecut=0:mbtree=0"
    with pytest.raises(ValueError):
        x264_params(0)


def test_writer_gives_ip_gop_without_b_frames_at_the_given_rate(tmp_path: Path) -> None:
    clip = make_clip(frames=14, height=48, width=64)
    path = write_clip(clip.frames, tmp_path / "c.mp4", fps=25, keyint=5)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 25
        types = "".join(av.video.frame.PictureType(f.pict_type).name for f in container.decode(stream))
    assert types == "IPPPPIPPPPIPPP"


@pytest.mark.parametrize(
    ("fps", "exact"),
    [(29.97, Fraction(30000, 1001)), (23.976, Fraction(24000, 1001)), (59.94, Fraction(60000, 1001)), (25.0, Fraction(25)), (30, Fraction(30)), (12.5, Fraction(25, 2))],
)
def test_frame_rates_become_exact_fractions(fps: float, exact: Fraction) -> None:
    assert as_fraction(fps) == exact
