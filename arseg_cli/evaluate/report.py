"""The evaluation's outputs: a JSON-ready dict and Rich tables (mIoU in percent in tables, fractions in JSON)."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

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
        keyint=result.keyint,
        data=data,
        weights=weights,
        frames=result.frames,
    )
    return out


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def print_tables(console: Console, report: dict[str, Any], modes: list[str]) -> None:
    """The summary (mIoU and mIoU_d per mode) and the per-class IoU, in percent."""
    keyint = int(report["keyint"])
    summary = Table(title="mIoU (%): mean over d, and per keyframe distance d")
    summary.add_column("mode")
    summary.add_column("mIoU", justify="right", style="bold")
    for d in range(keyint):
        summary.add_column(f"d={d}", justify="right")
    for mode in modes:
        label = f"lr ({report['lr_kind']})" if mode == "lr" else mode
        summary.add_row(label, _percent(report[mode]["miou"]), *(_percent(v) for v in report[mode]["per_d"]))
    console.print(summary)
    per_class = Table(title="IoU (%) per class, mean over d")
    per_class.add_column("class")
    for mode in modes:
        per_class.add_column(mode, justify="right")
    for name in report[modes[0]]["per_class"]:
        per_class.add_row(name, *(_percent(report[m]["per_class"][name]) for m in modes))
    console.print(per_class)
    console.print(f"classes: {report['class_rule']}")
    console.print(f"{report['frames']} frames x {keyint} distances, LR scale {report['scale']}; data {report['data']}; "
                  f"weights {report['weights']}")  # fmt: skip
