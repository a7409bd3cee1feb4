"""What a training run does: the phase, the model, the optimisation recipe, the data policy.

Each architecture's default recipe is in its configuration record (`ArchConfig.recipe`, from
reference/OFFICIAL.md, "Training recipe"; docs/TRAINING.md). Every value can be overridden from the
command line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from arseg_cli.errors import OptionsError
from arseg_cli.model import arch_config
from arseg_cli.model.architecture import OptimizerName, Recipe

Phase = Literal["hr", "ar"]
BackboneSharing = Literal["own", "shared"]
CreffInit = Literal["zero", "identity"]
DevicePolicy = Literal["auto", "cpu", "cuda"]


def recipe_for(arch: str) -> Recipe:
    """The default training recipe of a registered architecture (its `ArchConfig.recipe`)."""
    return arch_config(arch).recipe


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    phase:          'hr' (HR network alone at 1.0x) or 'ar' (LR branch at `scale` + CReFF, HR frozen).
    steps:          optimiser steps in all (each step sees `batch` items per process).
    plain_steps:    phase ar: the first steps train the LR branch without CReFF (official warm-up).
    fst_weight:     phase ar: weight of the FST feature MSE.
    crop_hw:        training crop (H, W) in pixels, None = full frames.
    keyframe_interval: L; pairs take keyframe distances from it (`distance` policy).
    pair_frames:    pixels of the training pairs: 'decoded' from the compressed snippet (what inference sees)
                    or the data set's 'source' frames (the official code's choice); the flow is the
                    snippet's motion vectors either way.
    lr_backbone:    phase ar: 'own' (the paper: the LR branch trains its own ResNet-18) or 'shared' (the
                    LR branch uses the frozen HR backbone; only its heads and CReFF train).
    creff_init:     phase ar: CReFF's value convolution at the start, 'zero' (the fusion starts as the
                    identity) or 'identity' (train.run.start_lr_from_hr says why).
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
    creff_init: CreffInit = "zero"
    checkpoint_every: int = 0
    seed: int = 0
    workers: int = 0
    amp: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.phase not in ("hr", "ar"):
            problems.append(f"phase must be hr or ar, not {self.phase!r}")
        if self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.batch < 2:  # BatchNorm after global pooling sees one value per channel per item
            problems.append(f"batch must be >= 2 items per process (BatchNorm needs them), got {self.batch}")
        if not self.lr > 0:
            problems.append(f"learning rate must be > 0, got {self.lr}")
        if not 0.0 < self.scale <= 1.0:
            problems.append(f"scale must be in (0, 1], got {self.scale}")
        if self.fst_weight < 0:
            problems.append(f"FST weight must be >= 0, got {self.fst_weight}")
        if not 0 <= self.plain_steps <= self.steps:
            problems.append(f"plain steps must be in 0..{self.steps}, got {self.plain_steps}")
        if self.lr_backbone not in ("own", "shared"):
            problems.append(f"lr_backbone must be own or shared, not {self.lr_backbone!r}")
        if self.pair_frames not in ("decoded", "source"):
            problems.append(f"pair frames must be decoded or source, not {self.pair_frames!r}")
        if self.creff_init not in ("zero", "identity"):
            problems.append(f"CReFF initialisation must be zero or identity, not {self.creff_init!r}")
        if self.phase == "hr" and self.lr_backbone != "own":
            problems.append("--lr-backbone is for phase ar (phase hr has no LR branch)")
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
        for option, default in (("lr_backbone", "own"), ("pair_frames", "decoded"), ("creff_init", "zero")):
            if data[option] == default:  # checkpoints from before the option lack the key
                data.pop(option)
        return data
