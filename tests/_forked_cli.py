"""Run many `arseg` command lines as real processes, each with its own timeout, cheaply.

Starting Python and importing torch costs ~2 s per process on the shared 2-core machine; a corpus of
dozens of inputs run as `python -m arseg_cli ...` each would take minutes. Instead one server process
imports the CLI and the segment path once (no torch op runs, so forking is safe) and forks one child
per command line: each child is a real process running the CLI entry point (`arseg_cli.cli.main`)
with its own stdin, stdout and stderr files, its exit code is the process's, and it is killed
(SIGKILL) when it exceeds its timeout: a hang shows up as `timed_out`, never as a stuck test.

Protocol: the test writes one JSON request per line on the server's stdin ({"args": [...], "dir": ...,
"timeout": s, "stdin": path or null}); the server answers one JSON line on its stdout ({"code": int or
null, "timed_out": bool, "seconds": float}); the child's stdout and stderr are `dir/stdout`, `dir/stderr`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Outcome:
    """What one command line did: exit code (None when killed), whether it timed out, its output."""

    code: int | None
    timed_out: bool
    seconds: float
    stdout: bytes
    stderr: str


class ForkedCli:
    """A running server (use as a context manager); `run(args, workdir, timeout)` -> Outcome."""

    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"}
        self._server = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )
        assert self._server.stdout is not None and self._server.stdout.readline().strip() == "ready"

    def run(self, args: list[str], workdir: Path, *, timeout: float = 60, stdin: Path | None = None) -> Outcome:
        workdir.mkdir(parents=True, exist_ok=True)
        request = {"args": args, "dir": str(workdir), "timeout": timeout, "stdin": str(stdin) if stdin else None}
        assert self._server.stdin is not None and self._server.stdout is not None
        self._server.stdin.write(json.dumps(request) + "\n")
        self._server.stdin.flush()
        reply = json.loads(self._server.stdout.readline())
        return Outcome(reply["code"], reply["timed_out"], reply["seconds"], (workdir / "stdout").read_bytes(),
                       (workdir / "stderr").read_text(errors="replace"))  # fmt: skip

    def close(self) -> None:
        if self._server.stdin is not None:
            self._server.stdin.close()
        try:
            self._server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()

    def __enter__(self) -> ForkedCli:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _child(request: dict) -> None:
    """In the forked child: redirect the standard streams, run the CLI, exit with its code."""
    import io

    from arseg_cli.cli import main

    workdir = Path(request["dir"])
    streams = (request["stdin"] or os.devnull, workdir / "stdout", workdir / "stderr")
    for fd, (path, flags) in enumerate(zip(streams, (os.O_RDONLY, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC))):  # fmt: skip
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), write_through=True)
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), write_through=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 1
    try:
        code = main(request["args"])
    except BaseException:  # main() returns codes; anything escaping it is a defect the test must see
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _wait(pid: int, timeout: float) -> tuple[int | None, bool]:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), False
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, True
        time.sleep(0.01)


def _serve() -> None:
    # Imported once, before any fork: the CLI and what `segment` loads (torch, PyAV, the pipeline), so
    # that a child does not pay ~2 s of imports. Importing runs no torch op, so no thread pool exists
    # yet and forking is safe (as DataLoader workers fork after importing torch).
    import arseg_cli.cli  # noqa: F401
    import arseg_cli.segment_run  # noqa: F401

    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        started = time.monotonic()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        code, timed_out = _wait(pid, float(request["timeout"]))
        reply = {"code": code, "timed_out": timed_out, "seconds": time.monotonic() - started}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    _serve()
