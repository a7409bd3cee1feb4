"""The `--compile` option of the commands that run the model on frames (segment, bench, eval)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from arseg_cli.model.arseg import ARSeg

HELP = (
    "CPU: run CReFF's attention through torch.compile instead of arseg's native kernel (the default where it "
    "is built, ~1.5x faster than the compiled path: docs/BENCHMARKS.md); for machines without that build. A "
    "one-off compile (~12 s on a cold cache, ~2-3 s warm); needs a C++ compiler, else a warning and the PyTorch kernel."
)


def compile_option() -> Any:
    return typer.Option(False, "--compile", help=HELP)


def apply_compile_option(enabled: bool, model: ARSeg) -> None:
    """Have `model` run CReFF's attention compiled when `--compile` was given and it runs on the CPU."""
    from arseg_cli.options import compile_on

    if compile_on(enabled, model.device):
        model.use_compiled_attention(True)
