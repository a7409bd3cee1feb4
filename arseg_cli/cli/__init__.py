"""The `arseg` command line: assembles the commands; each lives in its own module."""

from __future__ import annotations

from collections.abc import Sequence

from arseg_cli.cli import encode, info, motion
from arseg_cli.cli import synth, weights
from arseg_cli.cli import train as train_cli
from arseg_cli.cli import eval as eval_cli
from arseg_cli.cli import calibrate as calibrate_cli
from arseg_cli.cli import segment as segment_cli
from arseg_cli.cli import bench as bench_cli, export_onnx as export_onnx_cli
from arseg_cli.cli._app import app, run_app

app.command("segment")(segment_cli.segment_command)
app.command("info")(info.info_command)
app.command("encode")(encode.encode_command)
app.command("motion")(motion.motion_command)
app.add_typer(weights.app, name="weights")
app.command("synth")(synth.synth_command)
app.command("train")(train_cli.train_command)
app.command("eval")(eval_cli.eval_command)
app.command("calibrate")(calibrate_cli.calibrate_command)
app.command("bench")(bench_cli.bench_command); app.command("export-onnx")(export_onnx_cli.export_onnx_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (0 ok, 1 runtime/input error, 2 usage error, 130 Ctrl-C)."""
    return run_app(argv)


__all__ = ["app", "main"]
