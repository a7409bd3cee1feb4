"""Cost and accuracy of arseg's motion stage against OpenCV Farneback optical flow; prints one JSON object.

A synthetic 960x720 clip with exactly known motion (background pan (2, 1) px/frame, a 192 px square
moving (-3, 2) px/frame) is encoded with libx264 (keyframe every 12, no B-frames, one reference) and
decoded once with motion vectors; decoding is not timed. On one core (OMP/MKL/OpenBLAS threads 1,
cv2.setNumThreads(1)) the script times, over every frame:
- arseg dense per-frame field (`flows_to_reference`) and dense field + accumulation to the keyframe
  (`flows_to_key`, what the pipeline runs), median ms/frame over `--repeats` passes;
- the motion + schedule stage as `arseg segment` runs it (`groups.scheduled_frames`, adaptive policy:
  each frame's block vectors rasterised once, shared by the scheduler's intra coverage and the flow)
  against the scheduler and the accumulator each rasterising the frame (as before issue 19),
  passes alternating, median ms/frame;
- Farneback (OpenCV's usual parameters: pyramid 0.5, 3 levels, window 15, 3 iterations, poly 5/1.2)
  from each frame to the previous one on grey images (grey conversion not timed), median ms/frame.
End-point errors (px) against the known motion, one hop to the previous frame for both, and to the
keyframe for arseg: `all_px` over every pixel (frame borders, where content enters, and the square's
edges included), `interior_px` away from those (MARGIN px plus the distance travelled).
Usage: `python benchmarks/bench_motion.py [--frames 24] [--repeats 5]`.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402 - the thread settings must precede numpy's import
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from arseg_cli.video.decode import decode_frames  # noqa: E402
from arseg_cli.video.motion import FlowAccumulator, flows_to_key, flows_to_reference  # noqa: E402
from arseg_cli.video.records import DecodedFrame, FlowToKey  # noqa: E402
from arseg_cli.video.synthetic import SyntheticClip, make_clip, write_clip  # noqa: E402

HEIGHT, WIDTH, KEYINT = 720, 960, 12
PAN, OBJECT, OBJECT_SIZE = (2, 1), (-3, 2), 192
MARGIN = 16  # px: one macroblock
FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2, "flags": 0}


def true_flow(clip: SyntheticClip, t: int, hops: int) -> tuple[np.ndarray, np.ndarray]:
    """Known backward flow of frame t to frame t - hops (2, H, W), and the interior mask (H, W) bool:
    pixels whose content moved rigidly (background or square) over those hops, far from the edges."""
    square = clip.object_mask[t]
    flow = np.empty((2, HEIGHT, WIDTH), np.float32)
    for axis in (0, 1):
        flow[axis] = np.where(square, -OBJECT[axis] * hops, PAN[axis] * hops)
    reach = MARGIN + hops * max(map(abs, PAN + OBJECT))
    near_square = _dilate(np.logical_or.reduce(clip.object_mask[t - hops : t + 1]), reach)
    deep_in_square = ~_dilate(~square, reach)
    interior = np.zeros((HEIGHT, WIDTH), bool)
    interior[reach:-reach, reach:-reach] = True
    return flow, interior & (~near_square | deep_in_square)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square dilation, separable (rows, then columns)."""
    for axis in (0, 1):
        padded = np.pad(mask, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)])
        mask = np.logical_or.reduce(np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis), axis=-1)
    return mask


def end_point_errors(fields: Iterator[tuple[int, int, np.ndarray]], clip: SyntheticClip) -> dict[str, float]:
    """Mean EPE over (frame index, hops to its reference, flow) triples, all pixels and interior."""
    all_px, interior_px = [], []
    for t, hops, flow in fields:
        truth, interior = true_flow(clip, t, hops)
        epe = np.hypot(*(flow - truth))
        all_px.append(epe.ravel())
        interior_px.append(epe[interior])
    return {
        "all_px": round(float(np.concatenate(all_px).mean()), 4),
        "interior_px": round(float(np.concatenate(interior_px).mean()), 4),
    }


def non_key(records: Iterator[tuple[DecodedFrame, FlowToKey]]) -> Iterator[tuple[int, int, np.ndarray]]:
    for frame, record in records:
        if record.key_index != frame.index:
            yield frame.index, frame.index - record.key_index, record.flow_px


def time_passes(run: Callable[[], int], repeats: int) -> float:
    """Median ms per frame over `repeats` passes; `run` returns the number of frames it did."""
    per_frame = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = run()
        per_frame.append((time.perf_counter() - started) * 1e3 / count)
    return statistics.median(per_frame)


def schedule_and_flow(frames: list[DecodedFrame], repeats: int) -> dict[str, float]:
    """Median ms/frame of motion + adaptive schedule: one shared rasterisation per frame against the
    scheduler and accumulator each making their own; passes alternate."""
    import torch

    from arseg_cli.groups import scheduled_frames
    from arseg_cli.schedule import Scheduler
    from arseg_cli.stage_times import StageClock, StageTimes

    def shared() -> int:
        clock = StageClock(torch.device("cpu"), StageTimes())
        return sum(1 for _ in scheduled_frames(frames, Scheduler("adaptive", KEYINT), FlowAccumulator(), clock))

    def each_its_own() -> int:
        scheduler, accumulator = Scheduler("adaptive", KEYINT), FlowAccumulator()
        for frame in frames:
            accumulator.push(frame, is_key=scheduler.decide(frame).is_key)
        return len(frames)

    runs: dict[str, list[float]] = {"shared": [], "each_its_own": []}
    for _ in range(repeats):
        for name, run in (("shared", shared), ("each_its_own", each_its_own)):
            runs[name].append(time_passes(run, 1))
    return {name: round(statistics.median(times), 3) for name, times in runs.items()}


def farneback(frames: list[DecodedFrame]) -> tuple[list[tuple[int, int, np.ndarray]], float]:
    """Backward flow of each non-key frame to the previous one, and the median ms per call."""
    grey = [cv2.cvtColor(f.rgb, cv2.COLOR_RGB2GRAY) for f in frames]
    fields, times = [], []
    for t in range(1, len(frames)):
        if t % KEYINT == 0:
            continue
        started = time.perf_counter()
        # (current, previous): current(p) ~ previous(p + flow(p)), arseg's backward convention.
        flow = cv2.calcOpticalFlowFarneback(grey[t], grey[t - 1], None, **FARNEBACK)
        times.append((time.perf_counter() - started) * 1e3)
        fields.append((t, 1, np.ascontiguousarray(flow.transpose(2, 0, 1))))
    return fields, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    clip = make_clip(args.frames, HEIGHT, WIDTH, pan_px=PAN, object_px=OBJECT, object_size=OBJECT_SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_clip(clip.frames, Path(tmp) / "clip.mp4", keyint=KEYINT, crf=18)
        frames = list(decode_frames(path, motion="bitstream"))
    assert [f.index for f in frames if f.pict_type == "I"] == list(range(0, args.frames, KEYINT))

    dense_ms = time_passes(lambda: sum(1 for _ in flows_to_reference(frames)), args.repeats)
    accumulated_ms = time_passes(lambda: sum(1 for _ in flows_to_key(frames, keyframe_interval=KEYINT)), args.repeats)
    schedule_ms = schedule_and_flow(frames, args.repeats)
    farneback_fields, farneback_ms = farneback(frames)

    result = {
        "benchmark": "motion",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "av": av.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": 1,
        "size": [WIDTH, HEIGHT],
        "frames": args.frames,
        "keyint": KEYINT,
        "repeats": args.repeats,
        "arseg_dense_ms_per_frame": round(dense_ms, 3),
        "arseg_dense_and_accumulation_ms_per_frame": round(accumulated_ms, 3),
        "schedule_and_flow_ms_per_frame": schedule_ms,
        "farneback_ms_per_frame": round(farneback_ms, 3),
        "ratio_farneback_over_arseg": round(farneback_ms / accumulated_ms, 1),
        "epe_one_hop_arseg": end_point_errors(non_key(flows_to_reference(frames)), clip),
        "epe_one_hop_farneback": end_point_errors(iter(farneback_fields), clip),
        "epe_to_key_arseg": end_point_errors(non_key(flows_to_key(frames, keyframe_interval=KEYINT)), clip),
        "note": "decode excluded; times are medians on a shared machine; EPE in pixels, mean over non-key frames",
    }
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
