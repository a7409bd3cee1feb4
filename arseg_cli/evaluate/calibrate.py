"""Attention calibration of trained AR weights: the temperature of CReFF's softmax, chosen on data.

CReFF's logit for a neighbour is <q, k> with q the query convolution of the upsampled LR feature, so
multiplying that convolution's weight and bias by a factor multiplies every logit by it: a softmax
temperature of 1 / factor, stored in the weights' own tensors (same layout, loads anywhere, exports
as before). Phase ar training leaves the attention flat (docs/TRAINING.md: the shipped weights put
0.075 of their weight on the matching position, entropy 0.84 of uniform); sharper attention lets the
warped keyframe feature through where the motion vectors place it. The factor is the one with the
best AR mIoU (mean over d = 0..L-1, the `arseg eval` protocol) on the frames given, in practice the
training split: the held-out split stays for the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from arseg_cli.data import Dataset
from arseg_cli.errors import OptionsError, WeightsError
from arseg_cli.evaluate import protocol
from arseg_cli.model.arseg import ARSeg

#: Logit factors tried by default (1 = the weights as trained).
DEFAULT_FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


@dataclass(frozen=True, slots=True)
class Calibration:
    """The chosen logit factor and the AR mIoU (0-1, mean over d) each tried factor gave."""

    factor: float
    miou_by_factor: dict[float, float]

    @property
    def gain(self) -> float:
        """mIoU points the chosen factor adds over the weights as they were (factor 1)."""
        return 100 * (self.miou_by_factor[self.factor] - self.miou_by_factor[1.0])


def check_factors(factors: Sequence[float]) -> tuple[float, ...]:
    """Sorted distinct factors, 1 included (the weights as they are); each finite and > 0."""
    bad = [f for f in factors if not (math.isfinite(f) and f > 0)]
    if bad:
        raise OptionsError(f"attention logit factors must be finite and > 0, got {bad[0]}")
    return tuple(sorted({1.0, *map(float, factors)}))


def scale_attention_logits(model: ARSeg, factor: float) -> None:
    """Multiply every CReFF attention logit of `model` by `factor` (in place, on the query convolution)."""
    query = _query_conv(model)
    _set_query(query, [query.weight.detach().clone(), query.bias.detach().clone()], factor)  # type: ignore[union-attr]


def _query_conv(model: ARSeg) -> torch.nn.Conv2d:
    if model.lr is None or not model.has_creff:
        raise WeightsError("these weights have no CReFF (an HR-only network or a plain LR baseline): nothing to calibrate")
    return model.lr.fuse_attention.lr_query_conv


def _set_query(query: torch.nn.Conv2d, original: list[torch.Tensor], factor: float) -> None:
    """The query convolution's weight and bias = `original` times `factor`, written in place (so that
    the model's folded inference copies see the change)."""
    with torch.no_grad():
        query.weight.copy_(original[0] * factor)
        query.bias.copy_(original[1] * factor)  # type: ignore[union-attr]


def calibrate_attention(
    model: ARSeg,
    dataset: Dataset,
    *,
    factors: Sequence[float] = DEFAULT_FACTORS,
    limit: int | None = None,
    pairs: protocol.PairMaker = protocol.make_pair,
    batch: int = 4,
    workers: int = 1,
    on_factor: Callable[[float, float], None] | None = None,
) -> Calibration:
    """Evaluate AR (the weights' s and L) on `dataset` with each logit factor, leave `model` with the
    best one (the smallest of equals) and return the figures. on_factor(factor, miou) after each."""
    tried = check_factors(factors)
    query = _query_conv(model)
    original = [query.weight.detach().clone(), query.bias.detach().clone()]  # type: ignore[union-attr]
    scores: dict[float, float] = {}
    for factor in tried:
        _set_query(query, original, factor)
        result = protocol.evaluate(
            model, dataset, modes=("ar",), scale=model.meta.scale or 0.5, keyframe_interval=model.meta.keyframe_interval,
            limit=limit, batch=batch, workers=workers, pairs=pairs,
        )  # fmt: skip
        scores[factor] = result.modes["ar"].miou(result.rule)
        if on_factor is not None:
            on_factor(factor, scores[factor])
    best = max(tried, key=lambda f: (scores[f], -f))
    _set_query(query, original, best)
    return Calibration(best, scores)


__all__ = ["DEFAULT_FACTORS", "Calibration", "calibrate_attention", "check_factors", "scale_attention_logits"]
