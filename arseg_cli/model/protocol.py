"""ModelBackend: what the segment pipeline asks of a model, whichever backend runs it.

Two backends implement it: `arseg_cli.model.arseg.ARSeg` (PyTorch) and `arseg_cli.onnx.runtime.OnnxARSeg`
(the exported graphs run by onnxruntime). The pipeline (`frame_step.py`, `group_step.py`, `pipeline.py`)
and `arseg bench` call only these members, so a third backend needs only them.

Tensors are torch tensors on `device`. Images are normalised (N, 3, H, W) of `dtype` (`normalize`);
flows are (N, 2, H, W) backward, HR pixels, to the keyframe; scores (N, K, H, W) at the HR size are
what the labels' argmax is taken of.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from arseg_cli.model.meta import ModelMeta


@runtime_checkable
class ModelBackend(Protocol):
    """The calls and facts of one AR-Seg model (module docstring)."""

    @property
    def meta(self) -> ModelMeta:
        """What the model is: architecture, classes, palette, normalisation, the weights' s and L."""
        ...

    @property
    def arch(self) -> str: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def scale(self) -> float | None:
        """The LR scale s of non-keyframes; None when there is no LR step."""
        ...

    @property
    def has_lr(self) -> bool:
        """Whether non-keyframes can run (an LR step exists); False: every frame is a keyframe."""
        ...

    @property
    def device(self) -> torch.device:
        """Where the calls take and return tensors."""
        ...

    @property
    def dtype(self) -> torch.dtype:
        """The float type of the images the calls take (float16 after `optimize_for_inference(half=True)`)."""
        ...

    @property
    def max_batch(self) -> int | None:
        """Most frames one call takes (None: any number)."""
        ...

    def normalize(self, rgb: np.ndarray | Tensor) -> Tensor:
        """(N, 3, H, W) float32 on `device` from RGB uint8 (H, W, 3) or (N, H, W, 3)."""
        ...

    def keyframe(self, x_hr: Tensor) -> tuple[Tensor, Tensor]:
        """(scores, feature) of normalised HR images: the HR step, its feature kept for CReFF."""
        ...

    def nonkeyframe(self, x_lr: Tensor, feat: Tensor, flow: Tensor) -> Tensor:
        """scores of normalised LR images (the HR frames downscaled by s), fusing the keyframe feature
        `feat` warped along `flow` (the LR + CReFF step); the output size is the flow's."""
        ...

    def keyframe_labels(self, x_hr: Tensor) -> tuple[Tensor, Tensor]:
        """(labels (N, H, W) uint8, feature): `keyframe`'s argmax over classes, as the backend makes it
        cheapest (the image-size scores need not exist)."""
        ...

    def nonkeyframe_labels(self, x_lr: Tensor, feat: Tensor, flow: Tensor) -> Tensor:
        """(N, H, W) uint8: `nonkeyframe`'s argmax over classes (as `keyframe_labels`)."""
        ...

    def lowres(self, x_lr: Tensor, size: tuple[int, int]) -> Tensor:
        """scores at `size` of the plain LR network (no fusion) on normalised LR images, where the
        backend has one (the LR baseline of `arseg eval`); OptionsError otherwise."""
        ...

    def optimize_for_inference(self, *, half: bool = False) -> ModelBackend:
        """Ready for inference calls (eval mode, whatever the backend prepares ahead); `half`: float16
        (OptionsError where the backend has none). Returns the model."""
        ...


__all__ = ["ModelBackend"]
