"""bise18: the official AR-Seg BiSeNetV1 with a plain ResNet-18 (registered as camvid-bise18, cityscapes-bise18).

F is the 256-channel output of the head's 3x3 ConvBNReLU (`conv_out.conv`, also stored as
`feat_conv_out`) at output stride 8; the scores are the head's 1x1 conv (`conv_out.conv_out`, also stored as
`final_conv`) of F, upsampled x8 (bilinear, align_corners=False) as the head does, then - only when that is
not already the image size - resized to it (bilinear, align_corners=True) as the official evaluation does.
Key names: `cp.*` (context path, backbone at `cp.resnet`), `sp.*` (spatial path), `ffm.*`, `conv_out.*`,
`feat_conv_out.*`, `final_conv.*`, `conv_out16.*`, `conv_out32.*` (training-only auxiliary heads), and
`fuse_attention.*` in AR networks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from arseg_cli.model._native_creff import native_labels
from arseg_cli.model._registry import register
from arseg_cli.model._segnet import SegNet, crop_to_extent, finish, pad_to_multiple
from arseg_cli.model.architecture import (
    CAMVID_DATA,
    CAMVID_MEAN,
    CAMVID_RECIPE,
    CAMVID_STD,
    CITYSCAPES_BISE_MEAN,
    CITYSCAPES_BISE_STD,
    CITYSCAPES_DATA,
    CITYSCAPES_RECIPE,
    ArchConfig,
    AuxHead,
    DataSetInfo,
    OfficialCheckpoint,
    PaperFigures,
    Recipe,
    Stats,
)
from arseg_cli.model.backbones import resnet18
from arseg_cli.model.meta import WarpConvention
from arseg_cli.model.resize import resize_bilinear


def _bise18_config(arch: str, data: DataSetInfo, mean: Stats, std: Stats, recipe: Recipe, paper: PaperFigures) -> ArchConfig:
    """The record of a BiSeNet-18 variant: one family, so one feature, key format and set of heads."""
    return ArchConfig(
        arch=arch, data=data, mean=mean, std=std, feature_stride=8, feature_channels=256, log_probs=False,
        pixel_loss="ohem", recipe=recipe,
        # BiSeNet's recipe: principal loss + both auxiliary losses (OHEM), weight 1.0.
        aux_heads=(AuxHead("conv_out16", "pixels", 1.0), AuxHead("conv_out32", "pixels", 1.0)),
        official=OfficialCheckpoint(backbone_key="cp.resnet.conv1.weight", classifier_key="conv_out.conv_out.weight"),
        # The stride-32 branch is resized onto the stride-16 grid: where 32 does not divide the input, the
        # grids are a fraction of a cell apart, which networks trained on dividing crops never saw.
        paper=paper, input_multiple=32,
    )  # fmt: skip


CAMVID_BISE18 = _bise18_config(
    "camvid-bise18", CAMVID_DATA, CAMVID_MEAN, CAMVID_STD, CAMVID_RECIPE,
    PaperFigures(60.2, 15.2, None, miou_hr=71.57, miou_lr=66.55, miou_ar=70.37, aux_in_macs=frozenset({"hr", "lr"}),
                 resizing_in_macs=True),
)  # fmt: skip
CITYSCAPES_BISE18 = _bise18_config(
    "cityscapes-bise18", CITYSCAPES_DATA, CITYSCAPES_BISE_MEAN, CITYSCAPES_BISE_STD, CITYSCAPES_RECIPE,
    PaperFigures(183.3, 45.2, None, miou_hr=70.09, miou_lr=66.89, miou_ar=70.37, aux_in_macs=frozenset({"hr", "lr"}),
                 resizing_in_macs=True),
)  # fmt: skip


class ConvBNReLU(nn.Module):
    """conv (no bias) - BN - ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class OutputHead(nn.Module):
    """3x3 ConvBNReLU to `mid` channels, 1x1 conv (with bias) to classes, x`up` bilinear upsampling."""

    def __init__(self, in_ch: int, mid_ch: int, num_classes: int, up: int) -> None:
        super().__init__()
        self.up = up
        self.conv = ConvBNReLU(in_ch, mid_ch)
        self.conv_out = nn.Conv2d(mid_ch, num_classes, 1)

    def upsample(self, scores: Tensor) -> Tensor:
        return F.interpolate(scores, scale_factor=float(self.up), mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.upsample(self.conv_out(self.conv(x)))


def _channel_attention(feat: Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tensor:
    """Per-channel gate of `feat`: sigmoid(BN(1x1 conv(global average)))."""
    return torch.sigmoid(bn(conv(feat.mean(dim=(2, 3), keepdim=True))))


class AttentionRefinement(nn.Module):
    """3x3 ConvBNReLU, then the result times its channel attention."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_ch, out_ch)
        self.conv_atten = nn.Conv2d(out_ch, out_ch, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv(x)
        return feat * _channel_attention(feat, self.conv_atten, self.bn_atten)


class ContextPath(nn.Module):
    """ResNet-18 with ARMs on layer3 (OS 16) and layer4 (OS 32) plus a global-average branch.

    Returns (OS-8 context feature, OS-16 context feature), 128 channels each. Upsampling is nearest x2;
    the OS-32 branch is then resized to layer3's size (bilinear, align_corners=True), which only matters
    when the input is not a multiple of 32.
    """

    def __init__(self) -> None:
        super().__init__()
        self.resnet = resnet18("plain")
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, kernel=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _, feat16, feat32 = self.resnet(x)
        global_context = self.conv_avg(feat32.mean(dim=(2, 3), keepdim=True))
        up32 = F.interpolate(self.arm32(feat32) + global_context, scale_factor=2.0, mode="nearest")
        up32 = self.conv_head32(resize_bilinear(up32, (feat16.shape[-2], feat16.shape[-1]), align_corners=True))
        up16 = F.interpolate(self.arm16(feat16) + up32, scale_factor=2.0, mode="nearest")
        return self.conv_head16(up16), up32


class SpatialPath(nn.Module):
    """Three stride-2 ConvBNReLUs (7x7, 3x3, 3x3; 64 channels) and a 1x1 ConvBNReLU to 128: OS 8."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(3, 64, kernel=7, stride=2)
        self.conv2 = ConvBNReLU(64, 64, stride=2)
        self.conv3 = ConvBNReLU(64, 64, stride=2)
        self.conv_out = ConvBNReLU(64, 128, kernel=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(self.conv3(self.conv2(self.conv1(x))))


class FeatureFusion(nn.Module):
    """concat [spatial, context] -> 1x1 ConvBNReLU -> plus itself times its channel attention."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(in_ch, out_ch, kernel=1)
        self.conv = nn.Conv2d(out_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        return feat + feat * _channel_attention(feat, self.conv, self.bn)


class BiSeNet18(SegNet):
    """The network; `features_and_aux(aux=True)` also returns the two auxiliary heads' scores, upsampled
    x8 (from the OS-8 context feature) and x16 (from the OS-16 one), as the official training uses them."""

    # BiSeNet's backbone is its context path (ResNet-18 + attention refinement), not the spatial path.
    backbone_name = "cp"

    feature_channels = 256

    def __init__(self, config: ArchConfig, num_classes: int | None) -> None:
        super().__init__()
        self.arch = config.arch
        self.num_classes = num_classes = num_classes or config.num_classes
        self.cp = ContextPath()
        self.sp = SpatialPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = OutputHead(256, 256, num_classes, up=8)
        # The same modules under second names, as in the official checkpoints.
        self.feat_conv_out = self.conv_out.conv
        self.final_conv = self.conv_out.conv_out
        self.conv_out16 = OutputHead(128, 64, num_classes, up=8)
        self.conv_out32 = OutputHead(128, 64, num_classes, up=16)

    def features_and_aux(self, x: Tensor, *, aux: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
        size = (x.shape[-2], x.shape[-1])
        padded = pad_to_multiple(x, self.input_multiple)
        context8, context16 = self.cp(padded)
        spatial = resize_bilinear(self.sp(padded), (context8.shape[-2], context8.shape[-1]), align_corners=True)
        feat = self.feat_conv_out(self.ffm(spatial, context8))
        extra = (self.conv_out16(context8), self.conv_out32(context16)) if aux else ()
        if padded is x:
            return feat, extra
        return crop_to_extent(feat, size, 8), tuple(crop_to_extent(scores, size, 1) for scores in extra)

    def to_image_size(self, scores: Tensor, size: tuple[int, int]) -> Tensor:
        return resize_bilinear(self.conv_out.upsample(scores), size, align_corners=True)

    def labels(self, scores: Tensor, size: tuple[int, int]) -> Tensor:
        up = self.conv_out.up
        if (scores.shape[-2] * up, scores.shape[-1] * up) == tuple(size):  # the x8 upsampling alone
            labels = native_labels(scores, size, align_corners=False, scale_factor=float(up))
            if labels is not None:
                return labels
        return super().labels(scores, size)


@register(CAMVID_BISE18)
def camvid_bise18(num_classes: int | None = None, fuse: bool = False, warp: WarpConvention = "exact") -> SegNet:
    """BiSeNetV1-18 for CamVid (12 classes: 11 + Void); with `fuse`, the AR network's CReFF too."""
    return finish(BiSeNet18(CAMVID_BISE18, num_classes), fuse=fuse, warp=warp)


@register(CITYSCAPES_BISE18)
def cityscapes_bise18(num_classes: int | None = None, fuse: bool = False, warp: WarpConvention = "exact") -> SegNet:
    """BiSeNetV1-18 for Cityscapes (19 train ids); with `fuse`, the AR network's CReFF too."""
    return finish(BiSeNet18(CITYSCAPES_BISE18, num_classes), fuse=fuse, warp=warp)
