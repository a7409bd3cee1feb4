"""`arseg synth -o DIR`: generate a SynthStreet data set (videos, labels, optional ground-truth flow)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from arseg_cli.cli._app import console, frame_progress
from arseg_cli.errors import OptionsError
from arseg_cli.options import parse_size


class FlowReference(str, Enum):
    prev = "prev"
    key = "key"


def synth_command(
    output: Path = typer.Option(..., "--output", "-o", help="Directory for the data set (new or empty)."),
    clips: int = typer.Option(1, "--clips", min=1, help="Number of clips."),
    frames: int = typer.Option(30, "--frames", min=1, help="Frames per clip."),
    size: str = typer.Option("360x480", "--size", metavar="HxW", help="Frame size, height x width (even numbers)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed: the same seed gives the same data set."),
    keyint: int = typer.Option(12, "--keyint", "-L", min=1, help="H.264 keyframe interval L (frames)."),
    crf: float = typer.Option(20.0, "--crf", min=0, max=51, help="x264 constant rate factor (lower: better)."),
    fps: float = typer.Option(30.0, "--fps", min=1, help="Frame rate of the clips."),
    flow: bool = typer.Option(False, "--flow", help="Also write the exact ground-truth flow and its visibility."),
    flow_to: FlowReference = typer.Option(
        FlowReference.prev, "--flow-to", help="With --flow: flow to the previous frame, or straight to the keyframe."
    ),
    force: bool = typer.Option(False, "--force", help="Write into DIR even if it is not empty (same names replaced)."),
) -> None:
    """Generate SynthStreet street-scene clips with per-pixel CamVid labels (docs/SYNTH.md).

    Each clip gets an H.264 video (a keyframe every L frames, no B-frames, one reference), one
    palette PNG of class ids per frame, and with --flow the exact backward flow per frame (to the
    previous frame, or with --flow-to key to the frame's keyframe); a manifest.json describes the
    set. Prints the manifest's path.
    """
    from arseg_cli.synth.dataset import SynthSpec, write_dataset

    height, width = parse_size(size)
    if flow_to is FlowReference.key and not flow:
        raise OptionsError("--flow-to key needs --flow")
    spec = SynthSpec(
        clips=clips, frames=frames, height=height, width=width, seed=seed, fps=fps, keyint=keyint, crf=crf, flow=flow,
        flow_to_key=flow_to is FlowReference.key,
    )
    with frame_progress("synth") as on_frame:
        manifest = write_dataset(output, spec, force=force, on_frame=on_frame)
    console.print(f"wrote {clips} clip(s) of {frames} frames at {height}x{width} to {output}", highlight=False)
    typer.echo(str(manifest))
