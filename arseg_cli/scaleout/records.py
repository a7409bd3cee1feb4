"""Run records: `OUT/_runs/<run>.jsonl`, one JSON line per video outcome, appended as each one ends.

A line: input, stem, size and mtime of the input, the weights fingerprint and output options
(JobOptions.fingerprint), outcome, seconds (and the worker's CPU seconds), frames, attempt, the worker,
the error. Each driver (a Ray
run, or one `--shard` of an array job) writes its own file, so nothing writes a file concurrently.
`--resume` reads every file in `OUT/_runs/`: a video whose latest record says `done` for the same
input file, weights and options, and whose outputs are all there, is skipped. A `started` line is
written when a video is handed out, before any of its outputs change: a video whose latest line is
`started` was cut off, and its outputs may mix two runs' (so it is never skipped, and continued from
its PNGs only under the same options). The input's size and mtime are those at its start.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from arseg_cli.atomic_files import os_errors_as_output_errors
from arseg_cli.scaleout.jobs import VideoJob, VideoResult

RUNS_DIR = "_runs"


@dataclass(frozen=True)
class InputStamp:
    """An input file as it was when segmented: its size and modification time (ns)."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, source: str) -> InputStamp:
        status = os.stat(source)
        return cls(status.st_size, status.st_mtime_ns)


class RunRecorder:
    """Appends one line per outcome to `OUT/_runs/<run>.jsonl` (flushed and synced: a driver that is
    killed loses nothing it reported)."""

    def __init__(self, output: str | Path, run: str | None = None) -> None:
        self.run = run or new_run_name()
        self.path = Path(output) / RUNS_DIR / f"{self.run}.jsonl"
        with os_errors_as_output_errors(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO = open(self.path, "a", encoding="utf-8")
        self._stamps: dict[str, InputStamp | None] = {}

    def started(self, job: VideoJob, fingerprint: dict[str, Any]) -> None:
        """The line saying `job` is handed out (its input's stamp taken now)."""
        self._stamps[job.source] = InputStamp.of(job.source) if os.path.isfile(job.source) else None
        self._write(self._line(job, fingerprint, "started"))

    def record(self, job: VideoJob, result: VideoResult, fingerprint: dict[str, Any]) -> None:
        line = self._line(job, fingerprint, result.outcome) | {
            "seconds": round(result.seconds, 3),
            "cpu_seconds": round(result.cpu_s, 3),
            "frames": result.frames,
            "attempt": result.attempt,
            "worker": result.worker,
            "error": result.error,
            "outputs": {kind.value: path for kind, path in job.targets.paths().items()},
        }
        self._write(line)

    def _line(self, job: VideoJob, fingerprint: dict[str, Any], outcome: str) -> dict[str, Any]:
        if job.source in self._stamps:
            stamp = self._stamps[job.source]
        else:
            stamp = InputStamp.of(job.source) if os.path.isfile(job.source) else None
        return {
            "run": self.run,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "input": job.source,
            "stem": Path(job.folder).name,
            "size": stamp.size if stamp else None,
            "mtime_ns": stamp.mtime_ns if stamp else None,
            "options": fingerprint,
            "outcome": outcome,
        }

    def _write(self, line: dict[str, Any]) -> None:
        with os_errors_as_output_errors(self.path):
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def new_run_name() -> str:
    """UTC time, host and a random tag: unique across the drivers of one output directory."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.uname().nodename}-{secrets.token_hex(3)}"


def read_records(output: str | Path) -> list[dict[str, Any]]:
    """Every record under `OUT/_runs/`, oldest file first; a line cut short by a crash is ignored."""
    records = []
    for path in sorted((Path(output) / RUNS_DIR).glob("*.jsonl"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and "input" in entry:
                records.append(entry)
    return records


def completed_inputs(output: str | Path, jobs: Iterable[VideoJob], fingerprint: dict[str, Any]) -> set[str]:
    """The jobs' inputs that an earlier run finished (`done`) with the same input file, weights and
    options, and whose outputs are complete: `--resume` skips them."""
    latest: dict[str, dict[str, Any]] = {}
    for entry in read_records(output):
        if entry.get("outcome") in ("started", "done", "damaged", "failed"):
            latest[entry["input"]] = entry
    done = set()
    for job in jobs:
        entry = latest.get(job.source)
        if entry is None or entry.get("outcome") != "done" or entry.get("options") != fingerprint:
            continue
        if not os.path.isfile(job.source) or InputStamp.of(job.source) != InputStamp(entry.get("size"), entry.get("mtime_ns")):
            continue
        if _outputs_complete(job, int(entry.get("frames") or 0)):
            done.add(job.source)
    return done


def _outputs_complete(job: VideoJob, frames: int) -> bool:
    for kind, path in job.targets.paths().items():
        if kind.value == "png":
            if len(list(Path(path).glob("*.png"))) < frames:
                return False
        elif not Path(path).is_file():
            return False
    return True


__all__ = ["RUNS_DIR", "InputStamp", "RunRecorder", "completed_inputs", "new_run_name", "read_records"]
