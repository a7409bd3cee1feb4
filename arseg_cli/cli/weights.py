"""`arseg weights import` and `arseg weights info`: convert official checkpoints, show what a file holds."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer

from arseg_cli.errors import OptionsError

app = typer.Typer(
    name="weights",
    help="Convert official AR-Seg checkpoints into arseg's format and inspect weights files.",
    no_args_is_help=True,
)


@app.command("import")
def import_command(
    official: Path = typer.Argument(
        ..., help="An official HR .pth file, or the official release directory (checkpoints/ or checkpoints/ARCH)."
    ),
    arch: str = typer.Option(..., "--arch", help="Architecture id, e.g. camvid-psp18, cityscapes-bise18."),
    output: Path = typer.Option(..., "--output", "-o", help="The arseg weights file to write (.safetensors)."),
    ar: Path | None = typer.Option(None, "--ar", help="Official AR file (LR network + CReFF) to pair with the HR file."),
    lr: Path | None = typer.Option(None, "--lr", help="Official plain LR-baseline file to pair with the HR file."),
    scale: float | None = typer.Option(
        None, "--scale", help="LR scale s; default: from the AR/LR file name (release directory: the only one)."
    ),
    fp16: bool = typer.Option(False, "--fp16", help="Store floating tensors as float16 (half the size)."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
) -> None:
    """Convert official AR-Seg checkpoints (HR + AR or LR) into one arseg weights file."""
    import torch

    from arseg_cli.model.official_release import OfficialFiles, find_official_files, import_official

    if ar is not None and lr is not None:
        raise OptionsError("give either --ar or --lr, not both")
    if official.is_dir():
        if ar is not None or lr is not None:
            raise OptionsError("--ar/--lr pair with an HR file; a release directory provides its own AR file")
        files = find_official_files(official, arch=arch, scale=scale)
    else:
        files = OfficialFiles(hr=official, ar=ar, lr=lr)
    written = import_official(
        files,
        output,
        arch=arch,
        scale=scale,
        dtype=torch.float16 if fp16 else None,
        force=force,
        command=shlex.join(["arseg", *sys.argv[1:]]),
    )
    typer.echo(str(written))


@app.command("info")
def info_command(
    path: Path = typer.Argument(..., help="An arseg weights file (.safetensors)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as one JSON object."),
) -> None:
    """Show what an arseg weights file holds: architecture, classes, scale, L, warp, provenance, sizes."""
    from arseg_cli.model.weights import read_info

    info = read_info(path)
    meta = info.meta
    if as_json:
        record = {
            "file": str(info.path),
            "bytes": info.file_bytes,
            "format_version": info.format_version,
            "storage_dtype": info.storage_dtype,
            "tensors": len(info.tensors),
            "aliases": len(info.aliases),
            "parameters": info.parameters,
            "meta": meta.to_json(),
        }
        typer.echo(json.dumps(record, indent=2))
        return
    rows = [
        ("file", f"{info.path} ({info.file_bytes / 1e6:.1f} MB, {info.storage_dtype}, format {info.format_version})"),
        ("arch", meta.arch),
        ("classes", f"{meta.num_classes}: {', '.join(meta.classes)}"),
        ("scale", "none (HR only)" if meta.scale is None else f"{meta.scale:g}"),
        ("keyframe interval", str(meta.keyframe_interval)),
        ("warp", meta.warp),
        ("CReFF", "yes" if meta.has_creff else "no"),
        ("mean / std", f"{_floats(meta.mean)} / {_floats(meta.std)}"),
        ("parameters", ", ".join(f"{branch} {count:,}" for branch, count in info.parameters.items())),
        *_nested("provenance", meta.provenance),
        *_nested("metrics", meta.metrics),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        typer.echo(f"{label:<{width}}  {value}")


def _floats(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def _nested(title: str, data: dict[str, object]) -> list[tuple[str, str]]:
    """One row per key (`title.key`); nested objects as compact JSON."""
    if not data:
        return [(title, "none")]
    return [(f"{title}.{key}", value if isinstance(value, str) else json.dumps(value)) for key, value in data.items()]
