"""The model card's ablation table, from the run records in weights/ablations/*.json
(benchmarks/ablation_record.py writes them; records of earlier runs whose weights were not kept say so
in their `source`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = (
    ("HR", ("miou", "hr")),
    ("LR (HR at 0.5x)", ("miou", "lr")),
    ("LR trained", ("miou", "lr_trained")),
    ("AR 0.5x", ("miou", "ar")),
    ("own feature", ("diagnosis", "own_feature")),
    ("warp only", ("diagnosis", "warp_only")),
    ("zero flow", ("diagnosis", "ar_zero_flow")),
    ("centre weight", ("diagnosis", "centre_weight")),
    ("entropy", ("diagnosis", "entropy")),
)


def load_records(directory: Path) -> list[dict[str, Any]]:
    records = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.json"))]
    return sorted(records, key=lambda record: (record.get("order", 100), record["name"]))


def _cell(record: dict[str, Any], path: tuple[str, str]) -> str:
    section = record.get(path[0]) or {}
    value = section.get(path[1])
    return "-" if value is None else f"{value:g}"


def ablation_lines(directory: Path) -> list[str]:
    """Markdown: one row per run, then the command of each run that has one."""
    records = load_records(directory)
    if not records:
        return []
    lines = [
        "## Ablations: what each recipe change did",
        "",
        "Phase ar runs of camvid-bise18 on the `make weights` data from the same HR network, evaluated on the",
        "held-out split (mIoU %, mean over d = 0..11). The CReFF diagnosis (`benchmarks/diagnose_creff.py`,",
        "one pair per test frame, d drawn from 1..11): AR given the frame's **own** HR feature and zero flow",
        "(the best case of a perfect warp), the classifier on the bitstream-warped keyframe feature alone",
        "(**warp only**), AR with the flow set to zero, the attention's mean weight on the matching position",
        "(uniform: 0.020) and its entropy as a fraction of ln 49 (1 = uniform). **LR trained**: the paper's",
        "separately trained LR network (`arseg train --phase lr --scale 0.5`, 2500 steps from scratch with the",
        "shipped recipe's data options; `RUNS=lr-trained bash benchmarks/train_ablations.sh`), evaluated with",
        "`arseg eval --lr-weights` beside the row's weights. The commands recorded before 2026-12-08 ran",
        "unpadded: `arseg train` now pads BiSeNet's input to a multiple of 32 by default, so add",
        "`--input-multiple 1` to repeat them as they ran (docs/TRAINING.md, `--input-multiple`).",
        "",
        "| run | change | steps | " + " | ".join(name for name, _ in COLUMNS) + " |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in COLUMNS) + " |",
    ]
    for record in records:
        steps = (record.get("recipe") or {}).get("steps")
        cells = " | ".join(_cell(record, path) for _, path in COLUMNS)
        lines.append(f"| {record['name']} | {record['change']} | {steps or '-'} | {cells} |")
    earlier = [r for r in records if not r.get("command")]
    if earlier:
        notes = "; ".join(f"`{r['name']}`: {r['note']}" for r in earlier if r.get("note"))
        lines += ["", "Runs without a command are earlier ones whose weights were not kept (figures from",
                  "docs/TRAINING.md)" + (f"; what else they measured: {notes}." if notes else ".")]
    lines.append("")
    lines += ["Commands:", ""]
    for record in records:
        if record.get("command"):
            lines += [f"- `{record['name']}` ({record.get('hours', '?')} h on {record.get('device', '?')}, {record.get('date', '?')}):",
                      "", "  ```sh", f"  {record['command']}", "  ```", ""]
    return lines
