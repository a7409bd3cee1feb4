"""The per-batch training objective of each phase, as an nn.Module so that DDP can wrap it.

Phase hr: the HR network on the current frame at 1.0x: segmentation + auxiliary losses.
Phase lr: the LR network (the paper's separately trained LR baseline) on the current frame downscaled by
s, scored at the labels' size: segmentation + auxiliary losses.
Phase ar: the HR branch (frozen, eval mode) gives the keyframe feature and, for FST, the current frame's
feature; the LR branch runs on the current frame downscaled by s (as inference does), CReFF fuses the
warped keyframe feature, the shared frozen classifier scores it: segmentation + auxiliary losses of the
LR branch + fst_weight * MSE(fused LR feature, HR feature). Without CReFF (the plain warm-up steps) the
LR feature itself is classified and compared. The frozen HR features are rounded to float16
(feature_cache.round_frozen), so that a run that caches them computes what one without a cache does.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from arseg_cli.model import arch_config
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model._segnet import SegNet
from arseg_cli.train.feature_cache import FeatureCache, round_frozen
from arseg_cli.train.losses import PixelLoss, auxiliary_loss, fst_loss, segmentation_loss


class Losses(NamedTuple):
    """The terms of one batch's loss (float32 scalars); `total` is what is minimised (a tuple, which DDP
    searches for the tensors of the backward pass)."""

    total: Tensor
    seg: Tensor
    aux: Tensor
    fst: Tensor

    def detached(self) -> dict[str, float]:
        return {name: float(value.detach()) for name, value in zip(self._fields, self)}


class PhaseObjective(nn.Module):
    """forward(key, cur, flow, labels, use_creff, slots) -> Losses for one batch.

    key, cur: (N, 3, H, W) uint8 RGB (keyframe, labelled current frame); flow: (N, 2, H, W) float32
    backward flow cur -> key in pixels; labels: (N, H, W) int64, 255 = ignore; slots: the items'
    feature-cache slots (phase ar with `feature_cache`), else None. `loss`: the pixel loss.
    """

    def __init__(
        self, model: ARSeg, phase: str, *, fst_weight: float = 1.0, loss: PixelLoss = "ce",
        feature_cache: FeatureCache | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        if phase == "ar" and (model.hr is None or model.lr is None or not model.has_creff):
            raise ValueError("phase ar needs a model with an HR branch and an LR branch with CReFF")
        if phase == "hr" and model.hr is None:
            raise ValueError("phase hr needs a model with an HR branch")
        if phase == "lr" and (model.lr is None or model.has_creff):
            raise ValueError("phase lr needs a model with a plain LR network (no CReFF)")
        self.model = model
        self.phase = phase
        self.fst_weight = fst_weight
        self.loss = loss
        self.feature_cache = feature_cache
        self.register_buffer("mean", torch.tensor(model.meta.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(model.meta.std).view(1, 3, 1, 1), persistent=False)
        self.log_probs = arch_config(model.arch).log_probs

    def normalize(self, rgb: Tensor) -> Tensor:
        """(N, 3, H, W) uint8 -> normalised float32, as ARSeg.normalize does for (N, H, W, 3)."""
        return (rgb.float().div(255.0) - self.mean) / self.std

    def forward(
        self, key: Tensor, cur: Tensor, flow: Tensor, labels: Tensor, use_creff: bool = True, slots: list[int] | None = None
    ) -> Losses:
        x_cur = self.normalize(cur)
        size = (labels.shape[-2], labels.shape[-1])
        if self.phase in ("hr", "lr"):
            net: SegNet = self.model.hr if self.phase == "hr" else self.model.lr  # type: ignore[assignment]
            x = x_cur if self.phase == "hr" else self.model.downscale(x_cur)
            feat, aux = net.features_and_aux(x, aux=True)
            return self._losses(net, feat, aux, labels, size, fst=None)
        lr: SegNet = self.model.lr  # type: ignore[assignment]
        key_feat, target = self.frozen_features(key, x_cur, slots)
        lr_feat, aux = lr.features_and_aux(self.model.downscale(x_cur), aux=True)
        if use_creff:
            feat = lr.fuse(lr_feat, key_feat, flow.float())
        else:
            feat = lr_feat
        fst = fst_loss(feat, target) if self.fst_weight > 0 and target is not None else None
        return self._losses(lr, feat, aux, labels, size, fst=fst)

    def frozen_features(self, key: Tensor, x_cur: Tensor, slots: list[int] | None) -> tuple[Tensor, Tensor | None]:
        """Phase ar: the frozen HR branch's features of the keyframes and of the current frames, rounded
        to float16; from the feature cache where it holds them (then stored for the rest). Without a
        cache and without FST (fst_weight 0) the current frames' feature is not needed: None."""
        hr: SegNet = self.model.hr  # type: ignore[assignment]
        cache = self.feature_cache
        if cache is None or slots is None:
            with torch.no_grad():
                made_key = round_frozen(hr.features(self.normalize(key)))
                made_target = round_frozen(hr.features(x_cur)) if self.fst_weight > 0 else None
            return made_key, made_target
        todo = cache.missing(slots)
        if todo:
            with torch.no_grad():
                made_key = round_frozen(hr.features(self.normalize(key[todo])))
                made_target = round_frozen(hr.features(x_cur[todo]))
            cache.put([slots[i] for i in todo], made_key, made_target)
        return cache.get(slots, key.device)  # type: ignore[union-attr,arg-type]

    def _losses(
        self, net: SegNet, feat: Tensor, aux: tuple[Tensor, ...], labels: Tensor, size: tuple[int, int], *, fst: Tensor | None
    ) -> Losses:
        scores = net.to_image_size(net.classify(feat), size)
        seg = segmentation_loss(scores, labels, log_probs=self.log_probs, kind=self.loss)
        aux_term = auxiliary_loss(self.model.arch, aux, labels, kind=self.loss)
        fst_term = fst if fst is not None else seg.new_zeros(())
        total = seg + aux_term + self.fst_weight * fst_term
        return Losses(total=total, seg=seg, aux=aux_term, fst=fst_term)

