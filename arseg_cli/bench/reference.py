"""The paper's published figures for an architecture (its `ArchConfig.paper`), as `arseg bench` prints
them beside its own, and the frame size of the data set it is made for.

MACs: the paper's "GFLOPs", which are multiply-accumulates counted by thop without CReFF's attention
(arseg_cli.model.flops.paper_costs reproduces them); mIoU: the released checkpoints' means over the 12
keyframe distances. All at scale 0.5 and the data set's full frame size.
"""

from __future__ import annotations

from typing import Any

from arseg_cli.model import arch_config


def dataset_size(arch: str) -> tuple[int, int]:
    """The frame size (height, width) of the data set `arch` is made for (camvid 720x960, cityscapes
    1024x2048): the size the paper counts at."""
    return arch_config(arch).data.frame_hw


def paper_json(arch: str) -> dict[str, Any] | None:
    """The published figures of `arch` as one JSON object (size, MACs in G, mIoU in %); None when the
    paper gives none."""
    paper = arch_config(arch).paper
    if paper is None:
        return None
    figures = ("hr_gmacs", "lr_gmacs", "creff_gmacs", "miou_hr", "miou_lr", "miou_ar", "scale")
    return {
        "arch": arch,
        "size_hw": list(dataset_size(arch)),
        **{name: getattr(paper, name) for name in figures},
        "source": "AR-Seg paper / official release (OFFICIAL.md)",
    }
