"""The compute table of `arseg bench`: MACs of each part per scale, AR^s's average per frame, the ratio
to per-frame HR (1.0x), and the paper's count of the same networks.

Every figure is `arseg_cli.model.flops`'s, unchanged: `branch_costs` (what runs: convolutions and linear
layers by torch's FlopCounterMode, CReFF's attention analytically) and `paper_costs` (thop's
conventions, to compare with the published numbers). FLOPs = 2 x MACs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arseg_cli.model.flops import ATTENTION_NOTE, COUNTER_NOTE, PAPER_NOTE, BranchCosts, Cost, branch_costs, paper_costs
from arseg_cli.scale_interval import is_per_frame_hr

CONVENTION = {
    "macs": "multiply-accumulates; " + COUNTER_NOTE + "; CReFF attention " + ATTENTION_NOTE,
    "flops": "2 x MACs",
    "paper_macs": "the paper's 'GFLOPs' are MACs: " + PAPER_NOTE + "; CReFF not counted",
    "ar_average": "AR^s mean per frame at keyframe interval L: (HR + (L-1) x (LR features + CReFF + classifier)) / L",
}


@dataclass(frozen=True, slots=True)
class ScaleCosts:
    """AR-Seg's compute at one LR scale s (s = 1.0: every frame HR).

    costs:  flops.branch_costs at the image size and s.
    paper:  flops.paper_costs ('hr', 'lr') at the same size and s; None where the paper's count does not exist.
    keyframe_interval: L.
    """

    costs: BranchCosts
    paper: dict[str, Cost] | None
    keyframe_interval: int

    @property
    def scale(self) -> float:
        return self.costs.scale

    @property
    def per_frame_hr(self) -> bool:
        return is_per_frame_hr(self.scale, self.keyframe_interval)

    @property
    def ar_average_macs(self) -> float:
        """Mean MACs per frame: the HR network every frame at 1.0x, else (HR + (L-1) x non-keyframe) / L."""
        if self.per_frame_hr:
            return float(self.costs.hr.macs)
        return self.costs.ar_average(self.keyframe_interval)

    @property
    def macs_ratio(self) -> float:
        """How many times fewer MACs than per-frame HR."""
        return self.costs.hr.macs / self.ar_average_macs

    def to_json(self) -> dict[str, Any]:
        parts = {name: cost.macs for name, cost in self.costs.parts().items()}
        return {
            "scale": self.scale,
            "lr_size": list(self.costs.lr.input_hw),
            "feature_chw": list(self.costs.feature),
            "macs": parts | {"ar_average": self.ar_average_macs},
            "flops": {name: 2 * macs for name, macs in parts.items()} | {"ar_average": 2 * self.ar_average_macs},
            "paper_macs": None if self.paper is None else {name: cost.macs for name, cost in self.paper.items()},
            "macs_ratio_vs_1x": self.macs_ratio,
        }


def scale_costs(
    arch: str, size_hw: tuple[int, int], scale: float, keyframe_interval: int, *, num_classes: int | None = None, fusion_gate: bool = False,
    input_multiple: int = 1,
) -> ScaleCosts:
    """ScaleCosts of `arch` at `size_hw` (height, width) and scale `scale` (with the fusion gate's cost when `fusion_gate`,
    the networks padding their input to `input_multiple`)."""
    height, width = size_hw
    costs = branch_costs(arch, height, width, scale, num_classes=num_classes, fusion_gate=fusion_gate, input_multiple=input_multiple)
    try:
        paper = paper_costs(arch, height, width, scale)
    except ValueError:  # an architecture the paper has no figures for
        paper = None
    return ScaleCosts(costs, paper, keyframe_interval)
