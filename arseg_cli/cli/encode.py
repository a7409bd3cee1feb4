"""`arseg encode`: placeholder until the video front end lands."""

from __future__ import annotations

from arseg_cli.errors import ArsegError


def encode_command() -> None:
    """Not implemented yet."""
    raise ArsegError("`arseg encode` is not implemented yet")
