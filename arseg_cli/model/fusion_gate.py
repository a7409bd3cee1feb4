"""An optional per-pixel gate on CReFF's two terms: arseg's extension, not part of the paper's network.

CReFF returns `up + A`: the upsampled LR feature plus the attention-weighted value of the warped
keyframe feature. The shared classifier is one linear layer, so the fused logits are a sum of the two
terms' logits with the same weight everywhere: nothing lets a pixel lean on the keyframe where its
warp holds and on the LR frame where it does not (content that came into view since the keyframe,
places the block motion could not follow). The gate computes two weights per feature pixel from both
terms,

    fused = a * up + b * A,   (a, b) = 2 * sigmoid(conv3x3(relu(conv1x1([up, A]))))

Its last convolution starts at zero, so a = b = 1 and a model given a new gate computes exactly what it
computed without one. State-dict keys: `fusion_gate.*` beside the official `fuse_attention.*`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Channels of the gate's hidden layer.
GATE_HIDDEN = 32


class FusionGate(nn.Module):
    """forward(up (N, C, H, W), fused = up + A (N, C, H, W)) -> a * up + b * A."""

    def __init__(self, channels: int, hidden: int = GATE_HIDDEN) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(2 * channels, hidden, kernel_size=1)
        self.weigh = nn.Conv2d(hidden, 2, kernel_size=3, padding=1)
        nn.init.zeros_(self.weigh.weight)
        nn.init.zeros_(self.weigh.bias)

    def forward(self, up: Tensor, fused: Tensor) -> Tensor:
        keyframe_term = fused - up
        weights = 2.0 * torch.sigmoid(self.weigh(torch.relu(self.reduce(torch.cat((up, keyframe_term), dim=1)))))
        return weights[:, :1] * up + weights[:, 1:] * keyframe_term
