"""Issue 19's CPU speed targets, as the user meets them; prints one JSON object on stdout.

1. End to end: `arseg segment VIDEO -o DIR --json` (default options: AR at the weights' 0.5x, L = 12)
   against the same with `--scale 1.0`, each a fresh process; the fps is the one `--json` reports
   (first decode to last write). 720x960, `--frames` frames of a synthetic H.264 video (panning texture,
   an I-frame every 12 frames). camvid-bise18 runs the default weights; camvid-psp18 random weights
   (seed 0, saved with scale 0.5 and L = 12: speed does not depend on the values).
   Each run's CPU seconds (user + system, start-up included) are reported too: on a loaded machine
   they are steadier than wall time, and their ratio is conservative (both runs pay the same start-up).
2. Model level: `arseg bench --arch ARCH --json` (720x960, s = 0.5, L = 12; its measured speed-up).
Every variant runs from each `--checkout` (a source tree: `python -m arseg_cli` imports the one it runs
in), so that a before/after comparison alternates in one run; runs of one round take turns, and the
medians over `--repeats` rounds are reported with their ratios. `--threads N` sets OMP_NUM_THREADS for
the children (default: unset, torch's own choice, as a user gets it).

Usage: `python benchmarks/bench_speed_targets.py [--checkout .] [--checkout ../main] [--archs camvid-bise18]
[--frames 48] [--repeats 3] [--threads 1] [--parts segment,bench]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HEIGHT, WIDTH, L = 720, 960, 12
ARCHS = ("camvid-bise18", "camvid-psp18")


def make_inputs(work: Path, frames: int, archs: list[str]) -> tuple[Path, dict[str, list[str]]]:
    """The video, and the `--weights` arguments of each arch (none: the default weights)."""
    import torch

    from arseg_cli.model import build_arseg, save_weights
    from arseg_cli.model.architecture import CAMVID_MEAN, CAMVID_STD
    from arseg_cli.model.meta import ModelMeta
    from arseg_cli.palettes import CAMVID
    from arseg_cli.video.synthetic import make_clip, write_clip

    clip = make_clip(frames, HEIGHT, WIDTH, pan_px=(4, 1), object_size=HEIGHT // 4)
    video = write_clip(clip.frames, work / "video.mp4", keyint=L, fps=25, crf=18, preset="veryfast")
    weights: dict[str, list[str]] = {}
    for arch in archs:
        if arch == "camvid-bise18":
            weights[arch] = []
            continue
        torch.manual_seed(0)
        meta = ModelMeta(arch, CAMVID.classes, CAMVID.colors, CAMVID_MEAN, CAMVID_STD, scale=0.5, keyframe_interval=L)
        weights[arch] = ["--weights", str(save_weights(build_arseg(meta), work / f"{arch}.safetensors"))]
    return Path(video), weights


def run_json(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """The command's JSON output, and the CPU seconds (user + system) the process used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} in {cwd}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout), (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def segment_run(checkout: Path, video: Path, weights: list[str], scale: float | None, out: Path, env: dict[str, str]) -> dict[str, float]:
    """fps as `--json` reports it (wall clock, first decode to last write) and the process's CPU seconds
    (start-up included): on a machine other jobs load, CPU time is the steadier of the two."""
    command = [sys.executable, "-m", "arseg_cli", "segment", str(video), "-o", str(out), "--json", "--force", "-q", *weights]
    if scale is not None:
        command += ["--scale", str(scale)]
    report, cpu_s = run_json(command, checkout, env)
    record = report[0] if isinstance(report, list) else report
    return {"fps": float(record["fps"]), "cpu_s": cpu_s}


def bench_speedup(checkout: Path, arch: str, repeats: int, env: dict[str, str]) -> dict[str, float]:
    command = [sys.executable, "-m", "arseg_cli", "bench", "--arch", arch, "--json", "--repeats", str(repeats), "--warmup", "1"]
    scales = run_json(command, checkout, env)[0]["archs"][0]["scales"]
    half = next(s for s in scales if s["scale"] == 0.5)
    latency = half["latency"]
    return {"speedup": half["speedup_vs_1x"], "macs_ratio": half["macs_ratio_vs_1x"],
            **{f"{name}_ms": latency[name]["median_s"] * 1e3 for name in ("hr", "lr", "creff", "nonkeyframe") if name in latency}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", action="append", type=Path, help="source tree to run (repeat; default: .)")
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bench-repeats", type=int, default=5, help="timed calls per stage of `arseg bench`")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the children (default: unset)")
    parser.add_argument("--parts", default="segment,bench")
    args = parser.parse_args()
    checkouts = [c.resolve() for c in (args.checkout or [Path(".")])]
    archs, parts = args.archs.split(","), args.parts.split(",")
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    result: dict[str, Any] = {"benchmark": "bench_speed_targets", "frames": args.frames, "size_hw": [HEIGHT, WIDTH],
                              "threads": args.threads, "checkouts": [str(c) for c in checkouts],
                              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load_start": os.getloadavg()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="arseg-speed-") as tmp:
        work = Path(tmp)
        video, weights = make_inputs(work, args.frames, archs)
        for checkout in checkouts:  # a native build, if the checkout has one, is made now, not in a timed run
            warm = "import importlib.util as u; u.find_spec('arseg_cli.model._native_creff') and __import__('arseg_cli.model._native_creff', fromlist=['x']).library()"
            subprocess.run([sys.executable, "-c", warm], cwd=checkout, env=env, check=True)
        runs: dict[str, list[Any]] = {}
        for _ in range(args.repeats):
            for arch in archs:
                for checkout in checkouts:
                    key = f"{arch}@{checkout.name}"
                    if "segment" in parts:
                        for mode, scale in (("ar", None), ("hr", 1.0)):
                            run = segment_run(checkout, video, weights[arch], scale, work / "out", env)
                            runs.setdefault(f"segment:{mode}:{key}", []).append(run)
                    if "bench" in parts:
                        runs.setdefault(f"bench:{key}", []).append(bench_speedup(checkout, arch, args.bench_repeats, env))
            print(json.dumps({"round_done": runs}), file=sys.stderr, flush=True)
    summary: dict[str, Any] = {}
    for arch in archs:
        for checkout in checkouts:
            key, row = f"{arch}@{checkout.name}", {}
            if "segment" in parts:
                ar = [r["fps"] for r in runs[f"segment:ar:{key}"]]
                hr = [r["fps"] for r in runs[f"segment:hr:{key}"]]
                ar_cpu, hr_cpu = ([r["cpu_s"] for r in runs[f"segment:{m}:{key}"]] for m in ("ar", "hr"))
                row |= {"ar_fps": ar, "hr_fps": hr, "ar_over_hr_of_medians": statistics.median(ar) / statistics.median(hr),
                        "ar_over_hr_per_round": [a / h for a, h in zip(ar, hr)], "ar_cpu_s": ar_cpu, "hr_cpu_s": hr_cpu,
                        "hr_over_ar_cpu_s_of_medians": statistics.median(hr_cpu) / statistics.median(ar_cpu)}  # fmt: skip
            if "bench" in parts:
                benches = runs[f"bench:{key}"]
                row["bench"] = benches
                row["bench_speedup_median"] = statistics.median(b["speedup"] for b in benches)
            summary[key] = row
    result |= {"results": summary, "load_end": os.getloadavg(), "ended": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
