"""Atomic outputs: nothing half-written, nothing overwritten without force, clear errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from arseg_cli.errors import OutputError, OutputExistsError
from arseg_cli.atomic_files import (
    AtomicFile,
    atomic_path,
    check_writable,
    is_stdout,
    is_temp_output,
    os_errors_as_output_errors,
    prepare_output_dir,
    remove_temp_outputs,
)


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_atomic_path_renames_on_success_and_leaves_no_temp(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    with atomic_path(final, force=False) as temp:
        assert temp.parent == tmp_path and temp.exists() and is_temp_output(temp)
        assert temp.suffix == ".bin"  # libraries pick formats from the suffix
        assert not final.exists()  # nothing under the final name while writing
        temp.write_bytes(b"data")
    assert final.read_bytes() == b"data"
    assert _names(tmp_path) == ["out.bin"]


def test_atomic_path_creates_missing_parent_directories(tmp_path: Path) -> None:
    final = tmp_path / "a" / "b" / "out.txt"
    with atomic_path(final, force=False) as temp:
        temp.write_text("x")
    assert final.read_text() == "x"


def test_existing_output_is_not_overwritten_without_force(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    final.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="use `force`"):
        with atomic_path(final, force=False) as temp:
            temp.write_bytes(b"new")  # pragma: no cover - never reached
    assert final.read_bytes() == b"precious"
    assert _names(tmp_path) == ["out.bin"]


def test_force_replaces_an_existing_output(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    final.write_bytes(b"old")
    with atomic_path(final, force=True) as temp:
        temp.write_bytes(b"new")
    assert final.read_bytes() == b"new"
    assert _names(tmp_path) == ["out.bin"]


def test_output_appearing_during_the_write_is_not_clobbered(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    with pytest.raises(OutputExistsError):
        with atomic_path(final, force=False) as temp:
            temp.write_bytes(b"ours")
            final.write_bytes(b"someone else's")
    assert final.read_bytes() == b"someone else's"
    assert _names(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_mid_write_leaves_neither_temp_nor_final(tmp_path: Path, error: BaseException) -> None:
    final = tmp_path / "out.bin"
    with pytest.raises(type(error)):
        with atomic_path(final, force=False) as temp:
            temp.write_bytes(b"half")
            raise error
    assert _names(tmp_path) == []


def test_failure_mid_write_keeps_the_previous_file_with_force(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(final, force=True) as temp:
            temp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert final.read_bytes() == b"old"
    assert _names(tmp_path) == ["out.bin"]


def test_disk_full_on_rename_becomes_output_error_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match="No space left on device") as info:
        with atomic_path(tmp_path / "out.bin", force=False) as temp:
            temp.write_bytes(b"data")
    assert "\n" not in str(info.value)
    assert _names(tmp_path) == []


def test_disk_full_while_writing_becomes_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="out.bin: No space left on device"):
        with atomic_path(tmp_path / "out.bin", force=False) as temp:
            with os_errors_as_output_errors(temp.parent / "out.bin"):
                raise OSError(errno.ENOSPC, "disk full")
    assert _names(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
def test_unwritable_directory_gives_output_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="Permission denied"):
            with atomic_path(locked / "out.bin", force=False):
                pass  # pragma: no cover - never reached
    finally:
        locked.chmod(0o700)


def test_permission_denied_on_create_gives_output_error_and_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(OutputError, match="out.bin: Permission denied"):
        with atomic_path(tmp_path / "out.bin", force=False):
            pass  # pragma: no cover - never reached
    assert _names(tmp_path) == []


def test_temporary_files_get_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    with atomic_path(tmp_path / "out.bin", force=False) as temp:
        temp.write_bytes(b"x")
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o666 & ~umask


def test_check_writable_refuses_directories_and_existing_files(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a directory"):
        check_writable(tmp_path, force=True)
    existing = tmp_path / "x.png"
    existing.write_bytes(b"")
    with pytest.raises(OutputExistsError):
        check_writable(existing, force=False)
    assert check_writable(existing, force=True) == existing
    assert check_writable(tmp_path / "new.png", force=False) == tmp_path / "new.png"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_check_writable_refuses_a_special_file_even_with_force(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        check_writable(fifo, force=True)
    with pytest.raises(OutputError, match="not a regular file"):
        check_writable("/dev/null", force=True)
    assert fifo.exists() and not fifo.is_file()


def test_a_broken_pipe_is_not_turned_into_an_output_error() -> None:
    # The CLI ends quietly when the reader of stdout goes away; an OutputError would report a failure.
    with pytest.raises(BrokenPipeError), os_errors_as_output_errors("-"):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_prepare_output_dir_creates_and_accepts_an_empty_directory(tmp_path: Path) -> None:
    assert prepare_output_dir(tmp_path / "masks" / "a", force=False).is_dir()
    assert prepare_output_dir(tmp_path / "masks" / "a", force=False).is_dir()  # empty: fine


def test_prepare_output_dir_needs_force_for_a_non_empty_directory_and_keeps_user_files(tmp_path: Path) -> None:
    out = tmp_path / "masks"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / ".000001.png.arseg-tmp-0a1b2c3d.png").write_bytes(b"leftover")
    with pytest.raises(OutputExistsError, match="not empty; use `force`"):
        prepare_output_dir(out, force=False)
    assert len(_names(out)) == 2
    prepare_output_dir(out, force=True)
    assert _names(out) == ["notes.txt"]  # only arseg's own leftover temporary was removed
    assert (out / "notes.txt").read_text() == "mine"


def test_prepare_output_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        prepare_output_dir(tmp_path / "f", force=True)


def test_temp_names_are_recognised_and_others_are_not(tmp_path: Path) -> None:
    assert is_temp_output(".video.mp4.arseg-tmp-0123abcd.mp4")
    assert not is_temp_output("video.mp4")
    assert not is_temp_output(".hidden")
    assert not is_temp_output("arseg-tmp-0123abcd")
    (tmp_path / "keep.png").write_bytes(b"")
    (tmp_path / ".keep.png.arseg-tmp-ffffffff.png").write_bytes(b"")
    assert [p.name for p in remove_temp_outputs(tmp_path)] == [".keep.png.arseg-tmp-ffffffff.png"]
    assert _names(tmp_path) == ["keep.png"]


def test_dash_means_stdout() -> None:
    assert is_stdout("-") and is_stdout(Path("-"))
    assert not is_stdout("-.mp4") and not is_stdout("out")


def test_atomic_file_commit_and_discard(tmp_path: Path) -> None:
    kept = AtomicFile(tmp_path / "kept.bin", force=False)
    kept.temp.write_bytes(b"k")
    assert kept.commit() == tmp_path / "kept.bin"
    kept.discard()  # after commit: ignored
    dropped = AtomicFile(tmp_path / "dropped.bin", force=False)
    dropped.temp.write_bytes(b"d")
    dropped.discard()
    assert _names(tmp_path) == ["kept.bin"]
    assert (tmp_path / "kept.bin").read_bytes() == b"k"
