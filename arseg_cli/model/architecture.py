"""What arseg knows about one registered architecture besides its modules: the configuration record.

Each family file defines one `ArchConfig` per architecture next to its builder and registers both
(`_registry.register`). Everything that depends on the architecture reads the record: the official
loader (normalisation, classes, key markers), the release import (reported mIoU, data set), the
paper's MAC count (`model.flops.paper_costs`), `arseg bench` (paper figures, frame size), training
(recipe, auxiliary heads and their loss weights) and the CLI's `--arch` choices. This module holds
plain data only (no torch), so the CLI can describe architectures without building one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from arseg_cli.model.meta import ModelMeta
from arseg_cli.palettes import CAMVID, CITYSCAPES, Palette

OptimizerName = Literal["adam", "sgd"]
#: Pixel losses: cross-entropy, or online hard example mining (arseg_cli.train.losses).
PixelLoss = Literal["ohem", "ce"]
#: What an auxiliary head predicts: class scores per pixel, or per image which classes are present.
AuxTarget = Literal["pixels", "classes_present"]
#: Per-channel (R, G, B) normalisation statistics of RGB in [0, 1].
Stats = tuple[float, float, float]

CAMVID_MEAN = (0.39068785, 0.40521392, 0.41434407)
CAMVID_STD = (0.29652068, 0.30514979, 0.30080369)
CITYSCAPES_BISE_MEAN = (0.3257, 0.3690, 0.3223)
CITYSCAPES_BISE_STD = (0.2112, 0.2148, 0.2115)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True, slots=True)
class DataSetInfo:
    """A data set an architecture is made for.

    name:        'camvid' or 'cityscapes' (the first part of the architecture ids).
    palette:     class names and colours (class id = position).
    frame_hw:    (height, width) in pixels of its frames: the size the paper counts MACs at.
    description: what the official release was trained on (recorded in imported weights).
    """

    name: str
    palette: Palette
    frame_hw: tuple[int, int]
    description: str


CAMVID_DATA = DataSetInfo("camvid", CAMVID, (720, 960), "CamVid (11 classes + Void, 960x720), training by the AR-Seg authors")
CITYSCAPES_DATA = DataSetInfo(
    "cityscapes", CITYSCAPES, (1024, 2048), "Cityscapes (19 train ids, 2048x1024), training by the AR-Seg authors"
)


@dataclass(frozen=True, slots=True)
class Recipe:
    """An optimisation recipe: optimiser and its settings, batch per step, epochs, and (phase ar)
    the fraction of the steps trained without CReFF at the start (the official plain LR warm-up)."""

    optimizer: OptimizerName
    lr: float
    momentum: float
    weight_decay: float
    batch: int
    epochs: int
    plain_fraction: float


#: The official recipes (reference/OFFICIAL.md, "Training recipe"); the reference gives no Cityscapes
#: batch size or schedule: arseg uses batch 8 and the same per-iteration cosine decay (docs/TRAINING.md).
CAMVID_RECIPE = Recipe("adam", 1e-3, 0.0, 0.0, batch=8, epochs=100, plain_fraction=0.5)
CITYSCAPES_RECIPE = Recipe("sgd", 0.01, 0.9, 5e-4, batch=8, epochs=200, plain_fraction=0.0)


@dataclass(frozen=True, slots=True)
class AuxHead:
    """A training-only head, in the order `SegNet.features_and_aux(aux=True)` returns its output.

    module: the network attribute holding it (its state_dict prefix).
    target: 'pixels' (cross-entropy against the labels, scores resized to them) or 'classes_present'
            ((N, K) scores, binary cross-entropy on which classes occur in the labels).
    weight: the weight of its loss beside the main loss.
    """

    module: str
    target: AuxTarget
    weight: float


@dataclass(frozen=True, slots=True)
class OfficialCheckpoint:
    """How the released `.pth` files of the architecture look.

    backbone_key / classifier_key: keys (`module.` prefix removed) that mark the family's files; the
                 classifier's output size tells data sets apart when families share markers.
    key_aliases: key -> key it duplicates, added when a file lacks the first (phase-1 files).
    hr_may_hold_creff: HR files may carry unused `fuse_attention.*` keys (dropped, not refused).
    Release layout: `checkpoints/{arch id}/{HR,AR,LR}/*.pth`, the LR scale in the third `_` field of a
    file name (`PSPNet_resnet18_0.5_87_.pth`).
    """

    backbone_key: str
    classifier_key: str
    key_aliases: Mapping[str, str] = field(default_factory=dict)
    hr_may_hold_creff: bool = False


@dataclass(frozen=True, slots=True)
class PaperFigures:
    """The published figures of the architecture at its data set's frame size and LR scale `scale`.

    hr_gmacs / lr_gmacs: the paper's "GFLOPs" (thop MACs, G) of the HR network and of the LR network.
    creff_gmacs: CReFF's cost as the paper states it (None where it gives none).
    miou_hr / miou_lr / miou_ar: mIoU (%) the authors report for the released HR, LR and AR files
              (mean over keyframe distances 0..11 of 12-frame GOPs of compressed video).
    aux_in_macs: branches ('hr', 'lr') whose published MACs include auxiliary heads the official
              forward runs in eval mode (model.flops explains).
    resizing_in_macs: the official code resizes with nn.Upsample modules, which thop charges.
    """

    hr_gmacs: float
    lr_gmacs: float
    creff_gmacs: float | None
    miou_hr: float
    miou_lr: float
    miou_ar: float
    aux_in_macs: frozenset[str]
    resizing_in_macs: bool
    scale: float = 0.5


@dataclass(frozen=True, slots=True)
class ArchConfig:
    """One registered architecture: data, normalisation, shapes, official files, paper, training.

    arch:             the registry id, e.g. 'camvid-psp18'.
    data:             the data set it is made for (classes, frame size).
    mean, std:        normalisation of RGB in [0, 1] the released checkpoints were trained with.
    feature_stride:   input pixels per pixel of the feature F that CReFF fuses (F is about
                      (H / stride, W / stride)).
    feature_channels: channels of F.
    log_probs:        the network's image-size scores are log-probabilities (NLL loss), not raw scores.
    pixel_loss:       the pixel loss the authors trained with, of the main and auxiliary pixel heads.
    recipe:           the default training recipe.
    aux_heads:        the training-only heads and their loss weights.
    official:         the released checkpoints' key markers and quirks (None: no official release).
    paper:            the published MACs and mIoU (None: no published figures).
    input_multiple:   what arseg's own trainings pad each network's input to (ModelMeta.input_multiple;
                      1: the family does not pad).
    """

    arch: str
    data: DataSetInfo
    mean: Stats
    std: Stats
    feature_stride: int
    feature_channels: int
    log_probs: bool
    pixel_loss: PixelLoss
    recipe: Recipe
    aux_heads: tuple[AuxHead, ...]
    official: OfficialCheckpoint | None = None
    paper: PaperFigures | None = None
    input_multiple: int = 1

    @property
    def palette(self) -> Palette:
        return self.data.palette

    @property
    def num_classes(self) -> int:
        return self.data.palette.num_classes

    def model_meta(self, **fields: Any) -> ModelMeta:
        """Metadata of a new model of this architecture: its data set's classes and colours, its
        normalisation, and `fields` (scale, has_creff, ...) as given."""
        return ModelMeta(self.arch, self.palette.classes, self.palette.colors, self.mean, self.std, **fields)
