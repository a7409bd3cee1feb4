"""ResNet-18: plain (output stride 32) and the two dilated output-stride-8 layouts of the AR-Seg models.

Module names (conv1, bn1, layer1..4, blocks' conv1/bn1/conv2/bn2/downsample) are torchvision's, which is
what every official AR-Seg checkpoint uses below its family prefix.

Layouts (per block of layer3 / layer4: stride, dilation of conv1, dilation of conv2):
- "plain":      layer2..4 first block stride 2, no dilation (BiSeNet's context path).
- "os8":        layer3/4 stride 1; first block undilated, second block dilated 2 / 4 in both convs
                (the official CamVid PSPNet's extractor).
- "os8_semseg": layer3/4 stride 1; conv2 of every block dilated 2 / 4, conv1 of the second block too,
                conv1 of the first block undilated (the semseg-style PSPNet of the Cityscapes models).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

Layout = Literal["plain", "os8", "os8_semseg"]

#: layout -> for layer3 and layer4: ((stride, dilation conv1, dilation conv2) of block 0, ... of block 1)
_DEEP_LAYERS: dict[str, tuple[tuple[tuple[int, int, int], ...], ...]] = {
    "plain": (((2, 1, 1), (1, 1, 1)), ((2, 1, 1), (1, 1, 1))),
    "os8": (((1, 1, 1), (1, 2, 2)), ((1, 1, 1), (1, 4, 4))),
    "os8_semseg": (((1, 1, 2), (1, 2, 2)), ((1, 1, 4), (1, 4, 4))),
}


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias that keeps the size at stride 1 (padding = dilation)."""
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN with a residual connection; a 1x1 conv-BN shortcut when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dilations: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride, dilations[0])
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_ch, out_ch, 1, dilations[1])
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


def _layer(in_ch: int, out_ch: int, blocks: tuple[tuple[int, int, int], ...]) -> nn.Sequential:
    return nn.Sequential(
        *(BasicBlock(in_ch if i == 0 else out_ch, out_ch, stride, (d1, d2)) for i, (stride, d1, d2) in enumerate(blocks))
    )


class ResNet18(nn.Module):
    """ResNet-18 without its classifier; `forward` returns the outputs of layer2, layer3 and layer4.

    Output strides of (layer2, layer3, layer4): (8, 16, 32) for "plain", (8, 8, 8) for the OS-8 layouts;
    channels (128, 256, 512). Sizes follow ceil division at every stride-2 step (any input size works).
    """

    def __init__(self, layout: Layout = "plain") -> None:
        super().__init__()
        if layout not in _DEEP_LAYERS:
            raise ValueError(f"unknown ResNet-18 layout {layout!r}: use one of {', '.join(_DEEP_LAYERS)}")
        self.layout = layout
        layer3, layer4 = _DEEP_LAYERS[layout]
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _layer(64, 64, ((1, 1, 1), (1, 1, 1)))
        self.layer2 = _layer(64, 128, ((2, 1, 1), (1, 1, 1)))
        self.layer3 = _layer(128, 256, layer3)
        self.layer4 = _layer(256, 512, layer4)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def stem(self) -> nn.Sequential:
        """conv1-bn1-relu-maxpool as one Sequential sharing these modules (keys `0` = conv1, `1` = bn1)."""
        return nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        return c2, c3, self.layer4(c3)


def resnet18(layout: Layout = "plain") -> ResNet18:
    """A randomly initialised ResNet-18 backbone of the given layout (see the module docstring)."""
    return ResNet18(layout)
