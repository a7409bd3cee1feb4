"""Seconds per pipeline stage (decode, motion, model, write), measured around the stages as they run."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")


@dataclass
class StageTimes:
    """Seconds spent per stage (wall clock; CUDA work is synchronised before each reading)."""

    decode: float = 0.0
    motion: float = 0.0
    model: float = 0.0
    write: float = 0.0

    @property
    def total(self) -> float:
        return self.decode + self.motion + self.model + self.write

    def to_json(self) -> dict[str, float]:
        return {"decode": self.decode, "motion": self.motion, "model": self.model, "write": self.write}


class StageClock:
    """Adds the wall-clock seconds of each stage to StageTimes; waits for CUDA work before reading."""

    def __init__(self, device: torch.device, times: StageTimes) -> None:
        self.times = times
        self._cuda = device.type == "cuda"

    def pulled(self, items: Iterable[T]) -> Iterator[T]:
        """`items`, with the time spent producing each one added to `decode`."""
        iterator = iter(items)
        while True:
            tick = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.times.decode += time.perf_counter() - tick
                return
            self.times.decode += time.perf_counter() - tick
            yield item

    def stage(self, name: str) -> _Stage:
        return _Stage(self, name)


class _Stage:
    def __init__(self, clock: StageClock, name: str) -> None:
        self.clock, self.name = clock, name

    def __enter__(self) -> None:
        if self.clock._cuda:
            torch.cuda.synchronize()
        self.tick = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self.clock._cuda:
            torch.cuda.synchronize()
        times = self.clock.times
        setattr(times, self.name, getattr(times, self.name) + time.perf_counter() - self.tick)
