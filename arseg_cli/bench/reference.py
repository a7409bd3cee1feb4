"""The paper's published figures for each architecture (shared/reference/OFFICIAL.md), to print beside
arseg's own, and each data set's frame size.

MACs: the paper's "GFLOPs", which are multiply-accumulates counted by thop without CReFF's attention
(arseg_cli.model.flops.paper_costs reproduces them); mIoU: the released checkpoints' means over the 12
keyframe distances. All at scale 0.5 and the data set's full frame size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Frame size (height, width) of each data set's frames, the size the paper counts at.
DATASET_SIZE = {"camvid": (720, 960), "cityscapes": (1024, 2048)}
PAPER_SCALE = 0.5


@dataclass(frozen=True, slots=True)
class PaperFigures:
    """One architecture's published figures at `size_hw` and LR scale 0.5.

    hr_gmacs / lr_gmacs: thop MACs (G) of the HR network and of the LR network at 0.5x.
    creff_gmacs: CReFF's cost as the paper states it (None where it gives none).
    miou_hr / miou_lr / miou_ar: mIoU (%) of HR, LR 0.5x and AR 0.5x.
    """

    arch: str
    size_hw: tuple[int, int]
    hr_gmacs: float
    lr_gmacs: float
    creff_gmacs: float | None
    miou_hr: float
    miou_lr: float
    miou_ar: float

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["size_hw"] = list(self.size_hw)
        return data | {"scale": PAPER_SCALE, "source": "AR-Seg paper / official release (OFFICIAL.md)"}


PAPER: dict[str, PaperFigures] = {
    "camvid-psp18": PaperFigures("camvid-psp18", DATASET_SIZE["camvid"], 309.3, 77.2, 5.5, 69.43, 66.56, 70.48),
    "camvid-bise18": PaperFigures("camvid-bise18", DATASET_SIZE["camvid"], 60.2, 15.2, None, 71.57, 66.55, 70.37),
    "cityscapes-psp18": PaperFigures("cityscapes-psp18", DATASET_SIZE["cityscapes"], 561.4, 135.2, None, 68.30, 66.80, 69.03),
    "cityscapes-bise18": PaperFigures("cityscapes-bise18", DATASET_SIZE["cityscapes"], 183.3, 45.2, None, 70.09, 66.89, 70.37),
}


def dataset_size(arch: str) -> tuple[int, int]:
    """The frame size of the data set `arch` is made for ('camvid-...' -> 720x960, 'cityscapes-...' -> 1024x2048)."""
    dataset = arch.split("-", 1)[0]
    if dataset not in DATASET_SIZE:
        raise ValueError(f"no data set size known for {arch!r}: give the size")
    return DATASET_SIZE[dataset]
