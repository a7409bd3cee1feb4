"""Cost of motion-vector export, and of the libx264 re-encode fallback, at 960x720; prints one JSON object.

A synthetic clip (textured background panning by a known amount, a moving square; `--frames` frames)
is encoded with libx264 the way AR-Seg wants it (no B-frames, one reference, keyframe every 12). Then,
interleaved so that load from other processes hits every variant alike, `--repeats` times each:

- decoder only: PyAV decode of every frame, with and without `flags2=+export_mvs` (the issue's
  "decode with vs without MV export");
- arseg's `decode_frames`: the same plus RGB conversion and the vectors as BlockMotion
  (motion='bitstream' vs motion='none');
- the fallback: `decode_frames(motion='reencode')`; its cost per frame is the difference to
  motion='none' (what the user pays on top of decoding).

Medians of the repeats are reported, with ratios computed within this run: the ratio of the medians,
and the median of the ratios within each repeat (`_paired`, less sensitive to load that changes
between repeats), and the same from CPU time (process_time: all threads' work, which other processes'
load disturbs far less than wall-clock time on a shared machine). Accuracy: the share of
blocks (predicted frames, blocks wholly on the background) whose vector is within 0.5 px of the
known motion, for the bitstream and the fallback.
Usage: `python benchmarks/bench_decode.py [--frames 60] [--repeats 7]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from arseg_cli.video.decode import decode_frames
from arseg_cli.video.records import DecodedFrame
from arseg_cli.video.synthetic import SyntheticClip, make_clip, write_clip

HEIGHT, WIDTH = 720, 960
KEYINT = 12


def decoder_only(path: Path, export_mvs: bool) -> int:
    """Decode every frame with PyAV alone (frame threading, as decode_frames uses on this stream)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if export_mvs:
            stream.codec_context.options = {"flags2": "+export_mvs"}
        stream.codec_context.thread_count = 0
        stream.codec_context.thread_type = "FRAME"
        count = 0
        for frame in container.decode(stream):
            if export_mvs:
                frame.side_data.get("MOTION_VECTORS")
            count += 1
    return count


def arseg_decode(path: Path, motion: str) -> int:
    return sum(1 for _ in decode_frames(path, motion=motion))  # type: ignore[arg-type]


def share_within_half_pixel(frames: list[DecodedFrame], clip: SyntheticClip) -> float:
    """Share of background blocks of predicted frames whose vector is within 0.5 px of the true motion."""
    good = total = 0
    for frame in frames:
        if frame.motion is None:
            continue
        motion = frame.motion
        half = motion.size_wh // 2
        x0, y0 = (motion.dst_xy - half).T
        x1, y1 = (motion.dst_xy + half).T
        inside = (x0 >= 0) & (y0 >= 0) & (x1 <= WIDTH) & (y1 <= HEIGHT)
        # The square's pixels move differently: keep blocks whose corners and centre are all background.
        mask = clip.object_mask[frame.index]
        background = inside.copy()
        cx, cy = motion.dst_xy.T
        for xs, ys in ((x0, y0), (x1 - 1, y0), (x0, y1 - 1), (x1 - 1, y1 - 1), (cx, cy)):
            background &= ~mask[np.clip(ys, 0, HEIGHT - 1), np.clip(xs, 0, WIDTH - 1)]
        truth = clip.flow_prev[frame.index][:, cy.clip(0, HEIGHT - 1), cx.clip(0, WIDTH - 1)].T
        error = np.abs(motion.offset_px - truth).max(axis=1)
        good += int((error[background] <= 0.5).sum())
        total += int(background.sum())
    return good / total if total else float("nan")


def timed(function: Callable[[], int]) -> tuple[float, float, int]:
    """Wall-clock and CPU seconds (all threads of this process) of one call, and its frame count."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = function()
    return time.perf_counter() - wall, time.process_time() - cpu, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("arseg_cli").setLevel(logging.ERROR)  # the fallback's notice, once per run

    clip = make_clip(frames=args.frames, height=HEIGHT, width=WIDTH, pan_px=(3, 1), object_px=(-4, 2), object_size=160)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_clip(clip.frames, Path(tmp) / "clip.mp4", keyint=KEYINT, crf=18, preset="fast")
        variants: dict[str, Callable[[], int]] = {
            "decoder_plain": lambda: decoder_only(path, False),
            "decoder_export_mvs": lambda: decoder_only(path, True),
            "arseg_motion_none": lambda: arseg_decode(path, "none"),
            "arseg_motion_bitstream": lambda: arseg_decode(path, "bitstream"),
            "arseg_motion_reencode": lambda: arseg_decode(path, "reencode"),
        }
        for function in variants.values():  # warm-up: caches, lazy imports, thread pools
            function()
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        cpu_seconds: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, function in variants.items():
                elapsed, cpu, count = timed(function)
                assert count == args.frames, (name, count)
                seconds[name].append(elapsed)
                cpu_seconds[name].append(cpu)
        bitstream = list(decode_frames(path, motion="bitstream"))
        reencode = list(decode_frames(path, motion="reencode"))

    ms = {name: statistics.median(values) * 1e3 / args.frames for name, values in seconds.items()}
    cpu_ms = {name: statistics.median(values) * 1e3 / args.frames for name, values in cpu_seconds.items()}

    def paired(numerator: str, denominator: str) -> float:
        """Median over repeats of the ratio within one repeat (the two ran back to back) minus 1."""
        return round(statistics.median(a / b for a, b in zip(seconds[numerator], seconds[denominator])) - 1, 4)

    result = {
        "benchmark": "decode",
        "what": "ms per 960x720 frame, median of repeats (variants interleaved); "
        "H.264 crf 18, no B-frames, 1 ref, keyint 12",
        "python": platform.python_version(),
        "av": av.__version__,
        "ffmpeg": ".".join(map(str, av.library_versions["libavcodec"])) + " (libavcodec)",
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "frames": args.frames,
        "size": [WIDTH, HEIGHT],
        "repeats": args.repeats,
        "ms_per_frame": {name: round(value, 3) for name, value in ms.items()},
        "cpu_ms_per_frame": {name: round(value, 3) for name, value in cpu_ms.items()},
        "mv_export_overhead": {
            "decoder_only": round(ms["decoder_export_mvs"] / ms["decoder_plain"] - 1, 4),
            "decoder_only_paired": paired("decoder_export_mvs", "decoder_plain"),
            "decode_frames": round(ms["arseg_motion_bitstream"] / ms["arseg_motion_none"] - 1, 4),
            "decode_frames_paired": paired("arseg_motion_bitstream", "arseg_motion_none"),
            "decoder_only_cpu": round(cpu_ms["decoder_export_mvs"] / cpu_ms["decoder_plain"] - 1, 4),
            "decode_frames_cpu": round(cpu_ms["arseg_motion_bitstream"] / cpu_ms["arseg_motion_none"] - 1, 4),
            "target": 0.10,
        },
        "fallback_reencode": {
            "extra_ms_per_frame": round(ms["arseg_motion_reencode"] - ms["arseg_motion_none"], 3),
            "total_ms_per_frame": round(ms["arseg_motion_reencode"], 3),
            "extra_cpu_ms_per_frame": round(cpu_ms["arseg_motion_reencode"] - cpu_ms["arseg_motion_none"], 3),
        },
        "blocks_within_half_px_of_truth": {
            "bitstream": round(share_within_half_pixel(bitstream, clip), 4),
            "reencode": round(share_within_half_pixel(reencode, clip), 4),
        },
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
