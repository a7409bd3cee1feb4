"""`arseg calibrate DATA -w WEIGHTS -o OUT`: CReFF's attention temperature chosen on data, saved as new weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from arseg_cli.choices import Device
from arseg_cli.cli._app import console


def calibrate_command(
    data: Path = typer.Argument(..., help="Data set root to calibrate on (SynthStreet, CamVid or Cityscapes layout)."),
    weights: Path = typer.Option(..., "--weights", "-w", help="Trained AR weights (HR + LR with CReFF)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the calibrated weights (never overwritten)."),
    split: str = typer.Option("train", "--split", help="Split to calibrate on (keep the held-out split for the report)."),
    factors: str = typer.Option("1,1.5,2,3,4,6", "--factors", help="Comma-separated attention logit factors to try (1 = as trained, always tried)."),
    limit: int | None = typer.Option(24, "--limit", min=1, help="Labelled frames of the split to use (each at d = 0..L-1)."),
    cache: Path | None = typer.Option(None, "--cache", help="Pair cache directory (as arseg eval --cache)."),
    codec: Literal["h264", "hevc"] = typer.Option("h264", "--codec", help="Codec of the pair snippets (as arseg eval --codec)."),
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA when available."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Choose the temperature of CReFF's attention softmax on a data split and save the weights with it:
    each factor multiplies every attention logit (stored in the query convolution, so the file loads
    and exports like any other); the one with the best AR mIoU (mean over d, the `arseg eval` protocol)
    is kept. Phase ar training leaves the attention flat; see docs/TRAINING.md."""
    from dataclasses import replace
    from functools import partial

    import torch

    from arseg_cli.data import open_dataset
    from arseg_cli.data.pairs import PairCache, check_codec, make_pair
    from arseg_cli.evaluate.calibrate import calibrate_attention, check_factors
    from arseg_cli.model import load_weights, save_weights
    from arseg_cli.model.weights import read_info
    from arseg_cli.errors import OptionsError, OutputExistsError
    from arseg_cli.options import pick_device

    tried = check_factors(_parse_factors(factors, OptionsError))
    if output.exists():
        raise OutputExistsError(f"{output} exists; choose another --output (calibrate never overwrites a file)")
    check_codec(codec)
    dataset = open_dataset(data, split=split)
    model = load_weights(weights, device=pick_device(device))
    pairs = partial(PairCache(cache).get if cache is not None else make_pair, codec=codec)

    def report(factor: float, miou: float) -> None:
        if not as_json:
            console.print(f"logit factor {factor:g}: AR mIoU {100 * miou:.2f}")

    result = calibrate_attention(model, dataset, factors=tried, limit=limit, pairs=pairs, on_factor=report)
    facts = {"factor": result.factor, "miou_by_factor": {f"{f:g}": round(m, 6) for f, m in result.miou_by_factor.items()},
             "data": str(data), "split": split, "limit": limit, "codec": codec, "source_weights": str(weights)}  # fmt: skip
    meta = replace(model.meta, provenance={**model.meta.provenance, "attention_calibration": facts})
    stored = torch.float16 if read_info(weights).storage_dtype == "float16" else None
    save_weights(model.cpu(), output, meta=meta, dtype=stored)
    if as_json:
        typer.echo(json.dumps({"output": str(output), **facts, "gain_points": round(result.gain, 3)}))
    else:
        console.print(f"chose logit factor {result.factor:g} (AR mIoU {result.gain:+.2f} points on {split}); wrote {output}")


def _parse_factors(text: str, error: type[Exception]) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise error(f"--factors: expected comma-separated numbers such as 1,2,4, got {text!r}") from None


__all__ = ["calibrate_command"]
