"""Training losses: the segmentation loss with the auxiliary heads as the official recipes weight them,
and FST's feature similarity term.

Auxiliary heads (`SegNet.features_and_aux(aux=True)`) and their weights are each architecture's
`ArchConfig.aux_heads`: pixel heads take the pixel loss against the labels, the image-level head of
camvid-psp18 binary cross-entropy on "class present in the labels".

Pixel losses are `ce` (cross-entropy, NLL for log-probability outputs) or `ohem` (online hard example
mining, BiSeNet's recipe: only pixels whose loss exceeds -log(0.7), i.e. whose true class has a
probability below 0.7, count; when fewer than a sixteenth of the valid pixels are that hard, the
sixteenth with the largest losses counts instead). Each architecture's official one is its
`ArchConfig.pixel_loss`: BiSeNet trains with OHEM on its main and both auxiliary heads; the PSPNets
with plain cross-entropy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from arseg_cli.model import arch_config
from arseg_cli.model.architecture import PixelLoss
from arseg_cli.model.resize import resize_bilinear

IGNORE_INDEX = 255

PIXEL_LOSSES: tuple[PixelLoss, ...] = ("ohem", "ce")
OHEM_THRESHOLD = 0.7
OHEM_MIN_FRACTION = 1.0 / 16.0


def official_pixel_loss(arch: str) -> PixelLoss:
    """The pixel loss the authors trained `arch` with (its `ArchConfig.pixel_loss`)."""
    return arch_config(arch).pixel_loss


def segmentation_loss(
    scores: Tensor, labels: Tensor, *, log_probs: bool, ignore_index: int = IGNORE_INDEX, kind: PixelLoss = "ce"
) -> Tensor:
    """Mean per-pixel loss over pixels whose label is not `ignore_index` (`kind` 'ohem': over the hard
    pixels only, see ohem_loss).

    scores: (N, K, H, W) float at the labels' size: log-probabilities when `log_probs` (camvid-psp18
            outputs them; NLL), raw class scores otherwise (cross-entropy).
    labels: (N, H, W) int64 class ids.
    A batch whose every pixel is ignored gives 0 (with a gradient path), not NaN.
    """
    scores = scores.float()
    if not bool((labels != ignore_index).any()):
        return scores.sum() * 0.0
    if kind == "ohem":
        return ohem_loss(scores, labels, log_probs=log_probs, ignore_index=ignore_index)
    if kind != "ce":
        raise ValueError(f"unknown pixel loss {kind!r} (expected one of {', '.join(PIXEL_LOSSES)})")
    if log_probs:
        return F.nll_loss(scores, labels, ignore_index=ignore_index)
    return F.cross_entropy(scores, labels, ignore_index=ignore_index)


def ohem_loss(
    scores: Tensor,
    labels: Tensor,
    *,
    log_probs: bool,
    ignore_index: int = IGNORE_INDEX,
    threshold: float = OHEM_THRESHOLD,
    min_fraction: float = OHEM_MIN_FRACTION,
) -> Tensor:
    """Online hard example mining: the mean loss of the pixels whose per-pixel loss exceeds
    -log(threshold) (their true class has probability < threshold); when fewer than
    max(1, int(min_fraction * valid pixels)) are that hard, the mean of that many largest losses.
    Ignored pixels never count. Shapes as segmentation_loss; the batch must have a valid pixel."""
    per_pixel = (F.nll_loss if log_probs else F.cross_entropy)(scores, labels, ignore_index=ignore_index, reduction="none")
    losses = per_pixel[labels != ignore_index]
    hard = losses[losses > -math.log(threshold)]
    keep = max(1, int(min_fraction * losses.numel()))
    if hard.numel() >= keep:
        return hard.mean()
    return losses.topk(keep).values.mean()


def auxiliary_loss(
    arch: str, aux: tuple[Tensor, ...], labels: Tensor, *, ignore_index: int = IGNORE_INDEX, kind: PixelLoss = "ce"
) -> Tensor:
    """Weighted sum of the auxiliary heads' losses (see the module docstring); labels (N, H, W) int64;
    `kind`: the pixel loss of the pixel heads."""
    heads = arch_config(arch).aux_heads
    if len(heads) != len(aux):
        raise ValueError(f"{arch} has {len(heads)} auxiliary heads, got {len(aux)} outputs")
    total = labels.new_zeros((), dtype=torch.float32)
    size = (labels.shape[-2], labels.shape[-1])
    for head, scores in zip(heads, aux):
        if head.target == "classes_present":
            present = _classes_present(labels, scores.shape[1], ignore_index)
            total = total + head.weight * F.binary_cross_entropy_with_logits(scores.float(), present)
        else:
            resized = resize_bilinear(scores.float(), size, align_corners=True)
            pixel = segmentation_loss(resized, labels, log_probs=False, ignore_index=ignore_index, kind=kind)
            total = total + head.weight * pixel
    return total


def _classes_present(labels: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """(N, K) float32: 1 where class k occurs in image n (ignored pixels excluded)."""
    flat = labels.flatten(1)
    spare = torch.where(flat == ignore_index, num_classes, flat)  # ignored pixels mark a spare column
    present = torch.zeros(labels.shape[0], num_classes + 1, device=labels.device)
    present.scatter_(1, spare, 1.0)
    return present[:, :num_classes]


def fst_loss(lr_feature: Tensor, hr_feature: Tensor) -> Tensor:
    """FST's similarity term: MSE between the (fused) LR feature, bilinearly resized to the HR feature's
    size when they differ, and the HR branch's feature of the same frame (no gradient to it).

    lr_feature: (N, C, h, w) float; hr_feature: (N, C, Hf, Wf) float. Mean over all N*C*Hf*Wf values.
    """
    resized = resize_bilinear(lr_feature.float(), (hr_feature.shape[-2], hr_feature.shape[-1]), align_corners=True)
    return F.mse_loss(resized, hr_feature.detach().float())
