"""Converting the official AR-Seg release (`.pth` files) into arseg's weight format.

The official files are read by `load_official` (torch.load with weights_only=True: no pickled code
runs); this module finds them in a release directory and records where the weights came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from arseg_cli.errors import WeightsError
from arseg_cli.model.official import load_official
from arseg_cli.model.official import scale_from_name as official_file_scale
from arseg_cli.model.weights import save_weights
from arseg_cli.outputs import check_writable

__all__ = ["OfficialFiles", "file_sha256", "find_official_files", "import_official", "official_file_scale"]


@dataclass(frozen=True, slots=True)
class OfficialFiles:
    """The official `.pth` files one import converts: the HR network, plus an AR or a plain LR one."""

    hr: Path
    ar: Path | None = None
    lr: Path | None = None


def find_official_files(release: str | Path, *, arch: str, scale: float | None = None) -> OfficialFiles:
    """The HR file and the AR file at `scale` in an official release directory.

    `release` is the release's `checkpoints/` folder (holding `{arch}/HR`, `{arch}/AR`, ...) or one
    `{arch}/` folder. The LR scale of an AR file is the third `_` field of its name
    (`PSPNet_resnet18_0.5_87_.pth`); without `scale` there must be exactly one AR file.
    """
    release = Path(release)
    arch_dir = release if (release / "HR").is_dir() else release / arch
    if not (arch_dir / "HR").is_dir():
        raise WeightsError(f"{release} is not an official AR-Seg release: no HR/ folder in it or in {release / arch}")
    hr_files = sorted((arch_dir / "HR").glob("*.pth"))
    if len(hr_files) != 1:
        found = ", ".join(p.name for p in hr_files) or "none"
        raise WeightsError(f"{arch_dir / 'HR'} should hold exactly one .pth file (found: {found})")
    by_scale: dict[float, list[Path]] = {}
    for candidate in sorted((arch_dir / "AR").glob("*.pth")):
        file_scale = official_file_scale(candidate)
        if file_scale is not None:
            by_scale.setdefault(file_scale, []).append(candidate)
    scales = ", ".join(f"{s:g}" for s in sorted(by_scale)) or "none"
    if scale is None:
        if len(by_scale) != 1:
            raise WeightsError(f"{arch_dir / 'AR'} holds AR files for scales {scales}: choose one with --scale")
        scale = next(iter(by_scale))
    chosen = by_scale.get(scale, [])
    if len(chosen) != 1:
        problem = f"no AR file for scale {scale:g} (scales there: {scales})" if not chosen else (
            f"several AR files for scale {scale:g}: {', '.join(p.name for p in chosen)}")
        raise WeightsError(f"{arch_dir / 'AR'}: {problem}")
    return OfficialFiles(hr=hr_files[0], ar=chosen[0])


def import_official(
    files: OfficialFiles,
    output: str | Path,
    *,
    arch: str,
    scale: float | None = None,
    dtype: torch.dtype | None = None,
    force: bool = False,
    command: str | None = None,
) -> Path:
    """Convert official `.pth` files into one arseg weights file; returns its path.

    The files are read by `load_official` (torch.load with weights_only=True: no code runs). The
    provenance records each source file's name and sha256, the date (UTC) and `command`.
    """
    check_writable(output, force)
    model = load_official(hr=files.hr, ar=files.ar, lr=files.lr, arch=arch, scale=scale)
    sources = {role: path for role, path in (("hr", files.hr), ("ar", files.ar), ("lr", files.lr)) if path}
    provenance = {
        **model.meta.provenance,
        "source": "official AR-Seg release (github.com/THU-LYJ-Lab/AR-Seg)",
        "files": {role: {"name": path.name, "sha256": file_sha256(path)} for role, path in sources.items()},
        "imported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **({"command": command} if command else {}),
    }
    return save_weights(model, output, meta=replace(model.meta, provenance=provenance), dtype=dtype, force=force)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
