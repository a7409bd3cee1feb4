"""The small interface every segmentation network family shares (features, classifier, output size)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from arseg_cli.model.creff import CReFF, warp_feature
from arseg_cli.model.fusion_gate import FusionGate
from arseg_cli.model.meta import WarpConvention
from arseg_cli.model.resize import resize_bilinear


class SegNet(nn.Module):
    """One branch of AR-Seg (HR, or LR with an optional CReFF): image -> feature F -> class scores.

    F is the input of the 1x1 classifier `final_conv`, the feature CReFF fuses. Families differ in where F
    lives (resolution, channels) and in how class scores reach image size; `to_image_size` holds that rule.
    Attribute names mirror the official AR-Seg modules, so official state dicts load with `strict=True`.
    """

    arch: str
    num_classes: int
    feature_channels: int
    final_conv: nn.Conv2d
    #: The attribute holding the module a 'shared' LR branch takes from the HR branch (None: not possible).
    backbone_name: str | None = None
    #: ModelMeta.input_multiple: the input is padded to a multiple of this (1: as given); families
    #: that honour it say so in their ArchConfig.input_multiple.
    input_multiple: int = 1

    def features_and_aux(self, x: Tensor, *, aux: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
        """F (N, C, Hf, Wf) float of normalised images x (N, 3, H, W), and the auxiliary training
        outputs when `aux` (family-specific; empty otherwise)."""
        raise NotImplementedError

    def features(self, x: Tensor) -> Tensor:
        """F (N, C, Hf, Wf) of normalised images x (N, 3, H, W)."""
        return self.features_and_aux(x, aux=False)[0]

    def classify(self, feat: Tensor) -> Tensor:
        """Raw class scores (N, K, Hf, Wf) of F: the 1x1 classifier `final_conv`."""
        return self.final_conv(feat)

    def to_image_size(self, scores: Tensor, size: tuple[int, int]) -> Tensor:
        """The scores the official evaluation takes argmax of, (N, K, *size), from `classify`'s output."""
        raise NotImplementedError

    def labels(self, scores: Tensor, size: tuple[int, int]) -> Tensor:
        """(N, *size) uint8 class ids of `classify`'s output: the argmax of `to_image_size`'s scores
        (families skip what cannot change it, and may take a native upsample-and-argmax)."""
        return self.to_image_size(scores, size).argmax(dim=1).to(torch.uint8)

    def use_classifier(self, classifier: nn.Conv2d) -> None:
        """Make `classifier` this network's `final_conv` under every name the current one has (the
        official nets register it twice, e.g. `cls.4`), so that two branches can share one module."""
        current = self.final_conv
        if classifier.weight.shape != current.weight.shape:
            raise ValueError(f"classifier of shape {tuple(classifier.weight.shape)} cannot replace {tuple(current.weight.shape)}")
        for module in list(self.modules()):
            for name, child in list(module._modules.items()):  # every name, duplicates included
                if child is current:
                    setattr(module, name, classifier)

    def use_backbone(self, other: SegNet) -> None:
        """Make `other`'s backbone module (`backbone_name`) this network's: the LR branch then runs the
        HR branch's backbone (ModelMeta.lr_backbone == 'shared'). Both must be of the same family."""
        if type(other) is not type(self):
            raise ValueError(f"cannot share a backbone between {type(self).__name__} and {type(other).__name__}")
        if self.backbone_name is None:
            raise ValueError(f"{type(self).__name__} has no single backbone module to share")
        setattr(self, self.backbone_name, getattr(other, self.backbone_name))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(scores at x's size (N, K, H, W), F): the per-frame forward of this branch."""
        feat = self.features(x)
        return self.to_image_size(self.classify(feat), (x.shape[-2], x.shape[-1])), feat

    # --- CReFF ---------------------------------------------------------------------------------------
    def add_fusion(self, warp: WarpConvention) -> None:
        """Attach CReFF as `fuse_attention` (the official AR network's name, so its keys load)."""
        self.fuse_attention = CReFF(self.feature_channels, warp=warp)

    def add_gate(self) -> None:
        """Attach the per-pixel fusion gate as `fusion_gate` (fusion_gate.py; arseg's extension): fuse then
        weighs CReFF's two terms and the warped keyframe feature per pixel."""
        if not self.has_fusion:
            raise ValueError("the fusion gate weighs CReFF's terms: attach CReFF first")
        self.fusion_gate = FusionGate(self.feature_channels)

    @property
    def has_fusion(self) -> bool:
        return isinstance(getattr(self, "fuse_attention", None), nn.Module)

    @property
    def has_gate(self) -> bool:
        return isinstance(getattr(self, "fusion_gate", None), nn.Module)

    def fuse(self, lr_feat: Tensor, key_feat: Tensor, flow_px: Tensor) -> Tensor:
        """Fused feature (N, C, Hf, Wf) at key_feat's size: CReFF(LR feature, keyframe feature, flow).

        flow_px (N, 2, H, W) float: backward flow (x, y) at image resolution in image pixels, from the
        current frame to the keyframe.
        """
        creff: CReFF | None = getattr(self, "fuse_attention", None)
        if creff is None:
            raise RuntimeError(f"this {self.arch} network has no CReFF module (built without fuse=True)")
        fused = creff(lr_feat, key_feat, flow_px)
        gate: FusionGate | None = getattr(self, "fusion_gate", None)
        if gate is None:
            return fused
        up = resize_bilinear(lr_feat, (fused.shape[-2], fused.shape[-1]), align_corners=True)
        warped = warp_feature(key_feat, flow_px, creff.warp)
        return gate(up, fused.to(up.dtype), warped.to(up.dtype))


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """x (N, C, H, W) padded at the bottom and right, edge pixels repeated, to multiples of `multiple`."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def crop_to_extent(maps: Tensor, size: tuple[int, int], stride: int) -> Tensor:
    """The part of maps (N, C, h, w) at output stride `stride` that covers an input of `size`."""
    return maps[..., : math.ceil(size[0] / stride), : math.ceil(size[1] / stride)]


def finish(net: SegNet, *, fuse: bool, warp: WarpConvention) -> SegNet:
    """`net`, with CReFF attached when `fuse` (the builders' common last step)."""
    if fuse:
        net.add_fusion(warp)
    return net

