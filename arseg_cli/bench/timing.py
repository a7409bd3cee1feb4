"""Latency measurement: warm-up, repeats, median and p90, CUDA synchronised, calls taking turns.

Shared by `arseg bench` and the scripts in benchmarks/. On a machine that other work also uses, calls
that take turns (`interleaved`) are hit alike by that load, so their ratios are the figures to trust.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Wall-clock seconds of `len(runs_s)` timed calls (after `warmup` untimed ones)."""

    runs_s: tuple[float, ...]
    warmup: int

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    @property
    def p90_s(self) -> float:
        """90th percentile (linear interpolation between the sorted runs)."""
        return float(np.percentile(self.runs_s, 90))

    @property
    def min_s(self) -> float:
        return min(self.runs_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "median_s": self.median_s,
            "p90_s": self.p90_s,
            "min_s": self.min_s,
            "repeats": len(self.runs_s),
            "warmup": self.warmup,
            "runs_s": list(self.runs_s),
        }


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; a CPU call has finished on return)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], object], device: torch.device | str = "cpu") -> float:
    """Seconds one call of `call` takes, its device work included."""
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start


def interleaved(
    calls: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int = 1, device: torch.device | str = "cpu"
) -> dict[str, LatencyStats]:
    """LatencyStats of each call: `warmup` untimed calls each, then `repeats` rounds in which every call
    runs once, in turn."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        for call in calls.values():
            call()
    runs: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            runs[name].append(timed(call, device))
    return {name: LatencyStats(tuple(times), warmup) for name, times in runs.items()}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Versions and hardware the figures were taken on."""
    device = torch.device(device)
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
