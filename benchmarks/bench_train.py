"""Training step time of phase hr and phase ar on this CPU (or CUDA); prints one JSON object on stdout.

One step = forward of the phase objective (arseg_cli.train.objective), backward, optimiser and
schedule step, on an in-memory batch (data loading and pair encoding excluded: see bench_pairs.py).
`ar_cached` is phase ar reading the frozen HR features from its feature cache (filled by the warm-up
step) instead of computing them. Steps alternate between the variants so that machine load hits all
alike; medians and minima of `--repeats` steps after `--warmup` each. `ar_over_hr` is the ratio of
the medians, `ar_over_ar_cached` the cache's speed-up. `steps_per_hour`
estimates what a run can do in an hour at the median (data loading not counted).

Usage: `python benchmarks/bench_train.py [--arch camvid-bise18] [--crop 192x256] [--batch 8]
[--scale 0.5] [--repeats 5] [--threads 2] [--device cpu]`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from arseg_cli.model import arch_config, build_arseg
from arseg_cli.train import TrainConfig, Trainer
from arseg_cli.train.distributed import Processes
from arseg_cli.train.feature_cache import FeatureCache


def _batch(batch: int, height: int, width: int, classes: int, device: torch.device) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, height, width), generator=gen, dtype=torch.uint8)
    return {
        "key": images.roll(2, dims=3).to(device),
        "cur": images.to(device),
        "flow": torch.full((batch, 2, height, width), 2.0).to(device),
        "labels": torch.randint(0, classes, (batch, height, width), generator=gen).to(device),
        "index": torch.arange(batch),
        "variant": torch.zeros(batch, dtype=torch.int64),
    }


def _trainer(arch: str, phase: str, scale: float, batch: int, device: torch.device, cache_dir: Path | None = None) -> Trainer:
    meta = arch_config(arch).model_meta(scale=scale if phase == "ar" else None)
    config = TrainConfig(phase=phase, arch=arch, steps=10**6, batch=batch, lr=1e-4, optimizer="adam", scale=scale)  # type: ignore[arg-type]
    cache = None if cache_dir is None else FeatureCache(cache_dir, identity={"bench": True}, items=batch, variants=1)
    return Trainer(build_arseg(meta), [0] * batch, config, Processes(0, 1, device), feature_cache=cache)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="camvid-bise18")
    parser.add_argument("--crop", default="192x256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.warmup = max(args.warmup, 1)  # the first ar_cached step fills its cache
    height, width = (int(v) for v in args.crop.lower().split("x"))
    device = torch.device(args.device)
    cache_dir = Path(tempfile.mkdtemp(prefix="bench-train-features-"))
    trainers = {phase: _trainer(args.arch, phase, args.scale, args.batch, device) for phase in ("hr", "ar")}
    trainers["ar_cached"] = _trainer(args.arch, "ar", args.scale, args.batch, device, cache_dir=cache_dir)
    batch = _batch(args.batch, height, width, arch_config(args.arch).num_classes, device)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for index in range(args.warmup + args.repeats):
        for phase, trainer in trainers.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainer._train_step(batch)  # noqa: SLF001 - the step itself, without the data loader
            if device.type == "cuda":
                torch.cuda.synchronize()
            if index >= args.warmup:
                times[phase].append(time.perf_counter() - start)
    medians = {phase: statistics.median(t) for phase, t in times.items()}
    result = {
        "benchmark": "train_step",
        "arch": args.arch,
        "crop_hw": [height, width],
        "batch": args.batch,
        "scale": args.scale,
        "device": args.device,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        **{f"{phase}_step_s_median": round(m, 4) for phase, m in medians.items()},
        **{f"{phase}_step_s_min": round(min(t), 4) for phase, t in times.items()},
        **{f"{phase}_images_per_s": round(args.batch / m, 2) for phase, m in medians.items()},
        **{f"{phase}_steps_per_hour": int(3600 / m) for phase, m in medians.items()},
        "ar_over_hr": round(medians["ar"] / medians["hr"], 3),
        "ar_over_ar_cached": round(medians["ar"] / medians["ar_cached"], 3),
    }
    shutil.rmtree(cache_dir, ignore_errors=True)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
