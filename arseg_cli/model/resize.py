"""Bilinear resizing of images, features, flow and class scores: the one place arseg calls interpolate
for it, so that every stage sizes things by the same rule."""

from __future__ import annotations

from torch import Tensor, nn

from arseg_cli.scale_interval import check_scale


def resize_bilinear(x: Tensor, size: tuple[int, int], *, align_corners: bool) -> Tensor:
    """Bilinear resize of (N, C, h, w) to `size`; returns x itself when the size already matches."""
    if (x.shape[-2], x.shape[-1]) == tuple(size):
        return x
    return nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def lr_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The LR input size for scale s, as the official evaluation makes it: (int(H*s), int(W*s))."""
    check_scale(scale)
    return int(height * scale), int(width * scale)


def downscale(x: Tensor, scale: float) -> Tensor:
    """(N, C, int(H*s), int(W*s)): bilinear, align_corners=True, as the official evaluation; identity at 1."""
    return resize_bilinear(x, lr_size(x.shape[-2], x.shape[-1], scale), align_corners=True)


def scores_to_labels(scores: Tensor, size: tuple[int, int]) -> Tensor:
    """(N, H, W) int64 class ids on the scores' device: (N, K, h, w) scores upsampled bilinearly
    (align_corners=True) to `size` = (H, W), argmax over K."""
    if (scores.shape[-2], scores.shape[-1]) != tuple(size):
        scores = resize_bilinear(scores.float(), size, align_corners=True)
    return scores.argmax(dim=1)
