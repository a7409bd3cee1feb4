"""Converting the official AR-Seg release (`.pth` files) into arseg's weight format.

The official files are read by `load_official` (torch.load with weights_only=True: no pickled code
runs); this module finds them in a release directory, records where the weights came from and what
their authors measured, and writes one arseg weights file.

Release layout: `checkpoints/{arch}/{HR,AR,LR}/*.pth`, the LR scale in the third `_` field of a file
name (`PSPNet_resnet18_0.5_87_.pth`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch

from arseg_cli.errors import OptionsError, WeightsError
from arseg_cli.model._registry import arch_config
from arseg_cli.model.official import load_official
from arseg_cli.model.official import scale_from_name as official_file_scale
from arseg_cli.model.weights import save_weights
from arseg_cli.atomic_files import check_writable

__all__ = [
    "OfficialFiles",
    "file_sha256",
    "find_official_files",
    "import_official",
    "official_file_scale",
    "reported_metrics",
]

ReleaseKind = Literal["ar", "hr", "lr"]

_MIOU_PROTOCOL = (
    "official AR-Seg evaluation: per keyframe distance d = 0..11 one confusion matrix, mIoU over all classes "
    "(CamVid: 12 incl. Void), reported figure = mean over d; compressed video, GOP 12"
)
_MIOU_SOURCE = "reported by the AR-Seg authors for these released files; not measured by arseg"
_FOLDERS: dict[str, tuple[str, ...]] = {"ar": ("HR", "AR"), "hr": ("HR",), "lr": ("LR",)}


@dataclass(frozen=True, slots=True)
class OfficialFiles:
    """The official `.pth` files one import converts: HR alone, HR + AR, HR + LR, or LR alone."""

    hr: Path | None = None
    ar: Path | None = None
    lr: Path | None = None

    def roles(self) -> dict[str, Path]:
        """{'hr' | 'ar' | 'lr': path} of the files given."""
        return {role: path for role, path in (("hr", self.hr), ("ar", self.ar), ("lr", self.lr)) if path is not None}


def find_official_files(
    release: str | Path, *, arch: str | None, scale: float | None = None, kind: ReleaseKind = "ar"
) -> OfficialFiles:
    """The files of one model in an official release directory.

    release: the release's `checkpoints/` folder (holding `{arch}/HR`, ...; then `arch` is needed) or
             one `{arch}/` folder.
    kind:    'ar' (HR + the AR file at `scale`), 'hr' (HR alone) or 'lr' (the plain LR file at `scale`).
    scale:   which AR/LR file; None when the folder holds files of one scale only.
    """
    release = Path(release)
    if any((release / folder).is_dir() for folder in ("HR", "AR", "LR")):
        arch_dir = release
    elif arch is None:
        raise OptionsError(f"{release} holds several architectures' folders: choose one with `arch`")
    else:
        arch_dir = release / arch
    for folder in _FOLDERS[kind]:
        if not (arch_dir / folder).is_dir():
            raise WeightsError(f"{release} is not an official AR-Seg release: no {folder}/ folder in {arch_dir}")
    files: dict[str, Path] = {}
    if "HR" in _FOLDERS[kind]:
        hr_files = sorted((arch_dir / "HR").glob("*.pth"))
        if len(hr_files) != 1:
            found = ", ".join(p.name for p in hr_files) or "none"
            raise WeightsError(f"{arch_dir / 'HR'} should hold exactly one .pth file (found: {found})")
        files["hr"] = hr_files[0]
    if kind in ("ar", "lr"):
        files[kind] = _file_at_scale(arch_dir / kind.upper(), scale)
    return OfficialFiles(**files)


def _file_at_scale(folder: Path, scale: float | None) -> Path:
    by_scale: dict[float, list[Path]] = {}
    for candidate in sorted(folder.glob("*.pth")):
        file_scale = official_file_scale(candidate)
        if file_scale is not None:
            by_scale.setdefault(file_scale, []).append(candidate)
    scales = ", ".join(f"{s:g}" for s in sorted(by_scale)) or "none"
    if scale is None:
        if len(by_scale) != 1:
            raise WeightsError(f"{folder} holds files for scales {scales}: choose one with scale s")
        scale = next(iter(by_scale))
    chosen = by_scale.get(scale, [])
    if not chosen:
        raise WeightsError(f"{folder}: no file for scale {scale:g} (scales there: {scales})")
    if len(chosen) > 1:
        raise WeightsError(f"{folder}: several files for scale {scale:g}: {', '.join(p.name for p in chosen)}")
    return chosen[0]


def import_official(
    files: OfficialFiles,
    output: str | Path,
    *,
    arch: str | None = None,
    scale: float | None = None,
    dtype: torch.dtype | None = None,
    force: bool = False,
    command: str | None = None,
) -> Path:
    """Convert official `.pth` files into one arseg weights file; returns its path.

    The files are read by `load_official` (no code runs; `arch` is detected from the keys when None).
    The metadata records: the data the authors trained on, each source file's name and sha256, the
    date of the conversion (UTC), `command`, and the mIoU the authors report for these files
    (`reported_metrics`).
    """
    check_writable(output, force)
    roles = files.roles()
    model = load_official(hr=files.hr, ar=files.ar, lr=files.lr, arch=arch, scale=scale)
    meta = model.meta
    provenance = {
        **meta.provenance,
        "source": "official AR-Seg release (github.com/THU-LYJ-Lab/AR-Seg)",
        "data": arch_config(meta.arch).data.description,
        "files": {role: {"name": path.name, "sha256": file_sha256(path)} for role, path in roles.items()},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **({"command": command} if command else {}),
    }
    metrics = {**meta.metrics, **reported_metrics(meta.arch, roles=set(roles), scale=meta.scale)}
    return save_weights(model, output, meta=replace(meta, provenance=provenance, metrics=metrics), dtype=dtype, force=force)


def reported_metrics(arch: str, *, roles: set[str], scale: float | None) -> dict[str, Any]:
    """The authors' mIoU for the model made of `roles` ('hr', 'ar', 'lr'), or {} when they report none.

    HR figures apply to any model with the HR file; AR and LR figures only at the scale they were
    reported for (`ArchConfig.paper.scale`, 0.5).
    """
    paper = arch_config(arch).paper
    if paper is None:
        return {}
    miou = {"hr": paper.miou_hr} if "hr" in roles else {}
    for role, value in (("ar", paper.miou_ar), ("lr", paper.miou_lr)):
        if role in roles and scale is not None and abs(scale - paper.scale) < 1e-9:
            miou[f"{role}@{scale:g}"] = value
    if not miou:
        return {}
    return {"miou": miou, "miou_source": _MIOU_SOURCE, "miou_protocol": _MIOU_PROTOCOL}


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
