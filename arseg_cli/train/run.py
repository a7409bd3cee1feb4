"""What `arseg train` assembles around the Trainer: the data, the model of the phase, the output paths,
and the provenance written into the weights' metadata."""

from __future__ import annotations

import datetime
import json
import platform
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from arseg_cli import __version__
from arseg_cli.data import Dataset, PairDataset, open_dataset
from arseg_cli.data.pairs import PairCodec, PairFrames
from arseg_cli.errors import OptionsError, OutputExistsError, WeightsError
from arseg_cli.model import arch_config, build_arseg, load_weights, save_weights
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.meta import ModelMeta
from arseg_cli.train.config import CreffInit, TrainConfig
from arseg_cli.train.feature_cache import FeatureCache, data_identity, weights_hash
from arseg_cli.train.loop import TrainResult


@dataclass(frozen=True)
class RunPaths:
    """The files of a run: the weights, the resumable checkpoint, the metrics, the pair cache."""

    weights: Path
    checkpoint: Path
    metrics: Path
    cache: Path | None

    @classmethod
    def beside(cls, weights: Path, *, cache: Path | None | bool = True) -> RunPaths:
        """Defaults: OUT.ckpt, OUT.metrics.jsonl, OUT.pairs/ next to the weights file OUT."""
        chosen = weights.with_name(weights.name + ".pairs") if cache is True else (cache or None)
        return cls(weights, weights.with_name(weights.name + ".ckpt"), weights.with_name(weights.name + ".metrics.jsonl"), chosen)  # type: ignore[arg-type]

    def check_start(self, *, resume: bool, force: bool) -> None:
        """Refuse to start over existing results unless `force` (a resume continues its checkpoint)."""
        if self.weights.exists() and not force:
            raise OutputExistsError(f"{self.weights} exists: use `force` to replace it")
        if resume or force:
            return
        for path in (self.checkpoint, self.metrics):
            if path.exists():
                raise OutputExistsError(f"{path} exists: use `resume` to continue that run or `force` to start over")


def open_pairs(
    root: Path,
    *,
    split: str,
    layout: str | None,
    keyframe_interval: int,
    distance: str,
    seed: int,
    crop_hw: tuple[int, int] | None,
    augment: bool,
    cache: Path | None,
    frames: PairFrames = "decoded",
    scale_range: tuple[float, float] = (0.75, 1.25),
    jitter: float = 0.0,
    variants: int = 0,
    codec: PairCodec = "h264",
) -> PairDataset:
    """The training pairs of the data set at `root` (PairDataset: keyframe distance policy, seeded
    augmentation (scale range, colour jitter, a finite number of `variants` per item or none), optional
    crop, pairs cached under `cache`, `frames` decoded or source pixels, snippets encoded with `codec`)."""
    dataset = open_dataset(root, split=split, layout=layout)
    return PairDataset(
        dataset, keyframe_interval=keyframe_interval, policy=distance, seed=seed, augment=augment, crop_hw=crop_hw,  # type: ignore[arg-type]
        scale_range=scale_range, jitter=jitter, variants=variants,
        cache=str(cache) if cache is not None else None, frames=frames, codec=codec,
    )  # fmt: skip


def open_feature_cache(
    directory: Path, model: ARSeg, pairs: PairDataset, *, amp: bool = False, device: torch.device | None = None
) -> FeatureCache:
    """Phase ar's cache of the frozen HR features (train/feature_cache.py), tied to the HR branch's
    weights, to the pairs' data and settings, and to how the features are computed (device type,
    float16 autocast)."""
    if model.hr is None or pairs.variants < 1:
        raise OptionsError("the feature cache needs an HR branch and pairs with a finite number of variants")
    kind = (device or torch.device("cpu")).type
    identity = {"hr_weights_sha256": weights_hash(model.hr), "data": data_identity(pairs), "device": kind,
                "amp": bool(amp and kind == "cuda")}  # fmt: skip
    if model.meta.input_multiple > 1:  # the features of frames it does not divide differ
        identity["input_multiple"] = model.meta.input_multiple
    return FeatureCache(directory, identity=identity, items=len(pairs), variants=pairs.variants)


def hr_meta(arch: str, dataset: Dataset, keyframe_interval: int) -> ModelMeta:
    """Metadata of a new HR model of `arch` for the classes of `dataset` (normalisation of the arch's
    official data set)."""
    config = arch_config(arch)
    return ModelMeta(arch, dataset.palette.classes, dataset.palette.colors, config.mean, config.std, keyframe_interval=keyframe_interval)


def check_phase_inputs(phase: str, hr_weights: Path | None) -> None:
    """Phase ar starts from trained HR weights; phases hr and lr from scratch."""
    if phase in ("hr", "lr") and hr_weights is not None:
        raise OptionsError(f"`hr` is for phase ar (phase {phase} trains its network from scratch)")
    if phase == "ar" and hr_weights is None:
        raise OptionsError("phase ar needs the trained HR network: give `hr` (its .safetensors file)")


def build_model(
    config: TrainConfig, dataset: Dataset, *, hr_weights: Path | None, ar_start: Path | None = None, start: Path | None = None
) -> ARSeg:
    """Phase hr: a new HR network. Phase lr: a new plain LR network at scale s (no HR branch, no CReFF:
    the paper's LR baseline). Either starts from the trained network in `start` instead (fine-tuning).
    Phase ar: HR branch loaded from `hr_weights` (its own metadata wins: classes must match the data),
    LR branch new at scale s with CReFF and the HR classifier shared."""
    check_phase_inputs(config.phase, hr_weights)
    if start is not None and config.phase == "ar":
        raise OptionsError("`start` is for phases hr and lr; phase ar starts from `hr` (and `ar_start`)")
    if config.phase in ("hr", "lr"):
        meta = replace(hr_meta(config.arch, dataset, config.keyframe_interval), input_multiple=config.input_multiple)
        if config.phase == "lr":
            meta = replace(meta, scale=config.scale, has_creff=False)
        model = build_arseg(meta, has_hr=config.phase == "hr")
        if start is not None:
            start_network(model, start)
        return model
    trained = load_weights(hr_weights, arch=config.arch)  # type: ignore[arg-type]
    if trained.hr is None:
        raise WeightsError(f"{hr_weights} has no HR branch (a plain LR baseline?)")
    if trained.meta.classes != dataset.palette.classes:
        raise WeightsError(f"{hr_weights} was trained for {len(trained.meta.classes)} classes {trained.meta.classes[:3]}..., the data have {dataset.palette.classes[:3]}...")
    meta = replace(
        trained.meta, scale=config.scale, keyframe_interval=config.keyframe_interval, has_creff=True, lr_classifier="shared",
        lr_backbone=config.lr_backbone, warp="exact", fusion_gate=config.fusion_gate, input_multiple=config.input_multiple,
        provenance={}, metrics={},
    )  # fmt: skip
    model = build_arseg(meta)
    model.hr.load_state_dict(trained.hr.state_dict())  # type: ignore[union-attr]
    start_lr_from_hr(model, creff_init=config.creff_init)
    if ar_start is not None:
        start_lr_from_ar(model, ar_start)
    elif config.gate_only:
        raise OptionsError("training the gate alone starts from trained AR weights: give `ar_start`")
    return model


def start_network(model: ARSeg, path: Path) -> None:
    """Phases hr and lr continued: the network as the weights at `path` hold it. Phase hr takes the HR
    branch of any arseg weights of the same architecture (an HR+AR file included); phase lr takes a
    plain LR network of the same scale (phase lr's output)."""
    start = load_weights(path, arch=model.arch)
    if start.meta.classes != model.meta.classes:
        raise WeightsError(f"{path} was trained for {len(start.meta.classes)} classes {start.meta.classes[:3]}..., "
                           f"the data have {model.meta.classes[:3]}...")  # fmt: skip
    if model.hr is not None:
        if start.hr is None:
            raise WeightsError(f"{path} has no HR network to start phase hr from (a plain LR baseline?)")
        model.hr.load_state_dict(start.hr.state_dict())
        return
    if start.hr is not None or start.lr is None or start.has_creff:
        raise WeightsError(f"{path} is not a plain LR network (phase lr's output) to start phase lr from")
    if start.meta.scale != model.meta.scale:
        raise WeightsError(f"{path} is an LR network at scale {start.meta.scale}; this run trains scale {model.meta.scale}")
    model.lr.load_state_dict(start.lr.state_dict())  # type: ignore[union-attr]


def start_lr_from_ar(model: ARSeg, path: Path) -> None:
    """Phase ar continued: the LR branch and CReFF as the AR weights at `path` hold them (for example
    `arseg calibrate`'s output), instead of a copy of the HR network; same architecture and scale."""
    start = load_weights(path, arch=model.arch)
    if start.lr is None or not start.has_creff:
        raise WeightsError(f"{path} has no LR branch with CReFF to start phase ar from")
    if start.meta.scale != model.meta.scale or start.meta.classes != model.meta.classes:
        raise WeightsError(f"{path} is an AR model at scale {start.meta.scale} for {len(start.meta.classes)} classes; "
                           f"this run trains scale {model.meta.scale} for {len(model.meta.classes)}")  # fmt: skip
    if start.meta.lr_backbone != model.meta.lr_backbone:
        raise WeightsError(f"{path} has a {start.meta.lr_backbone} LR backbone; this run's is {model.meta.lr_backbone}")
    hr_state, start_hr = model.hr.state_dict(), start.hr.state_dict() if start.hr is not None else {}  # type: ignore[union-attr]
    if model.meta.lr_backbone == "shared" and not all(torch.equal(start_hr.get(k, v.new_empty(0)), v) for k, v in hr_state.items()):
        raise WeightsError(f"{path} was trained on another HR network than this run's (its LR branch shares that network's backbone)")
    if start.meta.fusion_gate and not model.meta.fusion_gate:
        raise WeightsError(f"{path} has a fusion gate; this run's LR branch has none (add `fusion_gate`)")
    state = start.lr.state_dict()  # type: ignore[union-attr]
    if model.meta.fusion_gate and not start.meta.fusion_gate:  # a new gate: it starts as no gate (fusion_gate.py)
        state.update({k: v for k, v in model.lr.state_dict().items() if k.startswith("fusion_gate.")})  # type: ignore[union-attr]
    model.lr.load_state_dict(state)  # type: ignore[union-attr]


def start_lr_from_hr(model: ARSeg, *, creff_init: CreffInit = "zero") -> None:
    """Phase ar's starting point: the LR branch is a copy of the trained HR network (the two have the same
    layers). CReFF's convolutions start as `creff_init`:

    - 'kaiming' (the official initialisation): query, key and value depthwise convolutions drawn
      kaiming-normal with a = 1 (std 1/sqrt(9) for 3x3 depthwise kernels), biases zero. The fusion then
      starts as the upsampled LR feature plus a random mixture of the warped keyframe feature.
    - 'zero': the fusion starts as the identity (fused = the upsampled LR feature), so the untrained
      model is exactly the HR network run on downscaled frames. But while the value is zero the query
      and key convolutions get no gradient: the attention may never learn where to look.
    - 'identity': each channel's centre tap is 1, so the fusion starts as the upsampled LR feature plus
      an attention-weighted average of the warped keyframe feature, and the attention gets a gradient
      from the first step.
    """
    hr, lr = model.hr, model.lr
    if hr is None or lr is None or not lr.has_fusion:
        raise ValueError("phase ar needs a model with an HR branch and an LR branch with CReFF")
    own = {name: tensor for name, tensor in lr.state_dict().items() if not name.startswith(("fuse_attention.", "fusion_gate."))}
    source = hr.state_dict()
    missing = [name for name in own if name not in source or source[name].shape != own[name].shape]
    if missing:
        raise WeightsError(f"the LR branch does not match the HR network: {missing[:3]}")
    with torch.no_grad():
        lr.load_state_dict({**lr.state_dict(), **{name: source[name] for name in own}})
        initialise_creff(lr.fuse_attention, creff_init)


def initialise_creff(creff: torch.nn.Module, creff_init: CreffInit) -> None:
    """Set CReFF's query, key and value convolutions as `creff_init` says (start_lr_from_hr)."""
    convs = (creff.lr_query_conv, creff.hr_key_conv, creff.hr_value_conv)
    with torch.no_grad():
        if creff_init == "kaiming":
            for conv in convs:
                torch.nn.init.kaiming_normal_(conv.weight, a=1.0)
                conv.bias.zero_()
            return
        if creff_init not in ("zero", "identity"):
            raise ValueError(f"unknown CReFF initialisation {creff_init!r} (expected kaiming, zero or identity)")
        value = creff.hr_value_conv
        value.weight.zero_()
        value.bias.zero_()
        if creff_init == "identity":
            centre = value.weight.shape[-1] // 2
            value.weight[:, 0, centre, centre] = 1.0


def provenance(
    config: TrainConfig,
    pairs: PairDataset,
    result: TrainResult,
    *,
    data_root: Path,
    command: str,
    hr_weights: Path | None,
    device: torch.device,
    ar_start: Path | None = None,
    start: Path | None = None,
) -> dict[str, Any]:
    """The facts that let someone reproduce the weights (stored in ModelMeta.provenance)."""
    dataset = pairs.dataset
    facts: dict[str, Any] = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "arseg_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": f"{device.type} x{result.world_size}",
        "data": {
            "root": str(data_root.resolve()),
            "layout": dataset.layout,
            "split": dataset.split,
            "name": dataset.name,
            "labelled_frames": len(pairs),
            **_synthstreet_facts(data_root, dataset),
        },
        "phase": config.phase,
        "config": asdict(config),
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "final_loss": round(result.final_loss, 6),
    }
    if hr_weights is not None:
        facts["hr_weights"] = str(hr_weights.resolve())
    if ar_start is not None:
        facts["ar_start"] = str(ar_start.resolve())
    if start is not None:
        facts["start"] = str(start.resolve())
    return facts


def _synthstreet_facts(root: Path, dataset: Dataset) -> dict[str, Any]:
    """SynthStreet: the generator's seed, size and clip count from the split's manifest."""
    if dataset.layout != "synthstreet":
        return {}
    for manifest in (root / dataset.split / "manifest.json", root / "manifest.json"):
        if manifest.is_file():
            data = json.loads(manifest.read_text(encoding="utf-8"))
            keys = ("seed", "clips", "frames", "height", "width", "keyint", "crf")
            return {"manifest": str(manifest.resolve()), **{f"synth_{k}": data.get(k) for k in keys}}
    return {}


def write_weights(model: ARSeg, facts: dict[str, Any], path: Path, *, force: bool, half: bool = False) -> Path:
    """The trained model in arseg's weight format, provenance filled in; `half`: float16 storage."""
    meta = replace(model.meta, provenance=facts)
    model.meta = meta
    return save_weights(model.cpu(), path, meta=meta, force=force, dtype=torch.float16 if half else None)
