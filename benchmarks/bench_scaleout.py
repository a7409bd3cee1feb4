"""Scale-out on Ray: videos per minute with 1 and 2 workers (one torch thread each), the scaling ratio, and
the driver's overhead per video; prints one JSON object on stdout.

`--videos` synthetic clips (make_clip, 480x360, `--frames` frames, libx264) are segmented with the default
weights into a fresh directory per run (label PNGs), on a Ray cluster started here (one node, 2 CPUs,
loopback only), and in this process without Ray (`local`, one thread) as the baseline. The variants are
interleaved, `--repeats` times; medians are reported. videos/min counts the whole call (the workers'
start and model load included), after_startup_videos_per_min from the first worker ready (`startup_s`)
to the end; the load average at the end shows how busy the machine was; the driver's
overhead per video is the time from handing a video out to holding its result, less the time the worker
spent on it (dispatch, pickling the result, polling); worker_cpu_share is a worker's CPU seconds per
wall second on a video (1.0: a whole core for its one thread). Usage: `python benchmarks/bench_scaleout.py
[--videos 8] [--frames 16] [--repeats 2]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # a single-machine cluster on 127.0.0.1, read at import

import torch

from arseg_cli.scaleout import RunProgress, VideoResult, WorkerSpec, segment_many
from arseg_cli.video.synthetic import make_clip, write_clip

HEIGHT, WIDTH = 360, 480


def make_videos(folder: Path, count: int, frames: int) -> list[Path]:
    return [write_clip(make_clip(frames, HEIGHT, WIDTH, seed=i).frames, folder / f"clip{i}.mp4", keyint=12,
                       preset="ultrafast") for i in range(count)]  # fmt: skip


def run_once(videos: list[Path], address: str | None, workers: int, out: Path) -> dict[str, float]:
    ready: list[float] = []
    started = time.perf_counter()

    def first_worker(progress: RunProgress, result: VideoResult | None) -> None:
        if not ready and (progress.workers or address is None):
            ready.append(time.perf_counter() - started)

    report = segment_many(videos, out, ray_address=address, workers=WorkerSpec(workers=workers),
                          on_event=first_worker)  # fmt: skip
    wall = time.perf_counter() - started
    assert report.ok and len(report.results) == len(videos), [r.error for r in report.results]
    overhead = [r.turnaround_s - r.seconds for r in report.results] if address else [0.0]
    startup = ready[0] if ready else float("nan")
    return {"wall_s": wall, "videos_per_min": 60 * len(videos) / wall, "startup_s": startup,
            "after_startup_videos_per_min": 60 * len(videos) / (wall - startup),
            "driver_overhead_ms": 1000 * statistics.median(overhead),
            "segment_s_per_video": statistics.median(r.seconds for r in report.results),
            "worker_cpu_share": statistics.median(r.cpu_s / r.seconds for r in report.results)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    ray_constants.ENABLE_RAY_CLUSTER = False
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": 200 * 1024**2,
                                                           "node_ip_address": "127.0.0.1", "include_dashboard": False})  # fmt: skip
    variants: dict[str, list[dict[str, float]]] = {"local": [], "ray-1": [], "ray-2": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            videos = make_videos(Path(tmp), args.videos, args.frames)
            for repeat in range(args.repeats):
                for name in variants:
                    address = None if name == "local" else cluster.address
                    workers = 2 if name == "ray-2" else 1
                    variants[name].append(run_once(videos, address, workers, Path(tmp) / f"out-{name}-{repeat}"))
                    print(name, variants[name][-1], file=sys.stderr)
    finally:
        cluster.shutdown()
    medians = {name: {key: statistics.median(run[key] for run in runs) for key in runs[0]} for name, runs in variants.items()}
    result: dict[str, Any] = {
        "videos": args.videos, "frames": args.frames, "size": f"{WIDTH}x{HEIGHT}", "repeats": args.repeats,
        "weights": "default", "torch_threads_per_worker": 1, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"), "median": medians,
        "scaling_ratio": medians["ray-2"]["videos_per_min"] / medians["ray-1"]["videos_per_min"],
        "scaling_ratio_after_startup": (medians["ray-2"]["after_startup_videos_per_min"]
                                        / medians["ray-1"]["after_startup_videos_per_min"]),
        "ray_1_vs_local": medians["ray-1"]["videos_per_min"] / medians["local"]["videos_per_min"],
        "load_average": os.getloadavg(),
    }  # fmt: skip
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
