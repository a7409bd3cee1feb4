"""Cost per frame of arseg's HEVC motion-vector parser at 960x720 on one core, beside the libx264 re-encode it
replaces and H.264's own vector export; prints one JSON object.

A synthetic clip (textured background panning by a known amount, a moving square; `--frames` frames) is
encoded twice the way AR-Seg wants it (no B-frames, keyframe every 12): with libx265 (x265's several
references, as the paper) and with libx264 (one reference). The process is pinned to one CPU, so every
variant, threaded or not, gets one core. Then, interleaved so that load from other processes hits every
variant alike, `--repeats` times each (per frame, milliseconds):

- hevc_parse: HevcMotionParser.parse_packet over the demuxed packets (the parser alone);
- hevc_parse_blocks: the same plus the conversion to BlockMotion (video/hevc/blocks.py);
- hevc_decode: FFmpeg's HEVC decoder alone (the pixels, paid in any case);
- hevc_bitstream_extra: decode_frames(motion='bitstream') minus decode_frames(motion='none') on the HEVC
  file: what reading the stream's vectors adds in arseg, parser and matching included;
- hevc_reencode_extra: decode_frames(motion='reencode') minus motion='none' on the same file: the
  fallback's cost (libx264 re-encode and vector export);
- h264_bitstream_extra: decode_frames(motion='bitstream') minus motion='none' on the H.264 file:
  FFmpeg's vector export and its conversion.

Medians of the repeats (wall clock, and CPU time of the process, which other processes' load does not\ninflate), and ratios within this run (of the wall-clock medians). Skips cleanly, saying why, when the
parser is not built. Usage: `python benchmarks/bench_hevc_motion.py [--frames 48] [--repeats 5]`.
"""

from __future__ import annotations

import argparse
import io
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

from arseg_cli.video._hevc_motion import parser_problem
from arseg_cli.video.decode import decode_frames
from arseg_cli.video.synthetic import make_clip, write_clip
from arseg_cli.video.x265 import encode_hevc

HEIGHT, WIDTH = 720, 960
KEYINT = 12


def pin_to_one_core() -> int | None:
    """Run this process (and the threads it starts) on one CPU; the CPU, or None where that is not possible."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def parse_all(packets: list[bytes], extradata: bytes | None, *, blocks: bool) -> int:
    from arseg_cli.video.hevc.blocks import picture_blocks
    from arseg_cli.video.hevc.parser import HevcMotionParser

    parser = HevcMotionParser(extradata)
    count = 0
    for packet in packets:
        picture = parser.parse_packet(packet)
        if picture is not None:
            count += 1
            if blocks:
                picture_blocks(picture)
    return count


def decoder_only(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        return sum(1 for _ in container.decode(stream))


def arseg_decode(path: Path, motion: str) -> int:
    return sum(1 for _ in decode_frames(path, motion=motion))  # type: ignore[arg-type]


def timed(run: Callable[[], int]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, frames) of one run."""
    started, cpu_started = time.perf_counter(), time.process_time()
    count = run()
    return time.perf_counter() - started, time.process_time() - cpu_started, count


def _per_frame(ms: dict[str, float]) -> dict[str, float]:
    """The reported figures from the raw per-frame medians: the parser alone, and what each way of
    getting vectors adds to decoding."""
    return {
        "hevc_parse": ms["hevc_parse"],
        "hevc_parse_blocks": ms["hevc_parse_blocks"],
        "hevc_decode": ms["hevc_decode"],
        "hevc_bitstream_extra": ms["hevc_bitstream"] - ms["hevc_none"],
        "hevc_reencode_extra": ms["hevc_reencode"] - ms["hevc_none"],
        "h264_bitstream_extra": ms["h264_bitstream"] - ms["h264_none"],
    }


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--frames", type=int, default=48)
    options.add_argument("--repeats", type=int, default=5)
    args = options.parse_args()
    result: dict[str, object] = {"benchmark": "hevc_motion", "frame_size": [WIDTH, HEIGHT], "frames": args.frames}
    problem = parser_problem()
    if problem is not None:
        print(json.dumps(result | {"skipped": problem}, indent=1))
        return 0
    logging.getLogger("arseg_cli").setLevel(logging.ERROR)  # the re-encode's notice
    result["cpu"] = pin_to_one_core()
    clip = make_clip(frames=args.frames, height=HEIGHT, width=WIDTH)
    with tempfile.TemporaryDirectory() as folder:
        hevc = Path(folder) / "clip.hevc"
        hevc.write_bytes(encode_hevc(clip.frames, keyint=KEYINT, crf=23, preset="medium"))
        h264 = write_clip(clip.frames, Path(folder) / "clip.mp4", keyint=KEYINT)
        with av.open(io.BytesIO(hevc.read_bytes()), format="hevc") as container:
            stream = container.streams.video[0]
            extradata = bytes(stream.codec_context.extradata or b"") or None
            packets = [bytes(packet) for packet in container.demux(stream) if packet.size]
        variants: dict[str, Callable[[], int]] = {
            "hevc_parse": lambda: parse_all(packets, extradata, blocks=False),
            "hevc_parse_blocks": lambda: parse_all(packets, extradata, blocks=True),
            "hevc_decode": lambda: decoder_only(hevc),
            "hevc_none": lambda: arseg_decode(hevc, "none"),
            "hevc_bitstream": lambda: arseg_decode(hevc, "bitstream"),
            "hevc_reencode": lambda: arseg_decode(hevc, "reencode"),
            "h264_none": lambda: arseg_decode(h264, "none"),
            "h264_bitstream": lambda: arseg_decode(h264, "bitstream"),
        }
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        cpu_seconds: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, run in variants.items():
                elapsed, cpu, count = timed(run)
                if count != args.frames:
                    raise SystemExit(f"{name}: {count} frames, expected {args.frames}")
                seconds[name].append(elapsed)
                cpu_seconds[name].append(cpu)
    ms = {name: 1e3 * statistics.median(values) / args.frames for name, values in seconds.items()}
    cpu_ms = {name: 1e3 * statistics.median(values) / args.frames for name, values in cpu_seconds.items()}
    per_frame = _per_frame(ms)
    result["ms_per_frame"] = {name: round(value, 3) for name, value in per_frame.items()}
    result["raw_ms_per_frame"] = {name: round(value, 3) for name, value in ms.items()}
    # On a shared machine the wall clock counts other processes' time slices; CPU time does not.
    result["cpu_ms_per_frame"] = {name: round(value, 3) for name, value in _per_frame(cpu_ms).items()}
    result["ratios"] = {
        "reencode_extra / hevc_bitstream_extra": round(per_frame["hevc_reencode_extra"] / per_frame["hevc_bitstream_extra"], 2),
        "hevc_bitstream_extra / h264_bitstream_extra": round(per_frame["hevc_bitstream_extra"] / per_frame["h264_bitstream_extra"], 2),
        "hevc_parse / hevc_decode": round(per_frame["hevc_parse"] / per_frame["hevc_decode"], 3),
    }
    result["target_3ms_met"] = {"wall": per_frame["hevc_parse_blocks"] <= 3.0, "cpu": cpu_ms["hevc_parse_blocks"] <= 3.0}
    result["versions"] = {"python": platform.python_version(), "av": av.__version__, "numpy": np.__version__}
    result["machine"] = {"platform": platform.platform(), "processor": platform.processor() or None,
                         "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None}  # fmt: skip
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
