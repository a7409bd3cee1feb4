"""`arseg train DATA --phase hr|ar -o OUT.safetensors`: train the HR network, or the AR branch with FST."""

from __future__ import annotations

import shlex
from contextlib import nullcontext
from typing import Literal
from pathlib import Path
from typing import Any

import typer

from arseg_cli.choices import Device
from arseg_cli.cli._arch import arch_option
from arseg_cli.cli._app import console
from arseg_cli.options import parse_size
from arseg_cli.errors import OptionsError


def train_command(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Data set root (SynthStreet, CamVid or Cityscapes layout)."),
    output: Path = typer.Option(..., "--output", "-o", help="Weights file to write (.safetensors)."),
    phase: Literal["hr", "lr", "ar"] = typer.Option(
        ..., "--phase", help="hr: the HR network at 1.0x; lr: a separate LR network at scale s (the LR baseline); ar: LR branch + CReFF (FST)."
    ),
    arch: str = arch_option("camvid-bise18", help="Architecture; its data set's official recipe gives the defaults."),
    hr: Path | None = typer.Option(None, "--hr", help="Phase ar: the trained HR weights (phase hr's output)."),
    ar_start: Path | None = typer.Option(None, "--ar-start", help="Phase ar: start the LR branch and CReFF from these AR weights (e.g. arseg calibrate's) instead of a copy of the HR network."),
    start: Path | None = typer.Option(
        None, "--start", help="Phases hr and lr: start from the network in these weights (fine-tuning) instead of new weights."
    ),
    scale: float = typer.Option(0.5, "--scale", min=0.05, max=1.0, help="Phases lr and ar: LR scale s."),
    keyframe_interval: int = typer.Option(12, "--keyframe-interval", "--keyint", "-L", min=2, help="Keyframe interval L (pairs use d in 1..L-1)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Optimiser steps (default: the recipe's epochs)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs instead of --steps."),
    batch: int | None = typer.Option(None, "--batch", min=1, help="Items per step and process (recipe: 8)."),
    lr: float | None = typer.Option(None, "--lr", min=0.0, help="Initial learning rate (recipe's by default)."),
    optimizer: Literal["adam", "sgd"] | None = typer.Option(None, "--optimizer", help="adam or sgd (recipe's by default)."),
    crop: str | None = typer.Option(None, "--crop", metavar="HxW", help="Training crop (default: whole frames)."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Random scale, flip, crop and colour jitter of each pair."),
    aug_scale: tuple[float, float] = typer.Option((0.5, 2.5), "--aug-scale", help="Augmentation: random scale range LOW HIGH (official 0.5 2.5)."),
    jitter: float = typer.Option(0.5, "--jitter", min=0.0, max=0.95, help="Augmentation: colour jitter strength (official 0.5; 0: none)."),
    augment_variants: int | None = typer.Option(
        None, "--augment-variants", min=0, help="Forms each item takes over the run (0: a new draw every epoch; default: 8 in phase ar, which lets it cache the HR features, else 0)."
    ),
    loss: Literal["ohem", "ce"] | None = typer.Option(None, "--loss", help="Pixel loss: ohem or ce (default: the architecture's official: bise18 ohem, psp18 ce)."),
    fst_weight: float = typer.Option(1.0, "--fst-weight", min=0.0, help="Phase ar: weight of the FST feature MSE."),
    plain_fraction: float | None = typer.Option(
        None, "--plain-fraction", min=0.0, max=1.0, help="Phase ar: fraction of the steps trained first without CReFF (recipe's)."
    ),
    distance: Literal["official", "uniform"] = typer.Option("official", "--distance", help="Keyframe distance d: official (L-1) or uniform 1..L-1."),
    lr_backbone: Literal["own", "shared"] = typer.Option(
        "own", "--lr-backbone", help="Phase ar: own (the paper: the LR branch trains its own ResNet-18) or shared (it uses the frozen HR one)."
    ),
    pair_frames: Literal["decoded", "source"] = typer.Option(
        "decoded", "--pair-frames", help="Pixels of the pairs: decoded from the compressed snippet (as inference) or the data's source frames (as the official code)."
    ),
    codec: Literal["h264", "hevc"] = typer.Option(
        "h264", "--codec", help="Codec of the pairs' snippets: h264 (libx264) or hevc (libx265, the paper's; needs arseg's HEVC parser)."
    ),
    creff_init: Literal["kaiming", "zero", "identity"] = typer.Option(
        "kaiming", "--creff-init", help="Phase ar: CReFF's convolutions at the start: kaiming (official), zero value (AR starts as the LR baseline) or identity value (docs/TRAINING.md)."
    ),
    fusion_gate: bool = typer.Option(
        False, "--fusion-gate", help="Phase ar: add a per-pixel gate after CReFF weighing the LR feature, CReFF's keyframe term and the warped keyframe feature (arseg's extension; docs/TRAINING.md)."
    ),
    gate_only: bool = typer.Option(
        False, "--gate-only", help="Phase ar with --fusion-gate and --ar-start: train the gate alone, everything else frozen."
    ),
    input_multiple: int | None = typer.Option(
        None, "--input-multiple", min=1, help="Pad each network's input to a multiple of this (the weights keep it; default: the architecture's, 32 for BiSeNet, 1 = no padding; docs/TRAINING.md)."
    ),
    split: str = typer.Option("train", "--split", help="Data split to train on."),
    layout: str | None = typer.Option(None, "--layout", help="Data layout (detected by default)."),
    cache: Path | None = typer.Option(None, "--cache", help="Pair cache directory (default: OUT.pairs)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Encode every pair anew (no cache)."),
    feature_cache: Path | None = typer.Option(
        None, "--feature-cache", help="Phase ar: where the frozen HR features are cached (default: OUT.features/ when --augment-variants > 0)."
    ),
    no_feature_cache: bool = typer.Option(False, "--no-feature-cache", help="Phase ar: compute the HR features every step."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=0, help="Save the resumable state every N steps (0: at the end)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT.ckpt."),
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA when available."),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (CUDA only; ignored on CPU)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the initial weights, data order and augmentation."),
    workers: int = typer.Option(0, "--workers", min=0, help="Data loader processes."),
    fp16: bool = typer.Option(False, "--fp16", help="Store the weights in float16 (half the size; the checkpoint stays float32)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT and start over an existing run."),
) -> None:
    """Train AR-Seg: `--phase hr` (the HR network alone at 1.0x), then `--phase ar --hr HR.safetensors`
    (LR branch at scale s with CReFF; HR branch and classifier frozen; segmentation loss + FST MSE).

    Defaults follow the official recipe of the architecture's data set (docs/TRAINING.md). Writes OUT
    (arseg weights with provenance), OUT.ckpt (resumable state) and OUT.metrics.jsonl; prints OUT.
    Several processes: `torchrun --nproc-per-node N -m arseg_cli train ...` (DDP).
    """
    from arseg_cli.train import Trainer, TrainConfig, distributed, recipe_for, seed_everything
    from arseg_cli.train.config import input_multiple_for
    from arseg_cli.train.loop import steps_per_epoch
    from arseg_cli.cli._train_progress import training_progress
    from arseg_cli.train.losses import official_pixel_loss
    from arseg_cli.train.run import RunPaths, build_model, check_phase_inputs, open_feature_cache, open_pairs, provenance, write_weights

    if steps is not None and epochs is not None:
        raise OptionsError("give --steps or --epochs, not both")
    check_phase_inputs(phase, hr)
    crop_hw = parse_size(crop) if crop is not None else None
    if ar_start is not None and phase != "ar":
        raise OptionsError("--ar-start is for phase ar (it starts the LR branch and CReFF from AR weights)")
    if start is not None and phase == "ar":
        raise OptionsError("--start is for phases hr and lr; phase ar starts from --hr (and --ar-start)")
    if feature_cache is not None and (phase != "ar" or no_feature_cache or augment_variants == 0):
        raise OptionsError("--feature-cache is for phase ar with --augment-variants > 0 (and without --no-feature-cache)")
    recipe = recipe_for(arch)
    paths = RunPaths.beside(output, cache=False if no_cache else (cache or True))
    paths.check_start(resume=resume, force=force)
    processes = distributed.start(device.value)
    try:
        if feature_cache is not None and processes.distributed:
            raise OptionsError("--feature-cache serves one process: not under torchrun")
        # the default V = 8 exists for the feature cache, which one process keeps
        cached = phase == "ar" and not processes.distributed
        variants = augment_variants if augment_variants is not None else (8 if cached else 0)
        pairs = open_pairs(
            data, split=split, layout=layout, keyframe_interval=keyframe_interval, distance=distance, seed=seed, crop_hw=crop_hw,
            augment=augment, cache=paths.cache, frames=pair_frames, scale_range=aug_scale, jitter=jitter if augment else 0.0,
            variants=variants, codec=codec,
        )  # fmt: skip
        per_step = batch or recipe.batch
        per_epoch = steps_per_epoch(len(pairs), per_step, processes.world_size)
        total = steps or per_epoch * (epochs or recipe.epochs)
        fraction = recipe.plain_fraction if plain_fraction is None else plain_fraction
        if gate_only and plain_fraction is None:
            fraction = 0.0  # the gate weighs CReFF's terms: every step uses CReFF
        padding = input_multiple_for(arch) if input_multiple is None else input_multiple
        ctx.params["input_multiple"] = padding  # the provenance's command names the padding the weights use
        config = TrainConfig(
            phase=phase, arch=arch, steps=total, batch=per_step, lr=recipe.lr if lr is None else lr,
            optimizer=(optimizer or recipe.optimizer), momentum=recipe.momentum,
            weight_decay=recipe.weight_decay, scale=scale, keyframe_interval=keyframe_interval,
            plain_steps=round(fraction * total) if phase == "ar" else 0, fst_weight=fst_weight,
            crop_hw=crop_hw, distance=distance, lr_backbone=lr_backbone, pair_frames=pair_frames, pair_codec=codec, creff_init=creff_init,
            loss=loss or official_pixel_loss(arch), scale_range=aug_scale, jitter=jitter if augment else 0.0,
            augment_variants=variants, fusion_gate=fusion_gate, gate_only=gate_only, checkpoint_every=checkpoint_every,
            input_multiple=padding,
            seed=seed, workers=workers, amp=amp,
        )  # fmt: skip
        seed_everything(seed)
        model = build_model(config, pairs.dataset, hr_weights=hr, ar_start=ar_start, start=start)
        features = None
        if cached and variants > 0 and not no_feature_cache:
            where = feature_cache or output.with_name(output.name + ".features")
            features = open_feature_cache(where, model, pairs, amp=config.amp, device=processes.device)
        trainer = Trainer(
            model, pairs, config, processes, checkpoint=paths.checkpoint, metrics=paths.metrics, feature_cache=features
        )
        label = f"train {phase}"
        show = training_progress(console, total, label) if processes.is_main else nullcontext(None)
        with show as on_step:
            result = trainer.run(on_step, resume=resume)
        if processes.is_main:
            command = _command_line(ctx)
            if processes.distributed:  # as launched (one node)
                command = f"torchrun --nproc-per-node {processes.world_size} -m arseg_cli" + command.removeprefix("arseg")
            facts = provenance(config, pairs, result, data_root=data, command=command, hr_weights=hr, device=processes.device,
                               ar_start=ar_start, start=start)
            write_weights(model, facts, output, force=force or resume, half=fp16)
            console.print(
                f"trained {result.steps} steps in {result.seconds:.0f} s, final loss {result.final_loss:.4f}: {output}",
                highlight=False,
            )
            typer.echo(str(output))
    finally:
        distributed.stop(processes)


def _command_line(ctx: typer.Context) -> str:
    """The command with every parameter spelled out (defaults included): what reproduces the run."""
    words = ["arseg", "train"]
    for param in ctx.command.params:
        value: Any = ctx.params.get(param.name or "")
        if param.param_type_name == "argument":
            words.append(str(value))
        elif getattr(param, "is_flag", False):
            flags = param.opts if value else getattr(param, "secondary_opts", [])
            if flags and (value or param.secondary_opts):
                words.append(flags[0])
        elif isinstance(value, tuple):
            words += [param.opts[0], *map(str, value)]
        elif value is not None:
            words += [param.opts[0], str(value)]
    return shlex.join(words)
