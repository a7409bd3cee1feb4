"""Cost of SynthStreet per 360x480 frame on one CPU core; prints one JSON object on stdout.

The process pins itself to one core (and numpy/x264 see one thread), builds `--clips` clips of
`--frames` frames, and times per frame: the rendering (colours, labels, depth), the ground-truth
flow to the previous frame, and both together (what `arseg synth` computes per frame), medians over
all frames; textures are painted when a quad is first drawn, so a clip's first frames cost more:
`clip_ms_per_frame` is the whole clip (world construction, painting, rendering, flow) divided by its
frames, median over clips. The baseline, measured in the same run on the same frames, is libx264
encoding them (as `arseg synth` does, preset medium, one thread). Wall-clock times (`*_ms_*`) and,
because a shared machine stretches them, process CPU times (`cpu_*`) of the same work. Usage:
`python benchmarks/bench_synth.py [--clips 3] [--frames 30] [--size 360x480]`.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402 - the thread limits must be set before numpy loads
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402

from arseg_cli import __version__  # noqa: E402
from arseg_cli.synth.clip import SynthClip  # noqa: E402
from arseg_cli.video.x264 import x264_params  # noqa: E402


def _encode_ms(frames: list[np.ndarray], fps: int = 30) -> list[float]:
    """ms per frame to encode `frames` with libx264 on one thread (flush time spread over the frames)."""
    height, width = frames[0].shape[:2]
    with av.open(io.BytesIO(), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"preset": "medium", "crf": "20", "x264-params": x264_params(12)}
        times = []
        for index, rgb in enumerate(frames):
            start = time.perf_counter()
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for packet in stream.encode(None):
            container.mux(packet)
        flush = time.perf_counter() - start
    return [1e3 * (t + flush / len(frames)) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="360x480")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    render_ms, flow_ms, build_s, clip_ms, encode_ms, quads = [], [], [], [], [], []
    cpu_render_ms, cpu_flow_ms, cpu_clip_ms = [], [], []
    for index in range(args.clips):
        cpu_clip_start = time.process_time()
        clip_start = start = time.perf_counter()
        clip = SynthClip(seed=0, index=index, frames=args.frames, height=height, width=width)
        build_s.append(time.perf_counter() - start)
        quads.append(len(clip.world.scene.quads))
        previous, images = None, []
        for t in range(args.frames):
            cpu_start, start = time.process_time(), time.perf_counter()
            frame = clip.render(t)
            cpu_middle, middle = time.process_time(), time.perf_counter()
            if previous is not None:
                clip.flow(t, frame, t - 1, previous)
            cpu_end, end = time.process_time(), time.perf_counter()
            render_ms.append(1e3 * (middle - start))
            cpu_render_ms.append(1e3 * (cpu_middle - cpu_start))
            if previous is not None:
                flow_ms.append(1e3 * (end - middle))
                cpu_flow_ms.append(1e3 * (cpu_end - cpu_middle))
            previous = frame
            images.append(frame.rgb)
        clip_ms.append(1e3 * (time.perf_counter() - clip_start) / args.frames)
        cpu_clip_ms.append(1e3 * (time.process_time() - cpu_clip_start) / args.frames)
        encode_ms += _encode_ms(images)
    frame_ms = statistics.median(render_ms) + statistics.median(flow_ms or [0.0])
    baseline = statistics.median(encode_ms)
    print(json.dumps({
        "benchmark": "synth",
        "arseg": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "av": av.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": 1,
        "size": [height, width],
        "clips": args.clips,
        "frames_per_clip": args.frames,
        "quads_per_clip_median": statistics.median(quads),
        "render_ms_median": round(statistics.median(render_ms), 2),
        "flow_ms_median": round(statistics.median(flow_ms or [0.0]), 2),
        "frame_ms_median": round(frame_ms, 2),
        "world_build_s_median": round(statistics.median(build_s), 3),
        "clip_ms_per_frame": round(statistics.median(clip_ms), 2),
        "cpu_render_ms_median": round(statistics.median(cpu_render_ms), 2),
        "cpu_flow_ms_median": round(statistics.median(cpu_flow_ms or [0.0]), 2),
        "cpu_clip_ms_per_frame": round(statistics.median(cpu_clip_ms), 2),
        "baseline": "libx264 encode of the same frames (preset medium, crf 20, one thread)",
        "baseline_ms_median": round(baseline, 2),
        "ratio_frame_vs_baseline": round(frame_ms / baseline, 3),
        "target_ms": 50,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
