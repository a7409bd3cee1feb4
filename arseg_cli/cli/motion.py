"""`arseg motion`: placeholder until the video front end lands."""

from __future__ import annotations

from arseg_cli.errors import ArsegError


def motion_command() -> None:
    """Not implemented yet."""
    raise ArsegError("`arseg motion` is not implemented yet")
