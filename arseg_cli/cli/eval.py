"""`arseg eval DATA`: mIoU of HR, LR and AR per keyframe distance d (the official AR-Seg protocol)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer
from rich.console import Console

from arseg_cli.choices import DEFAULT_POLICY, Device, KeyframePolicy
from arseg_cli.cli._app import console, frame_progress
from arseg_cli.cli._compile import apply_compile_option, compile_option
from arseg_cli.cli._eval_tables import print_tables
from arseg_cli.errors import OptionsError, WeightsError


def eval_command(
    data: Path = typer.Argument(..., help="Data set root (SynthStreet, CamVid or Cityscapes layout)."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Weights file (default: ARSEG_WEIGHTS, then weights/)."),
    scale: float | None = typer.Option(None, "--scale", min=0.05, max=1.0, help="LR scale s (default: the weights' scale, else 0.5)."),
    keyframe_interval: int | None = typer.Option(None, "--keyframe-interval", "--keyint", "-L", min=1, help="Keyframe interval L: d = 0..L-1 (default: the weights', 12)."),
    lr_weights: Path | None = typer.Option(
        None, "--lr-weights", help="A separately trained LR network (arseg train --phase lr): adds its row, lr_trained."
    ),
    modes: str | None = typer.Option(None, "--modes", help="Comma-separated hr,lr,ar (default: those the weights can run)."),
    split: str = typer.Option("test", "--split", help="Data split to evaluate."),
    layout: str | None = typer.Option(None, "--layout", help="Data layout (detected by default)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout instead of tables."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate only the first N eligible frames."),
    batch: int = typer.Option(4, "--batch", min=1, help="Frames of one distance run through the networks together."),
    workers: int = typer.Option(1, "--workers", min=0, help="Threads encoding the next pairs while the networks run (0: inline)."),
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA when available."),
    compile_attention: bool = compile_option(),
    classes: int | None = typer.Option(None, "--classes", min=1, help="Classes in mIoU: all (CamVid 12 with Void, official) or 11 (no Void)."),
    cache: Path | None = typer.Option(None, "--cache", help="Pair cache directory (encoded pairs kept for later runs)."),
    source: Literal["pairs", "stream"] = typer.Option("pairs", "--source", help="pairs: the official per-d pairs; stream: the segment pipeline on each clip's own video (docs/EVAL.md)."),
    policy: KeyframePolicy = typer.Option(DEFAULT_POLICY, "--keyframe-policy", help="Keyframe policy of --source stream (as arseg segment)."),
    codec: Literal["h264", "hevc"] = typer.Option("h264", "--codec", help="Codec of the --source pairs snippets: h264 (libx264) or hevc (libx265, the paper's; needs arseg's HEVC parser)."),
) -> None:
    """Evaluate weights on a data set split with the official AR-Seg protocol: for each keyframe distance
    d = 0..L-1 every eligible labelled frame is encoded d frames after a keyframe and decoded; modes hr
    (HR network), lr (LR network at scale s, or the HR network on downscaled frames) and ar (HR keyframe +
    LR with CReFF). Reports mIoU (mean over d), mIoU per d and IoU per class (docs/EVAL.md)."""
    from functools import partial

    from arseg_cli.data import open_dataset
    from arseg_cli.data.pairs import PairCache, check_codec, make_pair
    from arseg_cli.evaluate import protocol, report
    from arseg_cli.model import load_weights
    from arseg_cli.model.defaults import default_weights
    from arseg_cli.options import pick_device

    if source == "stream" and codec != "h264":
        raise OptionsError("--codec is for --source pairs (--source stream reads each clip's own video)")
    check_codec(codec)
    dataset = open_dataset(data, split=split, layout=layout)
    path = weights if weights is not None else default_weights()
    if path is None:
        raise WeightsError("no weights given and no default weights installed yet: pass --weights FILE or set ARSEG_WEIGHTS")
    model = load_weights(path, device=pick_device(device))
    lr_model = load_weights(lr_weights, device=model.device) if lr_weights is not None else None
    if lr_model is not None:
        protocol.check_lr_model(lr_model, model)
    apply_compile_option(compile_attention, model)
    chosen = protocol.available_modes(model) if modes is None else _parse_modes(modes)
    protocol.check_modes(model, chosen)
    rule = protocol.class_rule(model.meta.classes, classes)
    pairs = partial(PairCache(cache).get if cache is not None else make_pair, codec=codec)
    trained = model.meta.scale
    if scale is not None and trained is not None and scale != trained and model.lr is not None:
        console.print(f"note: the weights' LR branch was trained at scale {trained}; evaluating it at {scale}")
    if source == "stream":
        if lr_model is not None:
            raise OptionsError("--lr-weights is for --source pairs (the per-d protocol)")
        from arseg_cli.evaluate.stream import evaluate_stream
        from arseg_cli.pipeline import Settings

        settings = Settings(scale=scale, keyframe_interval=keyframe_interval, policy=policy)
        with frame_progress("eval (stream)") as on_frame:
            result = evaluate_stream(model, dataset, settings, rule=rule, on_frame=on_frame)
        output = report.to_json(result, data=str(data), weights=str(path)) | {"source": source, "policy": policy.value}
        if as_json:
            typer.echo(json.dumps(output))
        else:
            print_tables(Console(highlight=False), output, list(result.modes))
        return
    with frame_progress("eval") as on_pair:
        result = protocol.evaluate(
            model, dataset, modes=chosen, scale=scale or model.meta.scale or 0.5,
            keyframe_interval=keyframe_interval or model.meta.keyframe_interval, rule=rule, limit=limit, batch=batch, workers=workers, pairs=pairs,
            on_pair=on_pair, lr_model=lr_model,
        )  # fmt: skip
    output = report.to_json(result, data=str(data), weights=str(path)) | {"codec": codec}
    if lr_weights is not None:
        output["lr_weights"] = str(lr_weights)
    if as_json:
        typer.echo(json.dumps(output))
    else:
        print_tables(Console(highlight=False), output, list(result.modes))


def _parse_modes(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not chosen:
        raise OptionsError("--modes: name at least one of hr, lr, ar")
    return chosen
