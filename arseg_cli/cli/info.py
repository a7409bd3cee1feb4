"""`arseg info`: placeholder until the video front end lands."""

from __future__ import annotations

from arseg_cli.errors import ArsegError


def info_command() -> None:
    """Not implemented yet."""
    raise ArsegError("`arseg info` is not implemented yet")
