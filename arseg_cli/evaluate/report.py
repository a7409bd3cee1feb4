"""The evaluation's result as a JSON-ready dict (IoU as fractions); the CLI renders it as tables
(cli/_eval_tables.py)."""

from __future__ import annotations

import math
from typing import Any

from arseg_cli.evaluate.protocol import EvalResult


def _number(value: float) -> float | None:
    """JSON has no NaN: an undefined IoU becomes null."""
    return None if math.isnan(value) else round(value, 6)


def to_json(result: EvalResult, *, data: str, weights: str) -> dict[str, Any]:
    """{"hr": {"miou", "per_d", "per_class"}, "lr": ..., "ar": ..., "classes", "class_rule", "lr_kind",
    "data", "weights", "frames", ...}; IoU values are fractions in [0, 1], null where undefined."""
    rule = result.rule
    out: dict[str, Any] = {}
    for mode, mode_result in result.modes.items():
        out[mode] = {
            "miou": _number(mode_result.miou(rule)),
            "per_d": [_number(v) for v in mode_result.miou_per_d(rule)],
            "per_class": {result.classes[c]: _number(v) for c, v in mode_result.iou_per_class(rule).items()},
        }
    out.update(
        classes=len(rule.counted),
        class_rule=f"{rule.name}: {rule.description}",
        lr_kind=result.lr_kind if "lr" in result.modes else None,
        scale=result.scale,
        keyframe_interval=result.keyframe_interval,
        data=data,
        weights=weights,
        frames=result.frames,
    )
    return out
