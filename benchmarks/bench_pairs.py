"""Cost of one training/evaluation pair (make_pair) at 360x480, d = 11; prints one JSON object on stdout.

The frames are SynthStreet renders held in memory (no file reading in the timing). Per repeat, timed:
make_pair as a whole (encode the d + 1 frames with libx264 in memory, decode with motion-vector export,
accumulate the flow to the keyframe) for the x264 presets asked, wall clock and process CPU; and the
baseline, in the same run: reading the same pair back from a PairCache (.npz). Medians over repeats.
The machine is shared (2 cores, other work running), so wall times vary between runs; the CPU times
and the ratio are steadier. Usage:
`python benchmarks/bench_pairs.py [--size 360x480] [--distance 11] [--repeats 5] [--presets medium,veryfast]`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from arseg_cli import __version__
from arseg_cli.data import Dataset, LabelledFrame, PairCache, make_pair
from arseg_cli.palettes import CAMVID
from arseg_cli.synth import SynthClip


class _MemorySource:
    """Frames held in memory (a FrameSource)."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames

    def read(self, start: int, stop: int) -> list[np.ndarray]:
        return self.frames[start:stop]

    def __len__(self) -> int:
        return len(self.frames)


def _timed(function: object, repeats: int) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for _ in range(repeats):
        cpu_start, start = time.process_time(), time.perf_counter()
        function()  # type: ignore[operator]
        wall.append(1e3 * (time.perf_counter() - start))
        cpu.append(1e3 * (time.process_time() - cpu_start))
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="360x480")
    parser.add_argument("--distance", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--presets", default="medium,veryfast")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    clip = SynthClip(seed=0, index=0, frames=args.distance + 1, height=height, width=width)
    rendered = [clip.render(t) for t in range(args.distance + 1)]
    with tempfile.TemporaryDirectory() as scratch:
        labels = Path(scratch) / "labels.png"
        Image.fromarray(rendered[-1].labels).save(labels)
        frame = LabelledFrame("bench", _MemorySource([r.rgb for r in rendered]), args.distance, labels)
        dataset = Dataset("bench", "synthstreet", "all", CAMVID.classes, CAMVID, (frame,))
        results: dict[str, dict[str, float]] = {}
        for preset in args.presets.split(","):
            wall, cpu = _timed(lambda: make_pair(dataset, frame, args.distance, preset=preset), args.repeats)
            results[preset] = {"median_ms": round(statistics.median(wall), 1),
                               "min_ms": round(min(wall), 1), "cpu_median_ms": round(statistics.median(cpu), 1)}  # fmt: skip
        cache = PairCache(Path(scratch) / "cache")
        cache.get(dataset, frame, args.distance)
        wall, cpu = _timed(lambda: cache.get(dataset, frame, args.distance), args.repeats)
    baseline = statistics.median(wall)
    first = args.presets.split(",")[0]
    print(json.dumps({
        "benchmark": "make_pair",
        "arseg": __version__, "av": av.__version__, "numpy": np.__version__, "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "size": f"{height}x{width}", "distance": args.distance, "frames_encoded": args.distance + 1,
        "repeats": args.repeats, "crf": 23,
        "make_pair": results,
        "baseline_cache_hit": {"median_ms": round(baseline, 2), "cpu_median_ms": round(statistics.median(cpu), 2)},
        f"ratio_{first}_vs_cache_hit": round(results[first]["median_ms"] / baseline, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
