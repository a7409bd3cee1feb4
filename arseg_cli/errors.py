"""The one error family of arseg.

Library code raises these; only the CLI turns them into a one-line message and an exit code
(docs/CLI.md lists the codes). A subclass also inherits the builtin it means where one fits, so
Python callers can catch by meaning (`except FileNotFoundError`).
"""

from __future__ import annotations


class ArsegError(Exception):
    """Base class: a problem the user can fix, with a one-line message."""

    exit_code: int = 1


class InputError(ArsegError, ValueError):
    """The input (video, data set, file) cannot be used as given."""


class InputNotFoundError(ArsegError, FileNotFoundError):
    """An input path does not exist."""


class VideoDecodeError(InputError):
    """The container or the stream could not be decoded (corrupt, truncated, not a video)."""


class UnsupportedCodecError(InputError):
    """The stream's codec cannot be handled the way that was asked for."""


class WeightsError(ArsegError, ValueError):
    """A weights file is missing, malformed, unsafe or does not fit the model."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """The weights path does not exist."""


class OutputExistsError(ArsegError, FileExistsError):
    """An output already exists and `--force` was not given."""


class OutputError(ArsegError, OSError):
    """An output could not be written (disk full, permissions, ...)."""


class OptionsError(ArsegError):
    """Options that contradict each other; a usage error."""

    exit_code = 2


class OutOfRangeError(OptionsError, ValueError):
    """A value outside the range its option allows (scale s, keyframe interval L, ...)."""
