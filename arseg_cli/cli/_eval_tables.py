"""`arseg eval`'s tables on the console: the summary (mIoU, mIoU_d per mode) and per-class IoU, in percent,
rendered from the JSON-ready report of `arseg_cli.evaluate.report.to_json`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def print_tables(console: Console, report: dict[str, Any], modes: list[str]) -> None:
    """The summary (mIoU and mIoU_d per mode) and the per-class IoU, in percent."""
    keyframe_interval = int(report["keyframe_interval"])
    summary = Table(title="mIoU (%): mean over d, and per keyframe distance d")
    summary.add_column("mode")
    summary.add_column("mIoU", justify="right", style="bold")
    for d in range(keyframe_interval):
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
    console.print(f"{report['frames']} frames x {keyframe_interval} distances, LR scale {report['scale']}; data {report['data']}; "
                  f"weights {report['weights']}")  # fmt: skip
