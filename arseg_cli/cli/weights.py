"""`arseg weights import`, `info` and `archs`: convert official checkpoints, show what a file holds, list
the registered architectures."""

from __future__ import annotations

import dataclasses
import json
import shlex
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from arseg_cli.cli._app import ArsegGroup
from arseg_cli.cli._arch import arch_option
from arseg_cli.errors import OptionsError

app = typer.Typer(
    cls=ArsegGroup,
    name="weights",
    help="Convert official AR-Seg checkpoints into arseg's format and inspect weights files.",
    no_args_is_help=True,
)


class ReleaseKind(str, Enum):
    ar = "ar"
    hr = "hr"
    lr = "lr"


@app.command("import")
def import_command(
    source: Path | None = typer.Argument(
        None,
        help="An official HR .pth file, or an official release directory (checkpoints/ or checkpoints/ARCH). "
        "Leave out to convert an LR file (--lr) alone.",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="The arseg weights file to write (.safetensors)."),
    arch: str | None = arch_option(None, help="Architecture; default: recognised from the files."),
    ar: Path | None = typer.Option(None, "--ar", help="Official AR file (LR network + CReFF) to pair with the HR file."),
    lr: Path | None = typer.Option(None, "--lr", help="Official plain LR file: with an HR file, or alone."),
    kind: ReleaseKind | None = typer.Option(
        None, "--kind", help="From a release directory: 'ar' (HR + AR, the default), 'hr' (HR alone) or 'lr' (LR alone)."
    ),
    scale: float | None = typer.Option(
        None, "--scale", help="LR scale s; default: from the AR/LR file name (release directory: the only one)."
    ),
    fp16: bool = typer.Option(False, "--fp16", help="Store floating tensors as float16 (half the size)."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
) -> None:
    """Convert official AR-Seg checkpoints (HR + AR, HR alone, HR + LR, or LR alone) into one arseg weights file."""
    import torch

    from arseg_cli.model.official_release import OfficialFiles, find_official_files, import_official

    if ar is not None and lr is not None:
        raise OptionsError("give either --ar or --lr, not both")
    if source is not None and source.is_dir():
        if ar is not None or lr is not None:
            raise OptionsError("--ar/--lr pair with an HR file; a release directory provides its own files")
        files = find_official_files(source, arch=arch, scale=scale, kind=(kind or ReleaseKind.ar).value)
    else:
        if kind is not None:
            raise OptionsError("--kind chooses files in a release directory; with files, give --ar or --lr")
        if source is None and ar is not None:
            raise OptionsError("an AR file needs the HR file of the same model (its keyframes)")
        if source is None and lr is None:
            raise OptionsError("nothing to import: give an HR file, a release directory, or --lr FILE")
        files = OfficialFiles(hr=source, ar=ar, lr=lr)
    written = import_official(
        files,
        output,
        arch=arch,
        scale=scale,
        dtype=torch.float16 if fp16 else None,
        force=force,
        command=_command_line(source, output, arch=arch, ar=ar, lr=lr, kind=kind, scale=scale, fp16=fp16),
    )
    typer.echo(str(written))


def _command_line(source: Path | None, output: Path, **options: object) -> str:
    """The import as one shell command with the values it ran with (for the provenance record)."""
    words = ["arseg", "weights", "import", *([str(source)] if source is not None else []), "-o", str(output)]
    for name, value in options.items():
        if value is True:
            words.append(f"--{name}")
        elif value not in (None, False):
            words += [f"--{name}", value.value if isinstance(value, Enum) else str(value)]
    return shlex.join(words)


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
            "branches": list(info.branches),
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
        ("branches", ", ".join(info.branches)),
        ("CReFF", ("yes, with the fusion gate" if meta.fusion_gate else "yes") if meta.has_creff else "no"),
        ("input padding", f"to a multiple of {meta.input_multiple}" if meta.input_multiple > 1 else "none"),
        ("mean / std", f"{_floats(meta.mean)} / {_floats(meta.std)}"),
        ("parameters", ", ".join(f"{branch} {count:,}" for branch, count in info.parameters.items())),
        *_nested("provenance", meta.provenance),
        *_nested("metrics", meta.metrics),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        typer.echo(f"{label:<{width}}  {value}")


@app.command("archs")
def archs_command(as_json: bool = typer.Option(False, "--json", help="Print the records as JSON.")) -> None:
    """List the registered architectures (the values of --arch): data set, classes, feature, paper figures."""
    from arseg_cli.model import arch_config, list_archs

    configs = [arch_config(arch) for arch in list_archs()]
    if as_json:
        typer.echo(json.dumps([_arch_record(config) for config in configs], indent=2))
        return
    for config in configs:
        paper = config.paper
        figures = f"paper mIoU HR {paper.miou_hr:g} / AR@{paper.scale:g} {paper.miou_ar:g}" if paper else "no paper figures"
        feature = f"F {config.feature_channels} ch at 1/{config.feature_stride}"
        typer.echo(f"{config.arch:<20} {config.data.name} ({config.num_classes} classes), {feature}, {figures}")


def _arch_record(config: Any) -> dict[str, Any]:
    record = dataclasses.asdict(config)
    record["data"]["palette"] = config.palette.name
    if config.paper is not None:
        record["paper"]["aux_in_macs"] = sorted(config.paper.aux_in_macs)
    return record


def _floats(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def _nested(title: str, data: dict[str, object]) -> list[tuple[str, str]]:
    """One row per key (`title.key`); nested objects as compact JSON."""
    if not data:
        return [(title, "none")]
    return [(f"{title}.{key}", value if isinstance(value, str) else json.dumps(value)) for key, value in data.items()]
