"""`arseg export-onnx -o DIR`: the model as two ONNX graphs, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer

from arseg_cli.cli._arch import arch_option
from arseg_cli.cli._app import console
from arseg_cli.options import parse_size
from arseg_cli.errors import ArsegError, InputNotFoundError

#: The clip the check decodes when no --check-video is given.
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "sample.mp4"


class ParityError(ArsegError):
    """onnxruntime and PyTorch disagree by more than the tolerance."""


def export_onnx_command(
    output: Path = typer.Option(..., "--output", "-o", help="Directory for keyframe.onnx and nonkeyframe.onnx."),
    weights: list[str] = typer.Option([], "--weights", "-w", help="arseg .safetensors, official release directory, or official hr=FILE / ar=FILE (repeat). Default: ARSEG_WEIGHTS, then weights/."),
    arch: str | None = arch_option(None, help="Architecture of official files (guessed from their keys when not given)."),
    scale: float | None = typer.Option(None, "--scale", min=0.05, max=1.0, help="LR scale of official AR files (read from their names by default)."),
    opset: int = typer.Option(18, "--opset", min=17, help="ONNX opset (>= 17)."),
    check_video: Path | None = typer.Option(None, "--check-video", help=f"Video whose first frames and motion vectors the check runs on (default: samples/{SAMPLE.name}, else a synthetic clip)."),
    size: str | None = typer.Option(None, "--size", metavar="HxW", help="Resize the check frames to HxW (default: the video's size)."),
    check_frames: int = typer.Option(4, "--check-frames", min=1, help="Frames of the check: one keyframe, the rest non-keyframes."),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare onnxruntime with PyTorch after the export."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    force: bool = typer.Option(False, "--force", help="Replace keyframe.onnx / nonkeyframe.onnx in DIR."),
) -> None:
    """Export the model to ONNX: keyframe.onnx (image -> logits, feature) and nonkeyframe.onnx (LR image,
    keyframe feature, flow -> logits), dynamic height and width, arseg's metadata inside (classes,
    palette, normalisation, scale, L, warp). Then run both with onnxruntime and PyTorch on real frames and
    fail when they differ by more than 1e-4 (or twice PyTorch's own float32 error, where larger). Needs the [onnx] extra. docs/ONNX.md."""
    from arseg_cli.model.weights_specs import load_model
    from arseg_cli.onnx import OnnxARSeg, check_parity, export_onnx, parity_inputs
    from arseg_cli.onnx.check import synthetic_check_clip
    from arseg_cli.onnx._extra import require

    require()
    size_hw = parse_size(size) if size is not None else None
    if check_video is not None and not check_video.is_file():
        raise InputNotFoundError(f"--check-video {check_video}: no such file")
    model, weights_name = load_model(weights, arch=arch, scale=scale, device="cpu")
    exported = export_onnx(model, output, opset=opset, force=force)
    summary: dict[str, object] = {
        "weights": weights_name,
        "arch": model.arch,
        "opset": opset,
        "files": {p.stem: str(p) for p in exported.files()},
    }
    for path in exported.files():
        console.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)", highlight=False, soft_wrap=True)
    if check:
        with tempfile.TemporaryDirectory(prefix="arseg-onnx-check-") as tmp:
            video = check_video or (SAMPLE if SAMPLE.is_file() else synthetic_check_clip(Path(tmp) / "synthetic.mp4", frames=check_frames))
            inputs = parity_inputs(video, frames=check_frames, size_hw=size_hw)
        name = video.name if video.parent != Path(tmp) else "a synthetic clip"
        report = check_parity(model, OnnxARSeg(output), inputs)
        summary["check"] = report.to_json() | {"video": str(video) if video.parent != Path(tmp) else "synthetic"}
        if as_json:
            typer.echo(json.dumps(summary))
        line = _check_line(report.to_json(), name)
        if not report.ok:
            raise ParityError(f"{line}: onnxruntime differs from PyTorch by more than {report.bound:.2g}")
        console.print(line + ": ok", highlight=False, soft_wrap=True)
    elif as_json:
        typer.echo(json.dumps(summary))


def _check_line(report: dict, video_name: str) -> str:
    height, width = report["size"]
    nonkey = report["nonkeyframe_max_abs_diff"]
    parts = f"keyframe {report['keyframe_max_abs_diff']:.2e}" + ("" if nonkey is None else f", non-keyframe {nonkey:.2e}")
    return (f"onnxruntime vs PyTorch on {report['frames']} frames of {video_name} at {height}x{width}: max |diff| "
            f"{parts} (PyTorch's own float32 error {report['float32_noise']:.2e}), labels agree on "
            f"{100 * report['label_agreement']:.3f}% of pixels")  # fmt: skip
