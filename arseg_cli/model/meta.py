"""The metadata that travels with weights and decides how a model is built and fed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

WarpConvention = Literal["official", "exact"]
ClassifierSharing = Literal["shared", "own"]
BackboneSharing = Literal["own", "shared"]


@dataclass(frozen=True)
class ModelMeta:
    """What a model is and how to use it.

    arch:       registry id, e.g. 'camvid-psp18', 'camvid-bise18', 'cityscapes-psp18', 'cityscapes-bise18'.
    classes:    class names; their count is the classifier's output size.
    palette:    RGB colour per class.
    mean, std:  normalisation of RGB in [0, 1] (per channel).
    scale:      LR scale s of the non-keyframe branch (None: no LR branch).
    keyframe_interval: default L.
    warp:       CReFF warp convention: 'official' (the released checkpoints' quirk) or 'exact'.
    has_creff:  the LR branch fuses the keyframe feature (AR); False for a plain LR baseline.
    lr_classifier: in a model with HR and AR branches, 'shared': the LR branch's final_conv is the HR
                one (FST); 'own': a separate copy (official AR files whose classifier differs from the
                HR file's, used as stored, as the official evaluation does).
    lr_backbone: 'own': the LR branch has its own backbone (the paper, the official files); 'shared':
                its ResNet-18 *is* the HR branch's, frozen with it, so only the LR heads and CReFF are
                trained and stored (a file half the size; AR training skips the backbone's backward).
    fusion_gate: after CReFF the LR branch weighs, per pixel, its feature, CReFF's keyframe term and the warped
                keyframe feature (`fusion_gate.*`, model/fusion_gate.py):
                arseg's extension, not the paper's network; False for every official file.
    input_multiple: each network pads its input (edge pixels repeated) to a multiple of this and crops its
                feature back to the input's extent, so that every stride's grid divides the frame evenly
                (32 for BiSeNet's context path); 1: no padding, as the official code and files (and arseg
                weights from before 2026-12-08) run.
    provenance: free-form facts: data, command, date, source files, ...
    metrics:    measured figures (e.g. {"miou_hr": ..., "miou_ar": ...}).
    """

    arch: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float | None = None
    keyframe_interval: int = 12
    warp: WarpConvention = "exact"
    has_creff: bool = True
    lr_classifier: ClassifierSharing = "shared"
    lr_backbone: BackboneSharing = "own"
    fusion_gate: bool = False
    input_multiple: int = 1
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.input_multiple == 1:  # files from before the field read the same
            del data["input_multiple"]
        data["classes"] = list(self.classes)
        data["palette"] = [list(c) for c in self.palette]
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelMeta:
        return cls(
            arch=str(data["arch"]),
            classes=tuple(str(c) for c in data["classes"]),
            palette=tuple(tuple(int(v) for v in c) for c in data["palette"]),  # type: ignore[misc]
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            scale=None if data.get("scale") is None else float(data["scale"]),
            keyframe_interval=int(data.get("keyframe_interval", 12)),
            warp=data.get("warp", "exact"),
            has_creff=bool(data.get("has_creff", True)),
            lr_classifier=data.get("lr_classifier", "shared"),
            lr_backbone=data.get("lr_backbone", "own"),
            fusion_gate=bool(data.get("fusion_gate", False)),
            input_multiple=int(data.get("input_multiple", 1)),
            provenance=dict(data.get("provenance", {})),
            metrics=dict(data.get("metrics", {})),
        )
