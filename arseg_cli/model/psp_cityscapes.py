"""cityscapes-psp18: the official AR-Seg Cityscapes PSPNet (semseg-style PPM on a dilated ResNet-18).

F is the 512-channel output of `cls[:-1]` (3x3 conv - BN - ReLU - dropout) at output stride 8; the scores
are `final_conv` of F (the module also stored as `cls.4`), resized to the image (bilinear,
align_corners=True) as the official evaluation does. Key names: `layer0.{0,1}` (stem conv1, bn1),
`layer1..4`, `ppm.features.*`, `cls.*`, `final_conv.*` (= `cls.4.*`), `aux.*` (training-only head on
layer3), and `fuse_attention.*` in AR networks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from arseg_cli.model._registry import register
from arseg_cli.model._segnet import SegNet, finish
from arseg_cli.model.architecture import CITYSCAPES_DATA, CITYSCAPES_RECIPE, IMAGENET_MEAN, IMAGENET_STD
from arseg_cli.model.architecture import ArchConfig, AuxHead, OfficialCheckpoint, PaperFigures
from arseg_cli.model.backbones import resnet18
from arseg_cli.model.meta import WarpConvention
from arseg_cli.model.resize import resize_bilinear

CITYSCAPES_PSP18 = ArchConfig(
    arch="cityscapes-psp18", data=CITYSCAPES_DATA, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    feature_stride=8, feature_channels=512, log_probs=False, pixel_loss="ce",
    # Phase-1 HR files lack the `final_conv` alias of `cls.4`; the official evaluation builds the HR
    # network with the fusion class, so HR files may carry unused CReFF keys.
    official=OfficialCheckpoint(
        backbone_key="layer0.0.weight",
        classifier_key="cls.4.weight",
        key_aliases={"final_conv.weight": "cls.4.weight", "final_conv.bias": "cls.4.bias"},
        hr_may_hold_creff=True,
    ),
    # The published LR figure (135.2 G) matches only without the aux head: measured on a net skipping it.
    paper=PaperFigures(561.4, 135.2, None, miou_hr=68.30, miou_lr=66.80, miou_ar=69.03,
                       aux_in_macs=frozenset({"hr"}), resizing_in_macs=False),  # fmt: skip
    recipe=CITYSCAPES_RECIPE,
    aux_heads=(AuxHead("aux", "pixels", 0.4),),  # semseg PSPNet's layer3 head
)


class PyramidPoolingModule(nn.Module):
    """Per bin: adaptive average pool -> 1x1 conv (no bias) - BN - ReLU, upsampled back (bilinear,
    align_corners=True); output concat [input, bin 1, 2, 3, 6] (input first)."""

    def __init__(self, channels: int = 512, reduction: int = 128, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.features = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(channels, reduction, 1, bias=False),
                nn.BatchNorm2d(reduction),
                nn.ReLU(inplace=True),
            )
            for b in bins
        )

    def forward(self, x: Tensor) -> Tensor:
        size = (x.shape[-2], x.shape[-1])
        return torch.cat([x, *(resize_bilinear(f(x), size, align_corners=True) for f in self.features)], dim=1)


def _head(in_channels: int, mid_channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid_channels),
        nn.ReLU(inplace=True),
        nn.Dropout2d(p=0.1),
        nn.Conv2d(mid_channels, num_classes, 1),
    )


class CityscapesPSPNet(SegNet):
    """The network; `features_and_aux(aux=True)` also returns the layer3 head's scores (N, K, H/8, W/8)."""

    arch = CITYSCAPES_PSP18.arch
    feature_channels = CITYSCAPES_PSP18.feature_channels

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.num_classes = num_classes
        backbone = resnet18("os8_semseg")
        self.layer0 = backbone.stem()
        self.layer1, self.layer2, self.layer3, self.layer4 = backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4
        self.ppm = PyramidPoolingModule(512, 128)
        self.cls = _head(1024, 512, num_classes)
        self.final_conv = self.cls[4]  # the same module under a second name, as in the official checkpoints
        self.aux = _head(256, 256, num_classes)

    def features_and_aux(self, x: Tensor, *, aux: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
        c3 = self.layer3(self.layer2(self.layer1(self.layer0(x))))
        feat = self.ppm(self.layer4(c3))
        for module in self.cls[:-1]:
            feat = module(feat)
        return feat, ((self.aux(c3),) if aux else ())

    def to_image_size(self, scores: Tensor, size: tuple[int, int]) -> Tensor:
        return resize_bilinear(scores, size, align_corners=True)


@register(CITYSCAPES_PSP18)
def cityscapes_psp18(num_classes: int | None = None, fuse: bool = False, warp: WarpConvention = "exact") -> SegNet:
    """Cityscapes PSPNet-18 (19 train ids); with `fuse`, the AR network's CReFF too."""
    return finish(CityscapesPSPNet(num_classes or CITYSCAPES_PSP18.num_classes), fuse=fuse, warp=warp)
