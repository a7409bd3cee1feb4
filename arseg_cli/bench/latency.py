"""Measured latency of AR-Seg's per-frame stages on one image size: HR, LR, CReFF, the whole non-keyframe.

Stages (batch 1, the calls `arseg segment` makes, inside `torch.inference_mode()`):
- `hr`: `keyframe_labels(x)`, the HR network on the (H, W) image: the labels at image size and the feature;
- `lr`: the plain LR network on the (int(H*s), int(W*s)) image (`lowres`; the LR baseline's frame);
- `creff`: CReFF alone, fusing the LR network's feature with the keyframe feature along a flow;
- `nonkeyframe`: `nonkeyframe_labels(downscale(x), feat, flow)`: LR network + CReFF + classifier, the
  labels at image size: what a non-keyframe costs in the pipeline.
The onnxruntime backend has only the two graphs: `hr` and `nonkeyframe`.
Inputs are random (seeded): the time of these networks does not depend on the pixel values. The flow is
a few pixels, as between video frames. Stages take turns (timing.interleaved).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from arseg_cli.bench.timing import LatencyStats, interleaved
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.protocol import ModelBackend
from arseg_cli.model.resize import downscale
from arseg_cli.scale_interval import is_per_frame_hr

#: Standard deviation of the random flow, pixels.
FLOW_PX = 2.0


@dataclass(frozen=True, slots=True)
class StageLatency:
    """Measured stages: `hr` once; per scale s < 1, the LR stages (`lr` and `creff` may be absent)."""

    hr: LatencyStats
    per_scale: dict[float, dict[str, LatencyStats]] = field(default_factory=dict)

    def ar_average_s(self, scale: float, keyframe_interval: int) -> float:
        """Measured mean seconds per frame: (HR + (L-1) x non-keyframe) / L (median times); HR at s = 1."""
        if is_per_frame_hr(scale, keyframe_interval):
            return self.hr.median_s
        nonkey = self.per_scale[scale]["nonkeyframe"].median_s
        return (self.hr.median_s + (keyframe_interval - 1) * nonkey) / keyframe_interval

    def speedup(self, scale: float, keyframe_interval: int) -> float:
        """How many times faster per frame than per-frame HR (measured)."""
        return self.hr.median_s / self.ar_average_s(scale, keyframe_interval)

    def to_json(self, scale: float) -> dict[str, Any]:
        stages = {"hr": self.hr} | self.per_scale.get(scale, {})
        return {name: stats.to_json() for name, stats in stages.items()}


def measure_stages(
    model: ModelBackend,
    size_hw: tuple[int, int],
    scales: Sequence[float],
    *,
    repeats: int,
    warmup: int,
    seed: int = 0,
) -> StageLatency:
    """Time the stages of `model` on its device at `size_hw` for each scale (module docstring)."""
    device = model.device
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, *size_hw, generator=gen).to(device)
    flow = (FLOW_PX * torch.randn(1, 2, *size_hw, generator=gen)).to(device)
    lr_scales = [s for s in scales if s < 1.0]
    if lr_scales and not model.has_lr:
        raise ValueError("the model has no LR branch: bench it at scale s 1.0 only")
    model.optimize_for_inference()
    with torch.inference_mode():
        _, feat = model.keyframe_labels(x)
        calls: dict[str, Callable[[], object]] = {"hr": lambda: model.keyframe_labels(x)}
        for scale in lr_scales:
            calls |= {f"{name}@{scale}": call for name, call in _lr_calls(model, x, feat, flow, scale).items()}
        stats = interleaved(calls, repeats=repeats, warmup=warmup, device=device)
    per_scale: dict[float, dict[str, LatencyStats]] = {}
    for key, value in stats.items():
        if "@" in key:
            name, scale = key.split("@")
            per_scale.setdefault(float(scale), {})[name] = value
    return StageLatency(stats["hr"], per_scale)


def _lr_calls(model: ModelBackend, x: torch.Tensor, feat: torch.Tensor, flow: torch.Tensor, scale: float) -> dict[str, Callable[[], object]]:
    x_lr = downscale(x, scale)
    calls: dict[str, Callable[[], object]] = {
        "nonkeyframe": lambda: model.nonkeyframe_labels(downscale(x, scale), feat, flow)
    }
    if isinstance(model, ARSeg):  # the branches apart: the PyTorch backend only (the graphs are whole steps)
        size = (x_lr.shape[-2], x_lr.shape[-1])
        calls["lr"] = lambda: model.lowres(x_lr, size)
        if model.has_creff and model.lr is not None:
            # The LR feature as the inference path makes it: channels-last, like the keyframe feature.
            lr_feat = model.lr.features(x_lr.contiguous(memory_format=torch.channels_last))
            calls["creff"] = lambda: model.lr.fuse(lr_feat, feat, flow)  # type: ignore[union-attr]
    return calls
