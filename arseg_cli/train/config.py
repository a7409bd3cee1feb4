"""What a training run does: the phase, the model, the optimisation recipe, the data policy.

Each architecture's default recipe is in its configuration record (`ArchConfig.recipe`, from
reference/OFFICIAL.md, "Training recipe"; docs/TRAINING.md). Every value can be overridden from the
command line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from arseg_cli.errors import OptionsError
from arseg_cli.scale_interval import keyframe_interval_problem, scale_problem
from arseg_cli.model import arch_config
from arseg_cli.model._registry import input_multiple_problem
from arseg_cli.model.architecture import OptimizerName, PixelLoss, Recipe
from arseg_cli.train.losses import PIXEL_LOSSES

Phase = Literal["hr", "lr", "ar"]
BackboneSharing = Literal["own", "shared"]
CreffInit = Literal["kaiming", "zero", "identity"]
CREFF_INITS: tuple[CreffInit, ...] = ("kaiming", "zero", "identity")
DevicePolicy = Literal["auto", "cpu", "cuda"]

#: What a checkpoint written before an option existed implies for it: such options are left out of the
#: resume key when they hold these values, so older checkpoints still resume.
_IMPLIED_BY_OLD_CHECKPOINTS: dict[str, Any] = {
    "lr_backbone": "own", "pair_frames": "decoded", "pair_codec": "h264", "creff_init": "zero", "loss": "ce",
    "scale_range": [0.75, 1.25], "jitter": 0.0, "augment_variants": 0, "fusion_gate": False, "gate_only": False,
    "input_multiple": 1,
}  # fmt: skip


def recipe_for(arch: str) -> Recipe:
    """The default training recipe of a registered architecture (its `ArchConfig.recipe`)."""
    return arch_config(arch).recipe


def input_multiple_for(arch: str) -> int:
    """What new weights of `arch` pad their networks' input to by default (`ArchConfig.input_multiple`)."""
    return arch_config(arch).input_multiple


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    phase:          'hr' (HR network alone at 1.0x), 'lr' (a separate LR network at `scale`, no CReFF: the
                    paper's LR baseline) or 'ar' (LR branch at `scale` + CReFF, HR frozen).
    steps:          optimiser steps in all (each step sees `batch` items per process).
    plain_steps:    phase ar: the first steps train the LR branch without CReFF (official warm-up).
    fst_weight:     phase ar: weight of the FST feature MSE.
    crop_hw:        training crop (H, W) in pixels, None = full frames.
    keyframe_interval: L; pairs take keyframe distances from it (`distance` policy).
    pair_frames:    pixels of the training pairs: 'decoded' from the compressed snippet (what inference sees)
                    or the data set's 'source' frames (the official code's choice); the flow is the
                    snippet's motion vectors either way.
    pair_codec:     the snippets' codec: 'h264' (libx264) or 'hevc' (libx265 as the paper, vectors read by
                    arseg's HEVC parser).
    lr_backbone:    phase ar: 'own' (the paper: the LR branch trains its own ResNet-18) or 'shared' (the
                    LR branch uses the frozen HR backbone; only its heads and CReFF train).
    creff_init:     phase ar: CReFF's convolutions at the start: 'kaiming' (the official: query, key and
                    value kaiming-normal with a = 1, bias 0), 'zero' (value zero: the fusion starts as the
                    identity) or 'identity' (value's centre tap 1; train.run.start_lr_from_hr says why).
    loss:           pixel loss of the main and auxiliary pixel heads: 'ohem' or 'ce' (train.losses).
    scale_range:    augmentation: random scale of the pair (before the crop).
    jitter:         augmentation: colour jitter strength (brightness, contrast, saturation), 0 = none.
    augment_variants: 0: every epoch draws a new augmentation (and d); V > 0: epoch e draws the one of
                    variant e mod V, so an item takes V forms in all (what lets phase ar cache the frozen
                    HR features of each form).
    fusion_gate:    phase ar: the LR branch gets the per-pixel fusion gate (model/fusion_gate.py; arseg's
                    extension, not the paper's network).
    gate_only:      phase ar with `fusion_gate`: train the gate alone, everything else frozen as the
                    starting weights (--ar-start) hold it.
    input_multiple: each network pads its input to a multiple of this (ModelMeta.input_multiple; the
                    new weights keep it); 1: no padding.
    checkpoint_every: save the resumable state every N steps (0 = only at the end).
    """

    phase: Phase
    arch: str
    steps: int
    batch: int
    lr: float
    optimizer: OptimizerName
    momentum: float = 0.0
    weight_decay: float = 0.0
    scale: float = 0.5
    keyframe_interval: int = 12
    plain_steps: int = 0
    fst_weight: float = 1.0
    crop_hw: tuple[int, int] | None = None
    distance: Literal["official", "uniform"] = "uniform"
    lr_backbone: BackboneSharing = "own"
    pair_frames: Literal["decoded", "source"] = "decoded"
    pair_codec: Literal["h264", "hevc"] = "h264"
    creff_init: CreffInit = "kaiming"
    loss: PixelLoss = "ce"
    scale_range: tuple[float, float] = (0.75, 1.25)  # PairDataset's defaults; `arseg train` passes the official
    jitter: float = 0.0
    augment_variants: int = 0
    fusion_gate: bool = False
    gate_only: bool = False
    input_multiple: int = 1
    checkpoint_every: int = 0
    seed: int = 0
    workers: int = 0
    amp: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.phase not in ("hr", "lr", "ar"):
            problems.append(f"phase must be hr, lr or ar, not {self.phase!r}")
        if self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.batch < 2:  # BatchNorm after global pooling sees one value per channel per item
            problems.append(f"batch must be >= 2 items per process (BatchNorm needs them), got {self.batch}")
        if not self.lr > 0:
            problems.append(f"learning rate must be > 0, got {self.lr}")
        for issue in (scale_problem(self.scale), keyframe_interval_problem(self.keyframe_interval)):
            if issue:
                problems.append(issue)
        if self.fst_weight < 0:
            problems.append(f"FST weight must be >= 0, got {self.fst_weight}")
        if not 0 <= self.plain_steps <= self.steps:
            problems.append(f"plain steps must be in 0..{self.steps}, got {self.plain_steps}")
        if self.lr_backbone not in ("own", "shared"):
            problems.append(f"lr_backbone must be own or shared, not {self.lr_backbone!r}")
        if self.pair_frames not in ("decoded", "source"):
            problems.append(f"pair frames must be decoded or source, not {self.pair_frames!r}")
        if self.pair_codec not in ("h264", "hevc"):
            problems.append(f"pair codec must be h264 or hevc, not {self.pair_codec!r}")
        if self.creff_init not in CREFF_INITS:
            problems.append(f"CReFF initialisation must be one of {', '.join(CREFF_INITS)}, not {self.creff_init!r}")
        if self.loss not in PIXEL_LOSSES:
            problems.append(f"loss must be one of {', '.join(PIXEL_LOSSES)}, not {self.loss!r}")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            problems.append(f"augmentation scale range must be 0 < low <= high, got {self.scale_range}")
        if not 0.0 <= self.jitter < 1.0:
            problems.append(f"colour jitter must be in [0, 1), got {self.jitter}")
        if self.augment_variants < 0:
            problems.append(f"augmentation variants must be >= 0, got {self.augment_variants}")
        if self.phase != "ar" and self.lr_backbone != "own":
            problems.append("`lr_backbone` shared is for phase ar (only it shares the HR backbone)")
        if self.fusion_gate and self.phase != "ar":
            problems.append("the fusion gate is for phase ar (it weighs CReFF's terms)")
        if self.gate_only and not self.fusion_gate:
            problems.append("training the gate alone needs the fusion gate")
        if self.gate_only and self.plain_steps:
            problems.append("training the gate alone has no steps without CReFF (plain steps must be 0)")
        padding = input_multiple_problem(self.arch, self.input_multiple)
        if padding:
            problems.append(padding)
        if self.checkpoint_every < 0 or self.workers < 0:
            problems.append("checkpoint interval and workers must be >= 0")
        if self.crop_hw is not None and min(self.crop_hw) < 8:
            problems.append(f"crop {self.crop_hw} is too small (>= 8 pixels a side)")
        if problems:
            raise OptionsError("; ".join(problems))

    def resume_key(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        data = asdict(self)
        for free in ("checkpoint_every", "workers"):
            data.pop(free)
        data["crop_hw"] = list(self.crop_hw) if self.crop_hw else None
        data["keyint"] = data.pop("keyframe_interval")  # the name checkpoints were written with
        data["scale_range"] = list(self.scale_range)
        for option, implied in _IMPLIED_BY_OLD_CHECKPOINTS.items():
            if data[option] == implied:
                data.pop(option)
        return data
