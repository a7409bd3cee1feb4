"""Shared by the ONNX and bench tests: a random AR model per architecture and a tiny encoded clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from arseg_cli.model import arch_config, build_arseg
from arseg_cli.model.arseg import ARSeg
from arseg_cli.video.synthetic import make_clip, write_clip

CLIP_HW = (96, 128)


def random_model(arch: str = "camvid-bise18", scale: float | None = 0.5, seed: int = 0) -> ARSeg:
    """HR + AR (CReFF) branches at random init, with non-trivial BatchNorm statistics (so that folding
    them in the inference path changes the arithmetic the check compares)."""
    torch.manual_seed(seed)
    model = build_arseg(arch_config(arch).model_meta(scale=scale, keyframe_interval=4))
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(0.1 * torch.randn(module.num_features, generator=gen))
            module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=gen))
    return model.eval()


def write_small_clip(path: Path, frames: int = 6, size_hw: tuple[int, int] = CLIP_HW) -> Path:
    """A panning textured clip (H.264, no B-frames, keyframe every 12) of `frames` frames."""
    clip = make_clip(frames=frames, height=size_hw[0], width=size_hw[1], pan_px=(3, 1), object_px=(-4, 2), object_size=32)
    return write_clip([np.ascontiguousarray(f) for f in clip.frames], path)
