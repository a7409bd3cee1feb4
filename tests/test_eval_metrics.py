"""ConfusionMatrix and the class rules: exact IoU / mIoU on hand-computed fixtures."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from arseg_cli.errors import OptionsError
from arseg_cli.evaluate import ConfusionMatrix, class_rule
from arseg_cli.palettes import CAMVID

# target row, prediction column; the pixel with target 255 is not counted (its prediction 0 would be an FP)
TARGET = np.array([[0, 0, 0, 1], [1, 2, 255, 2]], np.uint8)
PRED = np.array([[0, 0, 1, 1], [2, 2, 0, 0]], np.int64)
MATRIX = [[2, 1, 0], [0, 1, 1], [1, 0, 1]]
# IoU = TP / (row + column - TP): class 0: 2 / (3 + 3 - 2), class 1: 1 / (2 + 2 - 1), class 2: 1 / (2 + 2 - 1)
IOU = [Fraction(1, 2), Fraction(1, 3), Fraction(1, 3)]


def test_known_matrix_gives_exact_iou_and_miou() -> None:
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    assert cm.matrix.tolist() == MATRIX
    assert cm.iou().tolist() == [float(v) for v in IOU]
    assert cm.miou() == pytest.approx(float(sum(IOU) / 3), abs=1e-15)  # 7/18
    assert cm.miou([0, 1]) == pytest.approx(float((IOU[0] + IOU[1]) / 2), abs=1e-15)
    assert cm.pixel_accuracy() == pytest.approx(4 / 7, abs=1e-15)


def test_updates_accumulate_and_merge() -> None:
    once, twice, merged = ConfusionMatrix(3), ConfusionMatrix(3), ConfusionMatrix(3)
    once.update(PRED, TARGET)
    twice.update(PRED, TARGET)
    twice.update(PRED[None], TARGET[None])  # any shape
    merged.merge(once)
    merged.merge(once)
    assert twice.matrix.tolist() == (2 * np.array(MATRIX)).tolist() == merged.matrix.tolist()
    assert twice.iou().tolist() == once.iou().tolist()


def test_ignored_pixels_change_nothing() -> None:
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(PRED, TARGET)
    cm.update(np.full((5, 5), 2), np.full((5, 5), 255, np.uint8))
    assert cm.matrix.tolist() == MATRIX


def test_class_absent_from_target_and_prediction_has_no_iou_and_is_left_out_of_the_mean() -> None:
    cm = ConfusionMatrix(4)
    cm.update(PRED, TARGET)
    iou = cm.iou()
    assert math.isnan(iou[3]) and iou[:3].tolist() == [float(v) for v in IOU]
    assert cm.miou() == pytest.approx(7 / 18, abs=1e-15)


def test_class_only_predicted_counts_as_zero() -> None:
    cm = ConfusionMatrix(4)
    cm.update(np.array([3, 0]), np.array([0, 0]))
    assert cm.iou()[3] == 0.0 and cm.iou()[0] == 0.5
    assert cm.miou() == pytest.approx(0.25, abs=1e-15)


def test_empty_matrix_has_nan_miou() -> None:
    assert math.isnan(ConfusionMatrix(2).miou()) and math.isnan(ConfusionMatrix(2).pixel_accuracy())


def test_matches_a_per_pixel_count_on_random_maps() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 6, (7, 9)).astype(np.uint8)
    target[rng.random((7, 9)) < 0.2] = 255
    pred = rng.integers(0, 5, (7, 9))
    cm = ConfusionMatrix(5)
    with pytest.raises(ValueError, match="target holds class ids outside 0..4"):
        cm.update(pred, target)
    target[target == 5] = 255
    cm.update(pred, target)
    expected = np.zeros((5, 5), np.int64)
    for t, p in zip(target.ravel(), pred.ravel(), strict=True):
        if t != 255:
            expected[t, p] += 1
    assert (cm.matrix == expected).all()


def test_bad_inputs_raise() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="differ in shape"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="prediction holds class ids"):
        cm.update(np.array([-1]), np.array([0]))
    with pytest.raises(ValueError):
        ConfusionMatrix(0)


def test_class_rules_for_camvid() -> None:
    official = class_rule(CAMVID.classes)
    assert official.counted == tuple(range(12)) and official.ignored_target is None
    assert "Void counted" in official.description and class_rule(CAMVID.classes, 12) == official
    eleven = class_rule(CAMVID.classes, 11)
    assert eleven.counted == tuple(range(11)) and eleven.ignored_target == CAMVID.classes.index("void")
    with pytest.raises(OptionsError, match="use 12 or 11"):
        class_rule(CAMVID.classes, 10)
    with pytest.raises(OptionsError, match="use 3$"):
        class_rule(("a", "b", "c"), 2)
