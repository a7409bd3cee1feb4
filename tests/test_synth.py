"""SynthStreet: deterministic from a seed, labels and colours move with the content along the exact
ground-truth flow, every class appears, thin objects are thin, and `arseg synth` writes a data set."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from arseg_cli.cli import app
from arseg_cli.errors import OptionsError
from arseg_cli.palettes import CAMVID
from arseg_cli.synth.classes import NUM_CLASSES, Label
from arseg_cli.synth.clip import SynthClip, SynthFrame
from arseg_cli.synth.dataset import SynthSpec
from arseg_cli.synth.flow import backward_flow
from arseg_cli.synth.render import GROUND, SKY

H, W = 64, 96


@cache
def _frames(seed: int, index: int = 0, frames: int = 6, height: int = H, width: int = W) -> tuple[SynthFrame, ...]:
    return tuple(SynthClip(seed, index, frames, height, width).frames())


def _warp_nearest(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """image sampled at p + flow(p), nearest pixel; and where that lies inside the image."""
    height, width = flow.shape[1:]
    rows, cols = np.mgrid[0:height, 0:width]
    x, y = np.rint(cols + flow[0]).astype(int), np.rint(rows + flow[1]).astype(int)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    return image[np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)], inside


def _warp_bilinear(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(H, W, C) float image sampled at p + flow(p) with bilinear interpolation (clamped at the border)."""
    height, width = flow.shape[1:]
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    x = np.clip(cols + flow[0], 0, width - 1)
    y = np.clip(rows + flow[1], 0, height - 1)
    x0, y0 = np.minimum(np.floor(x).astype(int), width - 2), np.minimum(np.floor(y).astype(int), height - 2)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    img = image.astype(np.float64)
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _interior(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has a single label: away from object and occlusion boundaries."""
    padded = np.pad(labels, 1, mode="edge")
    same = np.ones(labels.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= padded[1 + dy : 1 + dy + labels.shape[0], 1 + dx : 1 + dx + labels.shape[1]] == labels
    return same


def test_same_seed_gives_identical_frames_and_labels() -> None:
    first = list(SynthClip(7, 0, 3, H, W).frames())
    again = list(SynthClip(7, 0, 3, H, W).frames())
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.rgb, b.rgb)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.flow, b.flow)


def test_a_frame_does_not_depend_on_what_was_rendered_before() -> None:
    # Textures are painted on first use, each from its own seed: order must not matter.
    alone = SynthClip(7, 2, 6, H, W).render(5)
    clip = SynthClip(7, 2, 6, H, W)
    for t in (3, 0, 1):
        clip.render(t)
    after = clip.render(5)
    np.testing.assert_array_equal(alone.rgb, after.rgb)
    np.testing.assert_array_equal(alone.labels, after.labels)


def test_other_seed_or_clip_index_gives_another_clip() -> None:
    base = SynthClip(7, 0, 1, H, W).render(0)
    for other in (SynthClip(8, 0, 1, H, W).render(0), SynthClip(7, 1, 1, H, W).render(0)):
        assert np.mean(other.labels != base.labels) > 0.05
        assert not np.array_equal(other.rgb, base.rgb)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_move_with_the_content_along_the_ground_truth_flow(seed: int) -> None:
    for previous, frame in zip(_frames(seed), _frames(seed)[1:]):
        warped, inside = _warp_nearest(previous.labels, frame.flow)
        away = inside & _interior(frame.labels)
        agree = np.mean(warped[away] == frame.labels[away])
        assert away.mean() > 0.5
        assert agree >= 0.95, f"frame {frame.index}: {agree:.3f}"
        # Where the flow says the point is visible in the previous frame, the label matches almost always.
        assert np.mean(warped[frame.visible] == frame.labels[frame.visible]) >= 0.98


@pytest.mark.parametrize("seed", [0, 1])
def test_colours_move_with_the_content_along_the_ground_truth_flow(seed: int) -> None:
    clip = SynthClip(seed, 0, 6, 120, 160)
    key, frame = clip.render(0), clip.render(5)
    truth = clip.flow(5, frame, 0, key)  # five frames apart: large, varied motion
    moving = truth.visible & _interior(frame.labels) & (np.hypot(*truth.flow_px) > 2)
    assert moving.mean() > 0.3

    def error(flow: np.ndarray) -> np.ndarray:
        return np.abs(_warp_bilinear(key.rgb, flow) - frame.rgb).max(axis=-1)[moving]

    exact = error(truth.flow_px)
    # Textures are point-sampled, so edges inside a surface (windows, paint, paving seams) land on
    # pixels by rounding and may differ by a pixel between frames: small typical errors...
    assert np.median(exact) <= 3, np.median(exact)
    # ... and the colours are registered to well within a pixel and a half: the same flow shifted by
    # 1.5 px in any direction matches clearly worse.
    for shift in ((1.5, 0.0), (-1.5, 0.0), (0.0, 1.5), (0.0, -1.5)):
        shifted = truth.flow_px + np.array(shift, np.float32)[:, None, None]
        assert exact.mean() < 0.7 * error(shifted).mean(), shift


def test_moving_objects_follow_their_own_motion_in_the_flow() -> None:
    clip = SynthClip(4, 0, 6, 120, 160)
    key, frame = clip.render(0), clip.render(5)
    movers = clip.renderer.surface_movers()
    moving = (movers[frame.surface + 1] != 0) & _interior(frame.surface)
    poses = clip.world.camera.pose(5), clip.world.camera.pose(0)
    shift = (clip.world.scene.mover_xz[:, 5] - clip.world.scene.mover_xz[:, 0])[movers]

    def same_surface(surface_shift: np.ndarray) -> float:
        flow = backward_flow(frame, poses[0], key, poses[1], surface_shift, clip.world.intrinsics).flow_px
        warped, inside = _warp_nearest(key.surface, flow)
        return float(np.mean(warped[moving & inside] == frame.surface[moving & inside]))

    assert moving.sum() > 200  # cars, people or bicyclists in view
    assert same_surface(shift) >= 0.98
    # Ignoring their motion, or moving them the wrong way, lands elsewhere.
    assert same_surface(np.zeros_like(shift)) < 0.9
    assert same_surface(-shift) < 0.9


def test_flow_to_key_points_each_frame_straight_into_its_keyframe() -> None:
    clip = SynthClip(6, 0, 7, H, W)
    frames = list(clip.frames(keyint=3))
    assert [f.reference for f in frames] == [0, 0, 0, 3, 3, 3, 6]
    for frame in frames:
        if frame.reference == frame.index:
            assert not frame.flow.any() and frame.visible.all()
            continue
        direct = clip.flow(frame.index, clip.render(frame.index), frame.reference, clip.render(frame.reference))
        np.testing.assert_array_equal(frame.flow, direct.flow_px)
        np.testing.assert_array_equal(frame.visible, direct.visible)
        warped, inside = _warp_nearest(frames[frame.reference].labels, frame.flow)
        assert np.mean(warped[frame.visible] == frame.labels[frame.visible]) >= 0.98


def test_flow_to_the_same_frame_is_zero_and_fully_visible() -> None:
    clip = SynthClip(3, 0, 2, H, W)
    frame = clip.render(1)
    truth = clip.flow(1, frame, 1, frame)
    np.testing.assert_allclose(truth.flow_px, 0.0, atol=1e-3)
    assert truth.visible.all()


def test_flow_there_and_back_returns_to_the_pixel() -> None:
    clip = SynthClip(4, 0, 8, H, W)
    a, b = clip.render(0), clip.render(7)
    back = clip.flow(7, b, 0, a).flow_px  # frame 7 -> frame 0
    forth = clip.flow(0, a, 7, b).flow_px  # frame 0 -> frame 7
    rows, cols = np.mgrid[0:H, 0:W]
    x, y = cols + back[0], rows + back[1]
    # Only where frame 0 shows the same surface on all four pixels around the landing point.
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    ok = (x0 >= 0) & (x0 < W - 1) & (y0 >= 0) & (y0 < H - 1)
    x0, y0 = np.where(ok, x0, 0), np.where(ok, y0, 0)
    for dy in (0, 1):
        for dx in (0, 1):
            ok &= a.surface[y0 + dy, x0 + dx] == b.surface
    assert ok.mean() > 0.3
    returned = _warp_bilinear(np.moveaxis(forth, 0, -1), back)
    miss = np.hypot(back[0] + returned[..., 0], back[1] + returned[..., 1])[ok]
    # Bilinear interpolation of a smooth (projective) flow within one plane: far below a pixel.
    assert np.percentile(miss, 95) < 0.1, np.percentile(miss, 95)


def test_sky_and_ground_surfaces_are_where_the_horizon_says() -> None:
    clip = SynthClip(5, 0, 1, H, W)
    frame = clip.render(0)
    sky_rows = clip.renderer.horizon_row
    assert np.all((frame.surface[:sky_rows] == SKY) | (frame.surface[:sky_rows] > GROUND))
    assert np.all(frame.surface[sky_rows:] >= GROUND)
    assert np.all(np.isinf(frame.depth[frame.surface == SKY]))
    assert np.all(frame.labels[frame.surface == SKY] == Label.SKY)


def test_every_class_appears_in_a_few_clips() -> None:
    seen = np.zeros(NUM_CLASSES, bool)
    for index in range(4):
        for frame in _frames(0, index, frames=6):
            seen |= np.bincount(frame.labels.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES] > 0
    missing = [CAMVID.classes[c] for c in np.flatnonzero(~seen)]
    assert not missing, missing


def test_poles_are_a_few_pixels_wide_and_signs_small() -> None:
    frames = _frames(0, 0, frames=2, height=180, width=240)
    runs: list[int] = []
    for frame in frames:
        pole = np.pad(frame.labels == Label.POLE, ((0, 0), (1, 1)))
        edges = np.diff(pole.astype(np.int8), axis=1)
        for row in range(pole.shape[0]):
            starts, ends = np.flatnonzero(edges[row] == 1), np.flatnonzero(edges[row] == -1)
            runs += (ends - starts).tolist()
    runs_arr = np.asarray(runs)
    # Row by row, a pole is a few pixels wide at most, and often only one or two.
    assert np.median(runs_arr) <= 4, np.bincount(runs_arr)[:10]
    assert np.sum(runs_arr <= 2) >= 100, np.bincount(runs_arr)[:10]
    sign_share = np.mean([np.mean(f.labels == Label.SIGN) for f in frames])
    assert 0 < sign_share < 0.02


def test_half_resolution_alone_loses_thin_and_small_classes() -> None:
    # Labels sampled at every other pixel and blown up again: the best any 0.5x segmentation can do
    # without help. Road barely suffers; poles, fences and people lose a lot (docs/SYNTH.md).
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for index in range(3):
        labels = _frames(0, index, frames=1, height=180, width=240)[0].labels
        coarse = np.repeat(np.repeat(labels[::2, ::2], 2, axis=0), 2, axis=1)
        confusion += np.bincount(labels.ravel() * NUM_CLASSES + coarse.ravel(), minlength=NUM_CLASSES**2).reshape(
            NUM_CLASSES, NUM_CLASSES
        )
    hits = np.diag(confusion)
    iou = hits / (confusion.sum(0) + confusion.sum(1) - hits)
    assert iou[Label.ROAD] > 0.97
    for thin in (Label.POLE, Label.FENCE, Label.PEDESTRIAN):
        assert iou[thin] < iou[Label.ROAD] - 0.2, (Label(thin).name, iou[thin])
    assert np.mean(iou) < 0.9


def test_cli_writes_videos_labels_flow_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "set"
    args = ["synth", "-o", str(out), "--clips", "2", "--frames", "5", "--size", f"{H}x{W}", "--seed", "3",
            "--keyint", "3", "--crf", "18", "--flow"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["seed"], manifest["height"], manifest["width"], manifest["fps"]) == (3, H, W, 30.0)
    assert manifest["classes"]["classes"] == list(CAMVID.classes)
    assert sum(manifest["class_frequencies"].values()) == pytest.approx(1.0, abs=1e-4)
    clip = manifest["clip_list"][1]
    expected = list(SynthClip(3, 1, 5, H, W).frames())
    with av.open(str(out / clip["video"])) as container:
        decoded = list(container.decode(video=0))
    assert "".join(av.video.frame.PictureType(f.pict_type).name for f in decoded) == "IPPIP"
    for frame, want, label, flow in zip(decoded, expected, clip["labels"], clip["flow"], strict=True):
        image = Image.open(out / label)
        assert image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image), want.labels)
        np.testing.assert_array_equal(np.load(out / flow), want.flow)
        error = np.abs(frame.to_ndarray(format="rgb24").astype(int) - want.rgb).mean()
        assert error < 8  # lossy H.264 at crf 18 on a tiny frame
    assert (out / "clip_0001" / "flow" / "motion.json").is_file()


def test_cli_writes_flow_to_the_keyframe_with_flow_to_key(tmp_path: Path) -> None:
    out = tmp_path / "set"
    args = ["synth", "-o", str(out), "--frames", "5", "--size", "32x48", "-L", "2", "--flow", "--flow-to", "key"]
    assert CliRunner().invoke(app, args).exit_code == 0
    index = json.loads((out / "clip_0000" / "flow" / "motion.json").read_text())
    assert [entry["reference"] for entry in index["frames"]] == [0, 0, 2, 2, 4]
    assert "keyframe" in json.loads((out / "manifest.json").read_text())["flow_convention"]
    assert CliRunner().invoke(app, ["synth", "-o", str(tmp_path / "b"), "--flow-to", "key"]).exit_code == 2


def test_cli_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "set"
    args = ["synth", "-o", str(out), "--frames", "1", "--size", "32x48"]
    assert CliRunner().invoke(app, args).exit_code == 0
    before = (out / "clip_0000" / "labels" / "000000.png").read_bytes()
    result = CliRunner().invoke(app, [*args, "--seed", "9"])
    assert result.exit_code == 1
    assert "--force" in result.output
    assert (out / "clip_0000" / "labels" / "000000.png").read_bytes() == before
    assert CliRunner().invoke(app, [*args, "--seed", "9", "--force"]).exit_code == 0
    assert (out / "clip_0000" / "labels" / "000000.png").read_bytes() != before


@pytest.mark.parametrize(
    "changes", [{"height": 63}, {"width": 8}, {"clips": 0}, {"frames": 0}, {"seed": -1}, {"keyint": 0}, {"crf": 60}]
)
def test_spec_rejects_what_cannot_be_made(changes: dict[str, int]) -> None:
    settings = {"clips": 1, "frames": 2, "height": 64, "width": 96, **changes}
    with pytest.raises(OptionsError):
        SynthSpec(**settings)


@pytest.mark.parametrize("size", ["63x96", "64x95", "8x8", "64by96"])
def test_cli_rejects_sizes_h264_cannot_take(tmp_path: Path, size: str) -> None:
    result = CliRunner().invoke(app, ["synth", "-o", str(tmp_path / "x"), "--size", size])
    assert result.exit_code == 2
    assert not (tmp_path / "x").exists()


def test_exact_motion_rendered_again_from_a_set_on_disk(tmp_path: Path) -> None:
    from arseg_cli.data import open_dataset
    from arseg_cli.errors import InputError
    from arseg_cli.synth.truth import SynthTruth

    out = tmp_path / "set"
    args = ["synth", "-o", str(out), "--clips", "2", "--frames", "4", "--size", f"{H}x{W}", "--seed", "5", "--flow"]
    assert CliRunner().invoke(app, args).exit_code == 0
    dataset = open_dataset(out, split="all")
    truth = SynthTruth(dataset)
    frame = next(f for f in dataset.frames if f.name == "synth/clip_0001/000003")
    written = np.load(out / "clip_0001" / "flow" / "000003.npy")  # flow to the previous frame
    flow, visible = truth.flow(frame, 2)
    np.testing.assert_array_equal(flow, written)
    np.testing.assert_array_equal(visible, np.asarray(Image.open(out / "clip_0001" / "visible" / "000003.png")).astype(bool))
    far = SynthClip(5, 1, 4, H, W)
    want = far.flow(3, far.render(3), 0, far.render(0))
    np.testing.assert_array_equal(truth.flow(frame, 0)[0], want.flow_px)  # any earlier frame, not only the written one
    zero, seen = truth.flow(frame, 3)
    assert not zero.any() and seen.all()
    with pytest.raises(InputError, match="not both in its clip of 4 frames"):
        truth.flow(frame, 4)
    labels = out / "clip_0001" / "labels" / "000003.png"
    image = np.asarray(Image.open(labels)).copy()
    image[0, 0] = (image[0, 0] + 1) % NUM_CLASSES
    Image.fromarray(image, mode="P").save(labels)
    with pytest.raises(InputError, match="another arseg version"):
        SynthTruth(dataset).flow(frame, 2)
