"""The `--compile` option of the commands that run the model on frames (segment, bench, eval)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import torch

    from arseg_cli.model.arseg import ARSeg

logger = logging.getLogger("arseg_cli.cli")

HELP = (
    "CPU: run CReFF's attention through torch.compile, ~1.4x faster CReFF after a one-off compile "
    "(~12 s on a cold cache, ~2-3 s warm); needs a C++ compiler, else a warning and the uncompiled kernel."
)


def compile_option() -> Any:
    return typer.Option(False, "--compile", help=HELP)


def compile_on(enabled: bool, device: torch.device) -> bool:
    """Whether `--compile` applies on `device` (the CPU only; elsewhere a warning says it has no effect)."""
    if enabled and device.type != "cpu":
        logger.warning("--compile speeds up CReFF on the CPU only; on %s it has no effect", device.type)
        return False
    return enabled


def apply_compile_option(enabled: bool, model: ARSeg) -> None:
    """Have `model` run CReFF's attention compiled when `--compile` was given and it runs on the CPU."""
    if compile_on(enabled, model.device):
        model.use_compiled_attention(True)
