"""camvid-psp18: the official AR-Seg CamVid PSPNet (ResNet-18 OS 8, PSP head, x2 upsampling decoder).

F is 64 channels at 8x the backbone's output size (the input size when it is a multiple of 8); the scores
are `final_conv` of F, resized to the image (bilinear, align_corners=True), then LogSoftmax over classes.
Key names: `feats.*` (backbone), `psp.*`, `up_{1,2,3}.*`, `final_conv.*`, `classifier.*` (training-only
image-level auxiliary head on layer3), and `fuse_attention.*` in AR networks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from arseg_cli.model._native_creff import native_labels
from arseg_cli.model._registry import register
from arseg_cli.model._segnet import SegNet, finish
from arseg_cli.model.architecture import CAMVID_DATA, CAMVID_MEAN, CAMVID_RECIPE, CAMVID_STD
from arseg_cli.model.architecture import ArchConfig, AuxHead, OfficialCheckpoint, PaperFigures
from arseg_cli.model.backbones import resnet18
from arseg_cli.model.meta import WarpConvention
from arseg_cli.model.resize import resize_bilinear

#: F is 64 channels at the input size (stride 1); the output is log-probabilities.
CAMVID_PSP18 = ArchConfig(
    arch="camvid-psp18", data=CAMVID_DATA, mean=CAMVID_MEAN, std=CAMVID_STD,
    feature_stride=1, feature_channels=64, log_probs=True, pixel_loss="ce",
    official=OfficialCheckpoint(backbone_key="feats.conv1.weight", classifier_key="final_conv.weight"),
    paper=PaperFigures(309.3, 77.2, 5.5, miou_hr=69.43, miou_lr=66.56, miou_ar=70.48,
                       aux_in_macs=frozenset({"hr", "lr"}), resizing_in_macs=False),  # fmt: skip
    recipe=CAMVID_RECIPE,
    # BCE on "class present in the labels", weight 1.0 (AR-Seg's CamVid training script).
    aux_heads=(AuxHead("classifier", "classes_present", 1.0),),
)


class PyramidPooling(nn.Module):
    """PSP module: per bin an adaptive average pool and a 1x1 conv (no bias, no BN), upsampled back
    (bilinear, align_corners=False); concat [bin 1, 2, 3, 6, input] -> 1x1 conv (with bias) -> ReLU."""

    def __init__(self, channels: int = 512, out_channels: int = 1024, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(channels, channels, 1, bias=False)) for b in bins
        )
        self.bottleneck = nn.Conv2d(channels * (len(bins) + 1), out_channels, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        size = (x.shape[-2], x.shape[-1])
        priors = [resize_bilinear(stage(x), size, align_corners=False) for stage in self.stages]
        return self.relu(self.bottleneck(torch.cat([*priors, x], dim=1)))


class Upsample2x(nn.Module):
    """x2 bilinear upsampling (align_corners=False), then 3x3 conv (with bias) - BN - PReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.PReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(resize_bilinear(x, (2 * x.shape[-2], 2 * x.shape[-1]), align_corners=False))


class CamVidPSPNet(SegNet):
    """The network; `features_and_aux(aux=True)` also returns the image-level class scores (N, K)."""

    backbone_name = "feats"  # the dilated ResNet-18

    arch = CAMVID_PSP18.arch
    feature_channels = CAMVID_PSP18.feature_channels

    def __init__(self, num_classes: int = 12) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.feats = resnet18("os8")
        self.psp = PyramidPooling(512, 1024)
        self.drop_1 = nn.Dropout2d(p=0.3)
        self.up_1 = Upsample2x(1024, 256)
        self.up_2 = Upsample2x(256, 64)
        self.up_3 = Upsample2x(64, 64)
        self.drop_2 = nn.Dropout2d(p=0.15)
        self.final_conv = nn.Conv2d(64, num_classes, 1)
        self.classifier = nn.Sequential(nn.Linear(256, 256), nn.ReLU(inplace=True), nn.Linear(256, num_classes))

    def features_and_aux(self, x: Tensor, *, aux: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
        _, c3, c4 = self.feats(x)
        p = self.drop_1(self.psp(c4))
        for up in (self.up_1, self.up_2, self.up_3):
            p = self.drop_2(up(p))
        if not aux:
            return p, ()
        return p, (self.classifier(F.adaptive_max_pool2d(c3, 1).flatten(1)),)

    def to_image_size(self, scores: Tensor, size: tuple[int, int]) -> Tensor:
        return F.log_softmax(resize_bilinear(scores, size, align_corners=True), dim=1)

    def labels(self, scores: Tensor, size: tuple[int, int]) -> Tensor:
        """The argmax of the resized scores: log_softmax subtracts one number per pixel, which cannot
        change it (up to ties that rounding makes)."""
        labels = native_labels(scores, size, align_corners=True)
        if labels is None:
            labels = resize_bilinear(scores, size, align_corners=True).argmax(dim=1).to(torch.uint8)
        return labels


@register(CAMVID_PSP18)
def camvid_psp18(num_classes: int | None = None, fuse: bool = False, warp: WarpConvention = "exact") -> SegNet:
    """CamVid PSPNet-18 (12 classes: 11 + Void); with `fuse`, the AR network's CReFF too."""
    return finish(CamVidPSPNet(num_classes or CAMVID_PSP18.num_classes), fuse=fuse, warp=warp)
