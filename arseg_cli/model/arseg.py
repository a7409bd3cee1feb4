"""ARSeg: the HR keyframe branch, the LR non-keyframe branch with CReFF, and their per-frame calls.

Branches (all optional but one): `hr` (per-frame HR network), `lr` (LR network at scale s; with CReFF
as `lr.fuse_attention` in an AR model, without it in the plain LR baseline). state_dict keys are
`hr.<official HR key>` and `lr.<official AR/LR key>`.

Shared classifier: in a model with both branches and CReFF, the LR branch's `final_conv` is the HR
branch's module (FST trains the LR branch against the frozen HR classifier), so `lr.final_conv.*` and
`hr.final_conv.*` are one tensor. Official AR files store their own copy; `load_official` keeps it as a
separate module only when it differs from the HR file's (`meta.lr_classifier == 'own'`).

Speed: in eval mode with autograd off (`torch.inference_mode()`), the calls run an inference copy of each
branch with BatchNorm folded into the convolutions (channels-last when `channels_last`); the copy is
rebuilt whenever a weight changes, and the state_dict is never touched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from arseg_cli.errors import InputError, OptionsError
from arseg_cli.model._fold import fold_batchnorms, state_signature
from arseg_cli.model._registry import build, input_multiple_problem
from arseg_cli.model._compiled_attention import compile_failed
from arseg_cli.model._segnet import SegNet
from arseg_cli.model.creff import CReFF
from arseg_cli.model.meta import ModelMeta
from arseg_cli.model.resize import downscale
from arseg_cli.scale_interval import check_scale


class ARSeg(nn.Module):
    """AR-Seg model, the PyTorch backend of `ModelBackend` (protocol.py). Inputs are normalised float
    images (see `normalize`); outputs are the scores the official evaluation takes argmax of, at the HR
    image size: log-probabilities for camvid-psp18, bilinearly upsampled class scores for the OS-8 models.

    meta:    what the model is (arch, classes, normalisation, scale s, warp convention, ...). The LR branch
             exists when `meta.scale` is set; it has CReFF when `meta.has_creff`.
    has_hr:  build the HR branch (False for a plain LR baseline).
    """

    hr: SegNet | None
    lr: SegNet | None

    def __init__(self, meta: ModelMeta, *, has_hr: bool = True) -> None:
        super().__init__()
        if not has_hr and meta.scale is None:
            raise OptionsError("a model needs an HR branch, an LR branch (scale set), or both")
        if meta.scale is not None:
            check_scale(meta.scale)
        self.meta = meta
        self.hr = build(meta.arch, num_classes=meta.num_classes) if has_hr else None
        self.lr = None
        if meta.scale is not None:
            self.lr = build(meta.arch, num_classes=meta.num_classes, fuse=meta.has_creff, warp=meta.warp)
            if meta.fusion_gate:
                if not meta.has_creff:
                    raise OptionsError("a fusion gate weighs CReFF's terms: it needs has_creff")
                self.lr.add_gate()
            if self.hr is not None and meta.has_creff and meta.lr_classifier == "shared":
                self.lr.use_classifier(self.hr.final_conv)
            if meta.lr_backbone == "shared":
                if self.hr is None:
                    raise OptionsError("lr_backbone 'shared' needs an HR branch to share the backbone with")
                try:
                    self.lr.use_backbone(self.hr)
                except ValueError as error:
                    raise OptionsError(f"{meta.arch}: lr_backbone 'shared' is not possible ({error})") from None
        for net in (self.hr, self.lr):
            if net is not None:
                use_input_multiple(net, meta)
        self.channels_last = True
        self._hr_frozen = False
        self._lr_frozen = False
        self._inference_copies: dict[str, tuple[Any, nn.Module]] = {}

    # --- facts --------------------------------------------------------------------------------------
    @property
    def arch(self) -> str:
        return self.meta.arch

    @property
    def scale(self) -> float | None:
        return self.meta.scale

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    @property
    def has_creff(self) -> bool:
        return self.lr is not None and self.lr.has_fusion

    @property
    def has_lr(self) -> bool:
        return self.lr is not None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    max_batch: int | None = None  # any batch: a keyframe group's non-keyframes run together

    # --- inputs -------------------------------------------------------------------------------------
    def normalize(self, rgb: np.ndarray | Tensor) -> Tensor:
        """(N, 3, H, W) float32 on the model's device from RGB uint8 (H, W, 3) or (N, H, W, 3): x/255,
        minus mean, over std (the checkpoint's normalisation). Channels-last in memory when the model
        runs its channels-last inference copies (eval mode, autograd off), else contiguous."""
        if isinstance(rgb, np.ndarray) and not rgb.flags.writeable:
            rgb = rgb.copy()
        images = torch.as_tensor(rgb)
        if images.dtype != torch.uint8 or images.dim() not in (3, 4) or images.shape[-1] != 3:
            raise InputError(f"expected RGB uint8 (H, W, 3) or (N, H, W, 3), got {images.dtype} {tuple(images.shape)}")
        if images.dim() == 3:
            images = images.unsqueeze(0)
        x = images.to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.meta.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.meta.std, device=x.device).view(1, 3, 1, 1)
        x = x.sub_(mean).div_(std)  # in place on the permuted (channels-last) images: no copy
        if getattr(self, "channels_last", False) and not self.training and not torch.is_grad_enabled():
            return x  # the layout the folded inference copies take
        return x.contiguous()

    def downscale(self, x_hr: Tensor) -> Tensor:
        """The LR input of an HR image batch, as the official evaluation makes it: size
        (int(H*s), int(W*s)), bilinear with align_corners=True."""
        scale = self._require_lr().scale
        assert scale is not None
        return downscale(x_hr, scale)

    # --- per-frame calls ----------------------------------------------------------------------------
    def keyframe(self, x_hr: Tensor) -> tuple[Tensor, Tensor]:
        """(logits (N, K, H, W), feat (N, C, Hf, Wf)) of normalised HR images x_hr (N, 3, H, W).

        feat is the feature CReFF fuses on the following non-keyframes. A plain LR baseline (no HR
        branch) runs its LR network on `downscale(x_hr)` instead and returns that network's feature.
        """
        return self._keyframe(x_hr, labels=False)

    def keyframe_labels(self, x_hr: Tensor) -> tuple[Tensor, Tensor]:
        """(labels (N, H, W) uint8, feat): `keyframe`'s argmax over classes, without the image-size
        scores where the network can skip them (`SegNet.labels`)."""
        return self._keyframe(x_hr, labels=True)

    def nonkeyframe(self, x_lr: Tensor, feat: Tensor, flow: Tensor) -> Tensor:
        """logits (N, K, H, W) of normalised LR images x_lr (N, 3, h, w), fusing the keyframe feature.

        feat: `keyframe`'s feature of the keyframe, (N, C, Hf, Wf).
        flow: (N, 2, H, W) float32 backward flow (x, y) in HR image pixels, current frame -> keyframe;
              its size is the output size. A plain LR network (no CReFF) ignores feat and flow's values.
        """
        return self._nonkeyframe(x_lr, feat, flow, labels=False)

    def nonkeyframe_labels(self, x_lr: Tensor, feat: Tensor, flow: Tensor) -> Tensor:
        """(N, H, W) uint8: `nonkeyframe`'s argmax over classes (as `keyframe_labels`)."""
        return self._nonkeyframe(x_lr, feat, flow, labels=True)

    def _keyframe(self, x_hr: Tensor, *, labels: bool) -> tuple[Tensor, Tensor]:
        _check_images(x_hr, "x_hr")
        size = (x_hr.shape[-2], x_hr.shape[-1])
        if self.hr is None:
            return self._run("lr", self.downscale(x_hr), size, labels=labels)
        return self._run("hr", x_hr, size, labels=labels)

    def _nonkeyframe(self, x_lr: Tensor, feat: Tensor, flow: Tensor, *, labels: bool) -> Tensor:
        self._require_lr()
        _check_images(x_lr, "x_lr")
        if flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != x_lr.shape[0]:
            raise InputError(f"flow must be (N, 2, H, W) with N = {x_lr.shape[0]}, got {tuple(flow.shape)}")
        size = (flow.shape[-2], flow.shape[-1])
        if not self.has_creff:
            return self._run("lr", x_lr, size, labels=labels)[0]
        net = self._branch("lr")
        if feat.dim() != 4 or feat.shape[:2] != (x_lr.shape[0], net.feature_channels):
            raise InputError(f"feat must be (N, {net.feature_channels}, Hf, Wf) with N = {x_lr.shape[0]}, got {tuple(feat.shape)}")
        scores = net.classify(net.fuse(net.features(self._layout(x_lr)), feat, flow))
        return net.labels(scores, size) if labels else net.to_image_size(scores, size)

    def lowres(self, x_lr: Tensor, size: tuple[int, int]) -> Tensor:
        """logits (N, K, *size) of the LR network alone (no fusion) on normalised x_lr (N, 3, h, w),
        resized as the official LR-baseline evaluation does."""
        self._require_lr()
        _check_images(x_lr, "x_lr")
        return self._run("lr", x_lr, size)[0]

    # --- training and speed -------------------------------------------------------------------------
    @property
    def classifier_shared(self) -> bool:
        """True when the LR branch's classifier is the HR branch's module."""
        return self.hr is not None and self.lr is not None and self.lr.final_conv is self.hr.final_conv

    def freeze_hr(self) -> None:
        """Freeze the HR branch, the shared classifier included (FST's second phase): no gradients, and
        eval mode (BatchNorm statistics fixed) even when the model is put in training mode."""
        if self.hr is None:
            raise OptionsError("this model has no HR branch to freeze")
        self.hr.requires_grad_(False)
        self._hr_frozen = True
        self.hr.eval()

    def freeze_all_but_gate(self) -> None:
        """Freeze everything but the LR branch's fusion gate (`arseg train --gate-only`): the HR branch as
        freeze_hr, the LR branch and CReFF likewise (no gradients, BatchNorm statistics fixed)."""
        if self.lr is None or not self.lr.has_gate:
            raise OptionsError("this model has no fusion gate to train")
        self.freeze_hr()
        self.lr.requires_grad_(False)
        self.lr.fusion_gate.requires_grad_(True)
        self._lr_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> ARSeg:
        super().train(mode)
        if self._hr_frozen and self.hr is not None:
            self.hr.eval()
        if self._lr_frozen and self.lr is not None:
            self.lr.eval()
            self.lr.fusion_gate.train(mode)
        return self

    def use_compiled_attention(self, enabled: bool = True) -> ARSeg:
        """Run CReFF's attention compiled by inductor in CPU inference (`_compiled_attention.py`: ~1.4x
        faster CReFF after a one-off compile, needs a C++ compiler); False: the uncompiled kernel."""
        for module in self.modules():
            if isinstance(module, CReFF):
                module.compiled_attention = enabled
        self._inference_copies.clear()  # the folded copies carry the setting they were made with
        return self

    @property
    def compiled_attention(self) -> bool:
        """Whether CReFF runs its attention compiled: asked for and not failed to compile in this process."""
        asked = any(isinstance(m, CReFF) and m.compiled_attention for m in self.modules())
        return asked and not compile_failed()

    def optimize_for_inference(self, *, half: bool = False) -> ARSeg:
        """Switch to eval mode (float16 with `half`) and build the folded inference copies now rather
        than on the first call."""
        if half:
            self.half()
        self.eval()
        for name in ("hr", "lr"):
            if getattr(self, name) is not None:
                self._inference_copy(name)
        return self

    def _branch(self, name: str) -> SegNet:
        """The branch itself, or its folded copy when running for inference only."""
        net: SegNet = getattr(self, name)
        if self.training or torch.is_grad_enabled():
            return net
        return self._inference_copy(name)  # type: ignore[return-value]

    def _inference_copy(self, name: str) -> nn.Module:
        net: SegNet = getattr(self, name)
        key = (state_signature(net), self.channels_last)
        cached = self._inference_copies.get(name)
        if cached is None or cached[0] != key:
            cached = (key, fold_batchnorms(net, channels_last=self.channels_last))
            self._inference_copies[name] = cached
        return cached[1]

    def _layout(self, x: Tensor) -> Tensor:
        if self.channels_last and not self.training and not torch.is_grad_enabled():
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def _run(self, name: str, x: Tensor, size: tuple[int, int], *, labels: bool = False) -> tuple[Tensor, Tensor]:
        net = self._branch(name)
        feat = net.features(self._layout(x))
        scores = net.classify(feat)
        return (net.labels(scores, size) if labels else net.to_image_size(scores, size)), feat

    def _require_lr(self) -> ModelMeta:
        if self.lr is None:
            raise OptionsError(f"this {self.arch} model has no LR branch (HR only): process every frame as a keyframe")
        return self.meta

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_inference_copies"] = {}
        return state


def build_arseg(meta: ModelMeta, *, has_hr: bool = True) -> ARSeg:
    """A freshly initialised ARSeg model as `meta` describes it (LR branch iff meta.scale is set, CReFF
    iff meta.has_creff); `has_hr=False` for a plain LR baseline without HR branch."""
    return ARSeg(meta, has_hr=has_hr)


def use_input_multiple(net: SegNet, meta: ModelMeta) -> None:
    """Have `net` pad its input as `meta.input_multiple` says; one line where its family cannot."""
    problem = input_multiple_problem(meta.arch, meta.input_multiple)
    if problem:
        raise OptionsError(problem)
    net.input_multiple = meta.input_multiple


def _check_images(x: Tensor, name: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise InputError(f"{name} must be normalised float images (N, 3, H, W), got {x.dtype} {tuple(x.shape)}")
