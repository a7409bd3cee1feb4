"""Start-up of the command line: process start to its answer; prints one JSON object on stdout.

Variants, each a fresh process, run `--repeats` times, interleaved (the order rotates every round):
- `python`: `python -c pass`, the interpreter alone;
- `import_torch`: `python -c "import torch"`, the floor of every command that runs the model;
- `version`, `help`: `arseg --version`, `arseg --help` (target: under 0.5 s);
- `segment_first_frame`: `arseg segment VIDEO -o DIR` (default weights, CPU) from the moment before the
  process is spawned to the moment its decoder hands over the first frame; the child then exits at once.
  Target: within 1.5 s of `import_torch`.

The child of `segment_first_frame` is `arseg_cli.cli.main` with `VideoReader._record` (called once per
decoded frame) wrapped to print the time of its first call; importing the decoder first changes nothing,
since segment imports it anyway. Times are wall clock from just before `subprocess.run` (fork and exec
included), and the children's CPU time (user + system, less sensitive to other load). The CPU is
shared: medians of interleaved runs.
Usage: `python benchmarks/bench_startup.py [--repeats 7] [--video samples/synthstreet.mp4]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_FIRST_FRAME_CHILD = """
import os, sys, time
import arseg_cli.video.decode as decode
_record = decode.VideoReader._record
def _first(self, *args, **kwargs):
    record = _record(self, *args, **kwargs)
    sys.stderr.write(f"FIRST_FRAME {time.time()!r}\\n"); sys.stderr.flush()
    os._exit(0)
decode.VideoReader._record = _first
from arseg_cli.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _arseg() -> list[str]:
    """The installed `arseg` script beside this interpreter, else `python -m arseg_cli`."""
    script = Path(sys.executable).with_name("arseg")
    if script.exists() and os.environ.get("PYTHONPATH") is None:
        return [str(script)]
    return [sys.executable, "-m", "arseg_cli"]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `command` to its exit."""
    cpu, start = _children_cpu_s(), time.time()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    end = time.time()
    if done.returncode != 0:
        raise SystemExit(f"{command!r} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return end - start, _children_cpu_s() - cpu


def _first_frame(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds to the first decoded frame, CPU seconds of the child, which exits right there)."""
    cpu, start = _children_cpu_s(), time.time()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    marks = [line for line in done.stderr.splitlines() if line.startswith("FIRST_FRAME ")]
    if not marks:
        raise SystemExit(f"no frame decoded by {command!r} ({done.returncode}): {done.stderr.strip()[-500:]}")
    return float(marks[0].split()[1]) - start, _children_cpu_s() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--video", default=str(ROOT / "samples" / "synthstreet.mp4"))
    args = parser.parse_args()

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    out_dir = tempfile.mkdtemp(prefix="arseg-startup-")
    arseg = _arseg()
    segment = [sys.executable, "-c", _FIRST_FRAME_CHILD, "segment", args.video, "-o", out_dir, "--device", "cpu",
               "--quiet", "--force"]  # fmt: skip
    variants = {
        "python": lambda: _timed([sys.executable, "-c", "pass"], env),
        "import_torch": lambda: _timed([sys.executable, "-c", "import torch"], env),
        "version": lambda: _timed([*arseg, "--version"], env),
        "help": lambda: _timed([*arseg, "--help"], env),
        "segment_first_frame": lambda: _first_frame(segment, env),
    }
    for run in variants.values():  # warm the page cache once
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    load_start = os.getloadavg()[0]
    for round_ in range(args.repeats):
        order = names[round_ % len(names):] + names[: round_ % len(names)]
        for name in order:
            wall, cpu_s = variants[name]()
            times[name].append(wall)
            cpu[name].append(cpu_s)
            print(f"round {round_ + 1}/{args.repeats} {name}: {wall:.3f} s ({cpu_s:.3f} s CPU)", file=sys.stderr)
    shutil.rmtree(out_dir, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    report = {
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [load_start, os.getloadavg()[0]],
        "repeats": args.repeats,
        "command": arseg,
        "median_s": medians,
        "median_cpu_s": {name: statistics.median(values) for name, values in cpu.items()},
        "runs_s": times,
        "segment_minus_import_torch_s": medians["segment_first_frame"] - medians["import_torch"],
        "targets": {
            "version_under_0.5_s": medians["version"] < 0.5,
            "help_under_0.5_s": medians["help"] < 0.5,
            "segment_within_1.5_s_of_import_torch": medians["segment_first_frame"] - medians["import_torch"] <= 1.5,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
