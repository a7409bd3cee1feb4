"""The `--arch` option: its values are the registered architectures (`arseg_cli.model.list_archs`).

The registry is read when a value is checked or completed, not when the CLI is assembled, so commands
that never look at an architecture (`arseg --version`, `arseg info`) do not import torch.
`arseg weights archs` lists the choices.
"""

from __future__ import annotations

from typing import Any

import typer


def registered_archs() -> list[str]:
    """The registered architecture ids, sorted."""
    from arseg_cli.model import list_archs

    return list_archs()


def parse_arch(value: str) -> str:
    """`value` if it is a registered architecture id; otherwise a usage error naming the choices."""
    archs = registered_archs()
    if value not in archs:
        raise typer.BadParameter(f"unknown architecture {value!r}: choose one of {', '.join(archs)}")
    return value


def _complete(incomplete: str) -> list[str]:
    return [arch for arch in registered_archs() if arch.startswith(incomplete)]


def arch_option(default: Any, help: str) -> Any:
    """A `--arch` option taking a registered architecture id (`arseg weights archs` lists them)."""
    return typer.Option(
        default, "--arch", metavar="ARCH", parser=parse_arch, autocompletion=_complete,
        help=f"{help} ARCH: a registered architecture (`arseg weights archs`).",
    )  # fmt: skip
