"""What one `segment_video` run did: frame and keyframe counts, stage seconds, outputs (the CLI's --json)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arseg_cli.schedule import DEFAULT_POLICY, FrameKind
from arseg_cli.stage_times import StageTimes

if TYPE_CHECKING:
    from arseg_cli.model.protocol import ModelBackend


@dataclass
class SegmentSummary:
    """What one `segment_video` run did (the CLI's --json, docs/SEGMENT.md)."""

    input: str
    frames: int = 0
    keyframes: int = 0
    size_hw: tuple[int, int] = (0, 0)
    fps: float | None = None
    scale: float = 1.0
    keyframe_interval: int = 1
    policy: str = DEFAULT_POLICY
    device: str = "cpu"
    half: bool = False
    low_latency: bool = False
    times: StageTimes = field(default_factory=StageTimes)
    wall_s: float = 0.0
    keyframe_reasons: dict[str, int] = field(default_factory=dict)
    damaged: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    def count(self, size_hw: tuple[int, int], kind: FrameKind, reason: str) -> None:
        """Adds one segmented frame of size `size_hw`."""
        self.frames += 1
        self.size_hw = size_hw
        if kind is FrameKind.KEY:
            self.keyframes += 1
            self.keyframe_reasons[reason] = self.keyframe_reasons.get(reason, 0) + 1

    def macs(self, arch: str, num_classes: int, fusion_gate: bool = False, input_multiple: int = 1) -> dict[str, Any]:
        """MACs per frame (FLOPs = 2 MACs): the HR keyframe, the LR + CReFF non-keyframe, and the mean
        over this run's frames (from model.flops.branch_costs at the input size)."""
        if not self.frames:
            return {}
        height, width = self.size_hw
        costs = _branch_costs(arch, height, width, self.scale if self.scale < 1.0 else 0.5, num_classes, fusion_gate, input_multiple)
        nonkeys = self.frames - self.keyframes
        nonkey = costs.nonkeyframe.macs if self.scale < 1.0 else 0
        mean = (self.keyframes * costs.hr.macs + nonkeys * nonkey) / self.frames
        return {"keyframe": costs.hr.macs, "nonkeyframe": nonkey if nonkeys else None, "mean": mean,
                "per_frame_hr": costs.hr.macs}  # fmt: skip

    def to_json(self, model: ModelBackend | None = None) -> dict[str, Any]:
        seconds = self.wall_s or self.times.total
        data: dict[str, Any] = {
            "input": self.input,
            "frames": self.frames,
            "keyframes": self.keyframes,
            "keyframe_reasons": self.keyframe_reasons,
            "size": list(self.size_hw),
            "input_fps": self.fps,
            "scale": self.scale,
            "keyframe_interval": self.keyframe_interval,
            "policy": self.policy,
            "device": self.device,
            "half": self.half,
            "low_latency": self.low_latency,
            "seconds": {**self.times.to_json(), "total": seconds},
            "fps": self.frames / seconds if seconds > 0 else None,
            "damaged": self.damaged,
            "outputs": self.outputs,
        }
        if model is not None:
            data["arch"] = model.arch
            data["macs_per_frame"] = self.macs(model.arch, model.num_classes, model.meta.fusion_gate, model.meta.input_multiple)
        return data


@functools.lru_cache(maxsize=8)
def _branch_costs(arch: str, height: int, width: int, scale: float, num_classes: int, fusion_gate: bool, input_multiple: int) -> Any:
    """model.flops.branch_costs, once per size (it traces the network: seconds for camvid-psp18)."""
    from arseg_cli.model.flops import branch_costs

    return branch_costs(arch, height, width, scale, num_classes=num_classes, fusion_gate=fusion_gate, input_multiple=input_multiple)


__all__ = ["SegmentSummary"]
