"""What a scale-out run reports while it goes: counts over all videos and the videos in flight."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arseg_cli.scaleout.jobs import VideoResult


@dataclass
class InFlight:
    """A video being segmented: by which worker (host, pid, node), which attempt, frames so far."""

    worker: dict[str, Any]
    attempt: int = 1
    frames: int = 0


@dataclass
class RunProgress:
    """Counts of a run. frames: frames of finished videos plus those of the videos in flight."""

    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    finished_frames: int = 0
    in_flight: dict[str, InFlight] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)  # every worker that started: host, pid, node
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None

    @property
    def frames(self) -> int:
        return self.finished_frames + sum(item.frames for item in self.in_flight.values())

    @property
    def elapsed_s(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed

    def add(self, result: VideoResult) -> None:
        """Count a final outcome (not a lost worker's attempt, which is retried)."""
        self.in_flight.pop(result.source, None)
        self.finished_frames += result.frames
        if result.outcome == "skipped":
            self.skipped += 1
        elif result.ok:
            self.done += 1
        else:
            self.failed += 1


#: Called on every change of a run: the counts, and the result that just ended (None for progress).
OnEvent = Callable[[RunProgress, VideoResult | None], None]

__all__ = ["InFlight", "OnEvent", "RunProgress"]
