"""Confusion matrix and IoU, as the official AR-Seg evaluation computes them.

Rows are the target class, columns the predicted class; pixels whose target is `ignore_index` are
left out. IoU_c = TP / (TP + FP + FN) = M[c, c] / (row_c + col_c - M[c, c]).

Classes absent from both the targets and the predictions have no IoU (0 / 0). The official code
divides anyway and its mIoU becomes NaN; arseg reports such a class's IoU as NaN (`null` in JSON) and
takes mIoU over the classes that have one (`np.nanmean`). On a split where every class occurs the two
agree exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class ConfusionMatrix:
    """Accumulates a (K, K) int64 confusion matrix over any number of label maps."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one prediction: pred and target are integer arrays of one shape (e.g. (H, W) or
        (N, H, W)) of class ids; target == ignore_index is skipped. Ids outside [0, K) raise ValueError."""
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
        keep = target != self.ignore_index
        t = target[keep].astype(np.int64)
        p = pred[keep].astype(np.int64)
        k = self.num_classes
        for what, ids in (("target", t), ("prediction", p)):
            if ids.size and (ids.min() < 0 or ids.max() >= k):
                raise ValueError(f"{what} holds class ids outside 0..{k - 1}")
        self.matrix += np.bincount(t * k + p, minlength=k * k).reshape(k, k)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix of the same class count (e.g. from another batch or process)."""
        self.matrix += other.matrix

    def iou(self) -> np.ndarray:
        """(K,) float64 IoU per class in [0, 1]; NaN for classes absent from targets and predictions."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self, classes: Sequence[int] | None = None) -> float:
        """Mean IoU over `classes` (default: all) that have an IoU; NaN when none has one."""
        values = self.iou()
        if classes is not None:
            values = values[list(classes)]
        present = values[~np.isnan(values)]
        return float(present.mean()) if present.size else float("nan")

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted right; NaN when none was counted."""
        total = int(self.matrix.sum())
        return float(np.trace(self.matrix) / total) if total else float("nan")
