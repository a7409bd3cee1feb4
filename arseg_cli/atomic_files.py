"""Atomic outputs: every file arseg writes appears whole under its final name, or not at all.

A file is written under a temporary name in the same directory (so the final rename is atomic on
one file system) and renamed with `os.replace` when complete. On failure or Ctrl-C the temporary is
removed. Temporary names look like `.masks.mp4.arseg-tmp-1f2e3d4c.mp4`: hidden, recognisable by
`is_temp_output` (a later run can clean them up), and ending in the final suffix so that libraries
that pick a format from the extension (PyAV, Pillow) still do.

An existing output is never replaced without `force`, and arseg never deletes files it did not
write: with `force`, only the names it writes are replaced.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from arseg_cli.errors import ArsegError, OutputError, OutputExistsError

TEMP_MARK = ".arseg-tmp-"
_TEMP_RE = re.compile(r"^\..*" + re.escape(TEMP_MARK) + r"[0-9a-f]{8}")
# Keep temporary names under the usual 255-byte file name limit.
_MAX_STEM = 200


def is_stdout(target: str | Path) -> bool:
    """True for the conventional '-' meaning "write to standard output"."""
    return str(target) == "-"


def is_temp_output(path: str | Path) -> bool:
    """True if `path` is named like one of arseg's temporary outputs."""
    return bool(_TEMP_RE.match(Path(path).name))


def output_error(error: OSError, path: str | Path) -> OutputError:
    """A one-line OutputError for an OS-level write failure (disk full, permission denied, ...)."""
    reason = os.strerror(error.errno) if error.errno else (str(error) or type(error).__name__)
    hint = " (disk full?)" if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return OutputError(f"cannot write {path}: {reason}{hint}")


@contextmanager
def os_errors_as_output_errors(path: str | Path) -> Iterator[None]:
    """Re-raise OSErrors of the enclosed writing code as OutputError naming `path`.

    ArsegErrors (some of which are OSErrors too) pass through unchanged, and so does
    BrokenPipeError: the reader of a pipe went away (`arseg ... -o - | head`), which the CLI treats
    as a normal end, not as a failed write. Wrap only code that writes: an OSError from reading an
    input would be mislabelled.
    """
    try:
        yield
    except (ArsegError, BrokenPipeError):
        raise
    except OSError as error:
        raise output_error(error, path) from error


def check_writable(path: str | Path, force: bool) -> Path:
    """Check, before any work starts, that a file may be written at `path`; return it as a Path.

    Raises OutputExistsError if it exists and `force` is False, OutputError if it is a directory,
    something other than a regular file (a device, a FIFO: replacing it by renaming would destroy
    it, even with `force`; '-' is the way to write to a stream), or its parent is not a directory.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give a file name")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path} is not a regular file; give a file name, or '-' for standard output")
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputExistsError(f"{path} exists; use `force` to overwrite")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a directory")
    return path


def prepare_output_dir(path: str | Path, force: bool) -> Path:
    """Create the output directory `path` (with parents) and return it.

    An existing, non-empty directory needs `force`; even then nothing in it is deleted except
    arseg's own leftover temporary files (from an interrupted run): the files arseg writes replace
    their namesakes one by one, and other files are left alone.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} exists and is not a directory")
    with os_errors_as_output_errors(path):
        if path.is_dir() and any(path.iterdir()):
            if not force:
                raise OutputExistsError(f"{path} exists and is not empty; use `force` to write into it")
            remove_temp_outputs(path)
        path.mkdir(parents=True, exist_ok=True)
    return path


def remove_temp_outputs(directory: str | Path) -> list[Path]:
    """Delete arseg's leftover temporary files directly inside `directory`; return what was removed."""
    removed = []
    for entry in Path(directory).iterdir():
        if entry.is_file() and is_temp_output(entry):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _create_temp(final: Path) -> Path:
    """Create (exclusively, with the usual umask-governed permissions) an empty temporary beside `final`."""
    stem = final.name[:_MAX_STEM]
    while True:
        candidate = final.with_name(f".{stem}{TEMP_MARK}{secrets.token_hex(4)}{final.suffix}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate


class AtomicFile:
    """The class form of `atomic_path`, for writers that live across many calls (videos, raw streams).

    Construction checks `final` (OutputExistsError without `force`) and creates the empty temporary
    `temp` beside it; `commit()` renames it to `final`, `discard()` deletes it. Exactly one of them
    should end its life; both are idempotent and a second, different call is ignored.
    """

    def __init__(self, final: str | Path, *, force: bool) -> None:
        self.final = check_writable(final, force)
        self.force = force
        with os_errors_as_output_errors(self.final):
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self.temp = _create_temp(self.final)
        self._done = False

    def commit(self) -> Path:
        """Rename the temporary to the final name (OutputExistsError if it appeared meanwhile, without force)."""
        if self._done:
            return self.final
        try:
            if not self.force and (self.final.exists() or self.final.is_symlink()):
                raise OutputExistsError(f"{self.final} exists; use `force` to overwrite")
            with os_errors_as_output_errors(self.final):
                os.replace(self.temp, self.final)
        except BaseException:
            self.discard()
            raise
        self._done = True
        return self.final

    def discard(self) -> None:
        """Delete the temporary; the final name is left as it was."""
        if not self._done:
            self._done = True
            self.temp.unlink(missing_ok=True)


@contextmanager
def atomic_path(final: str | Path, *, force: bool) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success rename it to `final`, on failure remove it.

    The caller writes the complete file to the yielded path (it exists, empty). If the block raises
    anything (including KeyboardInterrupt) the temporary is deleted and the error propagates;
    `final` is untouched. Without `force` an existing `final` raises OutputExistsError, checked both
    before and right before the rename. OSErrors of the temporary's creation and of the rename
    become OutputError; errors raised inside the block are not translated (see
    `os_errors_as_output_errors`).
    """
    atomic = AtomicFile(final, force=force)
    try:
        yield atomic.temp
    except BaseException:
        atomic.discard()
        raise
    atomic.commit()
