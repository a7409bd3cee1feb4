"""Does an exported model compute what PyTorch computes? onnxruntime against ARSeg on decoded frames.

The frames are real video (the first few of a clip, the first one the keyframe) and the flows are
that clip's motion vectors accumulated to the keyframe, so the check covers the sizes, value ranges and
flow fields the pipeline meets, not only random tensors. Both graphs get the same inputs as PyTorch:
the non-keyframe graph fuses PyTorch's keyframe feature, so a difference is that graph's own.
The PyTorch side is the inference path `arseg segment` runs (`torch.inference_mode()`: BatchNorm folded,
channels-last, CReFF's tiled kernel on the CPU).

The bound is 1e-4, or twice the model's own float32 error where that is larger: the same model run in
float64 on the same inputs gives that error (`float32_noise`). Two float32 implementations of one
computation can each stray that far from the exact result, so no float32 runtime could be held closer.
Weights with sharp attention (`arseg calibrate`'s) have a float32 error above 1e-4.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from arseg_cli.errors import InputError
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.resize import resize_bilinear
from arseg_cli.onnx.runtime import OnnxARSeg
from arseg_cli.video.decode import decode_frames
from arseg_cli.video.motion import FlowAccumulator
from arseg_cli.video.synthetic import make_clip, write_clip

#: The issue's bound on |onnxruntime - PyTorch| over logits and features.
TOLERANCE = 1e-4


@dataclass(frozen=True, slots=True)
class ParityFrame:
    """One frame of the check. rgb: (H, W, 3) uint8. flow_px: (2, H, W) float32 backward flow to the
    first frame (the keyframe), pixels; zeros for the keyframe itself."""

    rgb: np.ndarray
    flow_px: np.ndarray


@dataclass(frozen=True, slots=True)
class ParityReport:
    """Largest |onnxruntime - PyTorch| per graph (logits and, for the keyframe, the feature too), and
    the share of pixels whose argmax label agrees. nonkeyframe_* are None without that graph."""

    frames: int
    size_hw: tuple[int, int]
    keyframe_max_abs: float
    nonkeyframe_max_abs: float | None
    label_agreement: float
    tolerance: float = TOLERANCE
    float32_noise: float = 0.0

    @property
    def max_abs(self) -> float:
        return max(self.keyframe_max_abs, self.nonkeyframe_max_abs or 0.0)

    @property
    def bound(self) -> float:
        """The tolerance, or twice the model's own float32 error where that is larger."""
        return max(self.tolerance, 2.0 * self.float32_noise)

    @property
    def ok(self) -> bool:
        return self.max_abs <= self.bound

    def to_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "size": list(self.size_hw),
            "keyframe_max_abs_diff": self.keyframe_max_abs,
            "nonkeyframe_max_abs_diff": self.nonkeyframe_max_abs,
            "max_abs_diff": self.max_abs,
            "label_agreement": self.label_agreement,
            "tolerance": self.tolerance,
            "float32_noise": self.float32_noise,
            "bound": self.bound,
            "ok": self.ok,
        }


def parity_inputs(video: str | Path, *, frames: int = 4, size_hw: tuple[int, int] | None = None) -> list[ParityFrame]:
    """The first `frames` frames of `video` with their flow to the first one (motion vectors, or the
    re-encode fallback), resized to `size_hw` when given (flow values scaled with the image)."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    accumulator = FlowAccumulator()
    found: list[ParityFrame] = []
    for frame in decode_frames(video, motion="auto", end=frames):
        flow = accumulator.push(frame, is_key=not found).flow_px
        found.append(_resized(ParityFrame(frame.rgb, flow), size_hw))
    if not found:
        raise InputError(f"{video}: no frame decoded for the ONNX check")
    return found


def synthetic_check_clip(path: str | Path, *, frames: int = 4, size_hw: tuple[int, int] = (360, 480)) -> Path:
    """A textured panning clip with a moving square, H.264 (no B-frames), for when no video is at hand
    (an installed arseg without the repository's samples/)."""
    clip = make_clip(frames=frames, height=size_hw[0], width=size_hw[1], pan_px=(3, 1), object_px=(-4, 2), object_size=96)
    return write_clip(clip.frames, path)


def check_parity(model: ARSeg, runtime: OnnxARSeg, inputs: Sequence[ParityFrame], *, tolerance: float = TOLERANCE) -> ParityReport:
    """Run `inputs[0]` as a keyframe and the others as non-keyframes through both; compare."""
    if not inputs:
        raise ValueError("check_parity needs at least one frame")
    key_diff, nonkey_diff, agree, total = 0.0, None, 0, 0
    exact = copy.deepcopy(model).double()
    with torch.inference_mode():
        x = model.normalize(inputs[0].rgb)
        logits, feat = model.keyframe(x)
        ort_logits, ort_feat = runtime.keyframe(x)
        key_diff = max(_max_abs(logits, ort_logits), _max_abs(feat, ort_feat))
        exact_logits, exact_feat = exact.keyframe(x.double())
        noise = max(_max_abs(logits, exact_logits), _max_abs(feat, exact_feat))
        agree, total = _agreement(logits, ort_logits)
        if runtime.has_lr and model.has_lr:
            for frame in inputs[1:]:
                x_lr = model.downscale(model.normalize(frame.rgb))
                flow = torch.from_numpy(frame.flow_px)[None].to(model.device)
                logits = model.nonkeyframe(x_lr, feat, flow)
                ort_logits = runtime.nonkeyframe(x_lr, feat, flow)
                nonkey_diff = max(nonkey_diff or 0.0, _max_abs(logits, ort_logits))
                noise = max(noise, _max_abs(logits, exact.nonkeyframe(x_lr.double(), feat.double(), flow.double())))
                same, count = _agreement(logits, ort_logits)
                agree, total = agree + same, total + count
    height, width = inputs[0].rgb.shape[:2]
    return ParityReport(len(inputs), (height, width), key_diff, nonkey_diff, agree / total, tolerance, noise)


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise AssertionError(f"onnxruntime gave shape {tuple(b.shape)} where PyTorch gave {tuple(a.shape)}")
    return float((a.double().cpu() - b.double().cpu()).abs().max())


def _agreement(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    same = a.argmax(1).cpu() == b.argmax(1).cpu()
    return int(same.sum()), same.numel()


def _resized(frame: ParityFrame, size_hw: tuple[int, int] | None) -> ParityFrame:
    if size_hw is None or size_hw == frame.rgb.shape[:2]:
        return frame
    height, width = frame.rgb.shape[:2]
    rgb = np.asarray(Image.fromarray(frame.rgb).resize((size_hw[1], size_hw[0]), Image.Resampling.BILINEAR))
    flow = torch.from_numpy(frame.flow_px)[None]
    flow = resize_bilinear(flow, size_hw, align_corners=False)[0]
    flow[0] *= size_hw[1] / width
    flow[1] *= size_hw[0] / height
    return ParityFrame(np.ascontiguousarray(rgb), flow.numpy().astype(np.float32))
