"""The per-frame model step of AR-Seg, the one implementation `arseg segment` and `arseg eval` share.

Which model runs is decided before (`arseg_cli.model.weights_specs.load_model` reads `--weights`); the
step calls only the `ModelBackend` protocol (arseg_cli.model.protocol), so it runs either backend.

Keyframe: the HR network on the normalised frame -> class scores and the feature CReFF fuses later.
Non-keyframe: the frame downscaled by s (bilinear, align_corners=True, as the official evaluation), the
LR branch with CReFF fusing the keyframe feature warped along the backward flow to the keyframe.
Labels: `model.resize.scores_to_labels` (scores upsampled bilinearly to the wanted size, argmax).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from arseg_cli.errors import OptionsError
from arseg_cli.model.protocol import ModelBackend
from arseg_cli.model.resize import downscale
from arseg_cli.scale_interval import check_scale


class FrameStep:
    """AR-Seg's forward passes on batches of frames, on the model's device.

    model: either backend; `scale`: the LR scale s of non-keyframes (None: the weights' own).
    `half`: run in float16 (CUDA only): the model is converted in place. The model is readied for
    inference here (`optimize_for_inference`: ARSeg's folded copies), so the first frame does not pay.
    Call inside `torch.inference_mode()` for the fast folded inference copies (ARSeg's docstring).
    """

    def __init__(self, model: ModelBackend, scale: float | None = None, *, half: bool = False) -> None:
        chosen = check_scale(scale if scale is not None else (model.meta.scale or 1.0))
        if half and model.device.type != "cuda":
            raise OptionsError("`half` needs a CUDA device (float16 on the CPU is slower, not faster)")
        self.model = model.optimize_for_inference(half=half)
        self.scale = float(chosen)
        self.dtype = self.model.dtype

    def inputs(self, rgb: np.ndarray) -> Tensor:
        """(N, 3, H, W) normalised input from RGB uint8 (H, W, 3) or (N, H, W, 3)."""
        return self.model.normalize(rgb).to(self.dtype)

    def key(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(scores (N, K, H, W), feature) of normalised HR frames x: the HR network."""
        return self.model.keyframe(x)

    def nonkey(self, x: Tensor, feat: Tensor, flow_px: np.ndarray | Tensor) -> Tensor:
        """scores (N, K, H, W) of normalised HR frames x (downscaled here by s), fusing the keyframe
        feature `feat` warped along `flow_px` (N, 2, H, W) float32 backward flow to the keyframe, pixels."""
        flow = torch.as_tensor(flow_px).to(device=x.device, dtype=self.dtype)
        return self.model.nonkeyframe(downscale(x, self.scale), feat, flow)

    def key_labels(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(labels (N, H, W) uint8, feature): `key`'s argmax over classes, as the backend makes it
        cheapest (`ModelBackend.keyframe_labels`)."""
        return self.model.keyframe_labels(x)

    def nonkey_labels(self, x: Tensor, feat: Tensor, flow_px: np.ndarray | Tensor) -> Tensor:
        """(N, H, W) uint8: `nonkey`'s argmax over classes (as `key_labels`)."""
        flow = torch.as_tensor(flow_px).to(device=x.device, dtype=self.dtype)
        return self.model.nonkeyframe_labels(downscale(x, self.scale), feat, flow)

    def lowres(self, x: Tensor) -> Tensor:
        """scores of normalised HR frames x downscaled by s through the plain LR network (no fusion)."""
        x_lr = downscale(x, self.scale)
        return self.model.lowres(x_lr, (x_lr.shape[-2], x_lr.shape[-1]))

    def hr_on_lowres(self, x: Tensor) -> Tensor:
        """scores of the HR network on normalised HR frames x downscaled by s (the LR baseline without
        an LR network)."""
        return self.model.keyframe(downscale(x, self.scale))[0]


__all__ = ["FrameStep"]
