"""An optional per-pixel gate after CReFF: arseg's extension, not part of the paper's network.

CReFF returns `up + A`: the upsampled LR feature plus the attention-weighted value of the warped
keyframe feature. The shared classifier is one linear layer, so the fused logits are a sum of the two
terms' logits with the same weight everywhere: nothing lets a pixel lean on the keyframe where its
warp holds and on the LR frame where it does not (content that came into view since the keyframe,
places the block motion could not follow). Nor can the keyframe's HR feature itself reach the
classifier: only its attention-weighted value does. The gate computes three weights per feature pixel
from the two terms and the warped keyframe feature W,

    fused = a * up + b * A + c * W,   (a, b, c + 1) = 2 * sigmoid(conv3x3(relu(conv1x1([up, A, W]))))

Its last convolution starts at zero, so a = b = 1 and c = 0: a model given a new gate computes exactly
what it computed without one. State-dict keys: `fusion_gate.*` beside the official `fuse_attention.*`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Channels of the gate's hidden layer.
GATE_HIDDEN = 32


class FusionGate(nn.Module):
    """forward(up, fused = up + A, warped) -> a * up + b * A + c * warped; all (N, C, H, W)."""

    def __init__(self, channels: int, hidden: int = GATE_HIDDEN) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(3 * channels, hidden, kernel_size=1)
        self.weigh = nn.Conv2d(hidden, 3, kernel_size=3, padding=1)
        nn.init.zeros_(self.weigh.weight)
        nn.init.zeros_(self.weigh.bias)

    def forward(self, up: Tensor, fused: Tensor, warped: Tensor) -> Tensor:
        keyframe_term = fused - up
        hidden = torch.relu(self.reduce(torch.cat((up, keyframe_term, warped), dim=1)))
        weights = 2.0 * torch.sigmoid(self.weigh(hidden))
        return weights[:, :1] * up + weights[:, 1:2] * keyframe_term + (weights[:, 2:] - 1.0) * warped
