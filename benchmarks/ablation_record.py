"""Record one training run for the model card's ablation table (weights/README.md).

    python benchmarks/ablation_record.py --name NAME --change "what differs" --weights AR.safetensors \
        --eval EVAL.json [--diagnosis DIAG.json] [--lr-eval LR_EVAL.json] [--order N] -o weights/ablations/NAME.json

Reads the run's command and configuration from the weights' provenance (and, for weights that
`arseg calibrate` made, the calibration's figures and command), mIoU from `arseg eval --json`
(HR, the HR network downscaled, AR; `lr_trained` when the evaluation had --lr-weights) and the CReFF
diagnosis from benchmarks/diagnose_creff.py. Every figure comes from those files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from arseg_cli.model.weights import read_info

RECIPE_KEYS = (
    "lr_backbone", "creff_init", "loss", "crop_hw", "scale_range", "jitter", "augment_variants",
    "plain_steps", "distance", "steps", "batch",
)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * float(value), 2)


def record(name: str, change: str, weights: Path, report: dict[str, Any], diagnosis: dict[str, Any] | None, order: int) -> dict[str, Any]:
    facts = read_info(weights).meta.provenance
    config = facts.get("config", {})
    miou = {mode: _percent(report[mode]["miou"]) if mode in report else None for mode in ("hr", "lr", "lr_trained", "ar")}
    result: dict[str, Any] = {
        "order": order,
        "name": name,
        "change": change,
        "recipe": {key: config.get(key) for key in RECIPE_KEYS if key in config},
        "command": facts.get("command"),
        "date": facts.get("date"),
        "hours": round(float(facts.get("seconds", 0)) / 3600, 2),
        "device": facts.get("device"),
        "miou": miou,
        "ar_per_d": [_percent(v) for v in report["ar"]["per_d"]],
        "source": f"arseg eval --json of {weights.name} on {report.get('data')} (split test, {report.get('frames')} frames)",
    }
    calibration = facts.get("attention_calibration")
    if calibration:  # weights made by `arseg calibrate` from a training run's: both commands
        result["calibration"] = {"factor": calibration["factor"], "miou_by_factor": calibration["miou_by_factor"],
                                 "split": calibration["split"], "limit": calibration["limit"]}  # fmt: skip
        calibrate = (f"arseg calibrate {calibration['data']} -w {calibration['source_weights']} -o {weights} "
                     f"--split {calibration['split']} --limit {calibration['limit']}")  # fmt: skip
        result["command"] = f"{result['command']}\n  {calibrate}" if result["command"] else calibrate
    if diagnosis is not None:
        d_miou = diagnosis["miou"]
        result["diagnosis"] = {
            "lr_branch": _percent(d_miou["lr_branch"]),
            "ar": _percent(d_miou["ar"]),
            "ar_zero_flow": _percent(d_miou["ar_zero_flow"]),
            "own_feature": _percent(d_miou["ar_own_feature"]),
            "warp_only": _percent(d_miou.get("warp_only")),
            "centre_weight": round(float(diagnosis["attention_centre_weight"]), 4),
            "entropy": round(float(diagnosis["attention_entropy"]), 3) if "attention_entropy" in diagnosis else None,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--change", required=True, help="what this run changes against the shipped recipe")
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True)
    parser.add_argument("--diagnosis", type=Path, default=None)
    parser.add_argument("--order", type=int, default=100)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    report = json.loads(args.eval.read_text(encoding="utf-8"))
    diagnosis = json.loads(args.diagnosis.read_text(encoding="utf-8")) if args.diagnosis else None
    entry = record(args.name, args.change, args.weights, report, diagnosis, args.order)
    args.output.write_text(json.dumps(entry, indent=1) + "\n", encoding="utf-8")
    print(args.output)


if __name__ == "__main__":
    main()
