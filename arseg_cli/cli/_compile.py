"""The `--compile` option of the commands that run the model on frames (segment, bench, eval)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("arseg_cli.cli")

HELP = (
    "CPU: run CReFF's attention through torch.compile, ~1.4x faster CReFF after a one-off compile "
    "(~12 s on a cold cache, ~2-3 s warm); needs a C++ compiler, else a warning and the uncompiled kernel."
)


def compile_option() -> Any:
    return typer.Option(False, "--compile", help=HELP)


def apply_compile_option(enabled: bool, device: torch.device) -> None:
    """Turn the compiled CReFF attention on for this process when asked, on the CPU."""
    if not enabled:
        return
    if device.type != "cpu":
        logger.warning("--compile speeds up CReFF on the CPU only; on %s it has no effect", device.type)
        return
    from arseg_cli.model import use_compiled_attention

    use_compiled_attention(True)
