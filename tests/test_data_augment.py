"""augment_pair: one geometric transform for both frames, labels and flow; the flow stays the flow
between the augmented frames (values scaled, dx negated on flips)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from arseg_cli.data import Pair, augment_pair
from arseg_cli.data.augment import flip_pair
from arseg_cli.synth import SynthClip


@pytest.fixture(scope="module")
def true_pair() -> Pair:
    """Rendered SynthStreet frames 4 apart with their exact flow: warping errors then come from the
    augmentation alone (and occlusion, the same before and after)."""
    clip = SynthClip(3, 0, 8, 96, 128)
    key, current = clip.render(2), clip.render(6)
    flow = clip.flow(6, current, 2, key).flow_px
    return Pair("synth/true", 4, key.rgb, current.rgb, flow, current.labels)


def warp_error(pair: Pair) -> float:
    """Median over pixels of |key warped to the current frame with the flow - current frame| (levels),
    on pixels whose source point lies inside the keyframe and whose labels are not padding."""
    h, w = pair.labels.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xs + pair.flow[0], ys + pair.flow[1]
    warped = cv2.remap(pair.key_rgb, x, y, cv2.INTER_LINEAR).astype(np.float32)
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1) & (pair.labels != 255)
    return float(np.median(np.abs(warped - pair.rgb.astype(np.float32)).mean(axis=2)[inside]))


def test_warping_matches_as_well_after_augmenting(true_pair: Pair) -> None:
    before = warp_error(true_pair)
    zero = warp_error(dataclasses.replace(true_pair, flow=np.zeros_like(true_pair.flow)))
    assert before < zero / 3  # the exact flow explains the motion
    flipped = 0
    for seed in range(8):
        augmented = augment_pair(true_pair, np.random.default_rng(seed), crop_hw=(80, 112), scale_range=(0.7, 1.4))
        assert augmented.labels.shape == (80, 112) and augmented.flow.shape == (2, 80, 112)
        # Resampling blurs a little (down) or interpolates (up); 1.5 levels of slack on top of 25 %.
        assert warp_error(augmented) <= 1.25 * before + 1.5, seed
        draws = np.random.default_rng(seed)
        draws.uniform(0.7, 1.4)  # augment_pair draws the scale first, then the flip
        flipped += draws.random() < 0.5
    assert 0 < flipped < 8  # both flipped and unflipped pairs were checked


def test_wrong_flow_conventions_would_be_caught(true_pair: Pair) -> None:
    """The check above has teeth: a flip without negating dx, or a scaling without scaling the values,
    warps clearly worse."""
    before = warp_error(true_pair)
    flipped = flip_pair(true_pair)
    assert warp_error(flipped) <= before + 0.5
    unnegated = flipped.flow.copy()
    unnegated[0] = -unnegated[0]
    assert warp_error(dataclasses.replace(flipped, flow=unnegated)) > 2 * before + 1
    doubled = augment_pair(true_pair, np.random.default_rng(0), crop_hw=None, scale_range=(2.0, 2.0), flip=False)
    assert warp_error(doubled) <= 1.25 * before + 1.5
    unscaled = dataclasses.replace(doubled, flow=doubled.flow / 2)
    assert warp_error(unscaled) > 2 * warp_error(doubled) + 1


def test_flip_mirrors_everything_and_negates_dx(true_pair: Pair) -> None:
    flipped = flip_pair(true_pair)
    np.testing.assert_array_equal(flipped.flow[0], -true_pair.flow[0][:, ::-1])
    np.testing.assert_array_equal(flipped.flow[1], true_pair.flow[1][:, ::-1])
    np.testing.assert_array_equal(flipped.rgb, true_pair.rgb[:, ::-1])
    np.testing.assert_array_equal(flipped.key_rgb, true_pair.key_rgb[:, ::-1])
    np.testing.assert_array_equal(flipped.labels, true_pair.labels[:, ::-1])


def test_scaling_scales_flow_values() -> None:
    flow = np.stack([np.full((20, 30), 1.5, np.float32), np.full((20, 30), -2.0, np.float32)])
    rgb = np.zeros((20, 30, 3), np.uint8)
    pair = Pair("const", 1, rgb, rgb, flow, np.zeros((20, 30), np.uint8))
    big = augment_pair(pair, np.random.default_rng(0), crop_hw=None, scale_range=(2.0, 2.0), flip=False)
    assert big.flow.shape == (2, 40, 60)
    np.testing.assert_allclose(big.flow[0], 3.0)
    np.testing.assert_allclose(big.flow[1], -4.0)


def test_same_transform_on_both_frames_and_labels(true_pair: Pair) -> None:
    """With key == current, the augmented frames stay equal; labels follow the same geometry (nearest),
    and the padding of a crop larger than the image is 255 in labels, 0 in images and flow."""
    same = dataclasses.replace(true_pair, key_rgb=true_pair.rgb)
    for seed in range(4):
        out = augment_pair(same, np.random.default_rng(seed), crop_hw=(128, 160), scale_range=(0.8, 1.0))
        np.testing.assert_array_equal(out.key_rgb, out.rgb)
        pad = out.labels == 255
        assert pad.any() and not out.rgb[pad].any() and not out.flow[:, pad].any()
    coded = dataclasses.replace(same, rgb=np.repeat(true_pair.labels[..., None] * 20, 3, axis=2))
    coded = dataclasses.replace(coded, key_rgb=coded.rgb)
    out = augment_pair(coded, np.random.default_rng(1), crop_hw=(64, 96), scale_range=(1.3, 1.3))
    labels_from_rgb = np.round(out.rgb[..., 0] / 20)
    flat = cv2.Laplacian(out.labels.astype(np.float32), cv2.CV_32F) == 0
    interior = cv2.erode(flat.astype(np.uint8), np.ones((3, 3)))
    assert np.mean(labels_from_rgb[interior > 0] == out.labels[interior > 0]) > 0.99


def test_seeded_rng_repeats(true_pair: Pair) -> None:
    a = augment_pair(true_pair, np.random.default_rng(7), crop_hw=(64, 64))
    b = augment_pair(true_pair, np.random.default_rng(7), crop_hw=(64, 64))
    np.testing.assert_array_equal(a.flow, b.flow)
    np.testing.assert_array_equal(a.rgb, b.rgb)
