"""Cost of each output writer per 960x720 frame; prints one JSON object on stdout.

Labels are piecewise-constant blobs (a smooth random field cut into 12 classes), like a real
segmentation, and the overlay's input frames are textured synthetic frames. Each writer writes
`--frames` frames into a temporary directory, `--repeats` times; the median ms/frame is reported
with the output size. The baseline is Pillow's default PNG compression (level 6) measured in the
same run. Usage: `python benchmarks/bench_writers.py [--frames 30] [--repeats 3]`.
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
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import PIL
from PIL import Image

from arseg_cli.palettes import CAMVID
from arseg_cli.video._sink import interrupts_deferred
from arseg_cli.video.writers import (
    ColorVideoWriter,
    LabelPngWriter,
    LabelVideoWriter,
    OverlayVideoWriter,
    RawLabelWriter,
    blend,
    colorize,
)
from arseg_cli.video.mask_outputs import MaskOutputs, Timing
from arseg_cli.video.synthetic import make_texture

HEIGHT, WIDTH = 720, 960


def make_labels(frames: int, seed: int = 0) -> list[np.ndarray]:
    """(H, W) uint8 label maps: 12 classes in smooth blobs (tens of pixels) drifting 4 px per frame."""
    width = WIDTH + 4 * frames
    coarse = make_texture(HEIGHT // 16, width // 16, np.random.default_rng(seed))[..., 0]
    field = np.asarray(Image.fromarray(coarse).resize((width, HEIGHT), Image.Resampling.BICUBIC))
    classes = (field.astype(np.uint16) * CAMVID.num_classes // 256).astype(np.uint8)
    return [np.ascontiguousarray(classes[:, 4 * t : 4 * t + WIDTH]) for t in range(frames)]


def make_images(frames: int, seed: int = 1) -> list[np.ndarray]:
    """(H, W, 3) uint8 input frames for the overlay."""
    world = make_texture(HEIGHT, WIDTH + 4 * frames, np.random.default_rng(seed))
    return [np.ascontiguousarray(world[:, 4 * t : 4 * t + WIDTH]) for t in range(frames)]


def run(write: Callable[[Path], Path], repeats: int, frames: int) -> dict[str, object]:
    """Median ms/frame over `repeats` runs of `write` (which returns what it wrote)."""
    times, sizes = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            out = write(Path(tmp))
            times.append((time.perf_counter() - start) * 1000 / frames)
            files = [out] if out.is_file() else [f for f in out.rglob("*") if f.is_file()]
            sizes.append(sum(f.stat().st_size for f in files) / frames)
    return {
        "ms_per_frame": round(statistics.median(times), 2),
        "ms_per_frame_all": [round(t, 2) for t in times],
        "kib_per_frame": round(statistics.median(sizes) / 1024, 1),
    }


def time_per_frame(work: Callable[[], object], repeats: int, frames: int) -> dict[str, object]:
    """Median ms/frame of an in-memory step (no output file)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000 / frames)
    return {"ms_per_frame": round(statistics.median(times), 2), "ms_per_frame_all": [round(t, 4) for t in times]}


DEFERRALS = 10000


def defer_many() -> None:
    """Enter and leave the Ctrl-C deferral that wraps every write, DEFERRALS times."""
    for _ in range(DEFERRALS):
        with interrupts_deferred():
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    labels, images = make_labels(args.frames), make_images(args.frames)

    def pngs(level: int) -> Callable[[Path], Path]:
        def write(tmp: Path) -> Path:
            with LabelPngWriter(tmp / "masks", CAMVID, compress_level=level) as writer:
                for frame in labels:
                    writer.write(frame)
            return tmp / "masks"

        return write

    def video(make: Callable[[Path], object], name: str, overlay: bool = False) -> Callable[[Path], Path]:
        def write(tmp: Path) -> Path:
            with make(tmp / name) as writer:  # type: ignore[attr-defined]
                for frame, image in zip(labels, images):
                    writer.write(frame, image) if overlay else writer.write(frame)
            return tmp / name

        return write

    cases: dict[str, Callable[[Path], Path]] = {
        "label_png_compress1": pngs(1),
        "label_png_pillow_default": pngs(6),
        "colour_video_h264": video(lambda p: ColorVideoWriter(p, CAMVID, 30), "c.mp4"),
        "colour_video_h264_ultrafast": video(lambda p: ColorVideoWriter(p, CAMVID, 30, preset="ultrafast"), "c.mp4"),
        "overlay_video_h264": video(lambda p: OverlayVideoWriter(p, CAMVID, 30), "o.mp4", overlay=True),
        "lossless_ffv1_mkv": video(lambda p: LabelVideoWriter(p, 30), "l.mkv"),
        "lossless_png_mov": video(lambda p: LabelVideoWriter(p, 30, codec="png"), "l.mov"),
        "raw_file": video(lambda p: RawLabelWriter(p), "l.raw"),
        "mask_outputs_all_five": video(
            lambda p: MaskOutputs(p, ["png", "colour", "overlay", "lossless", "raw"], CAMVID, Timing.of(30)),
            "all",
            overlay=True,
        ),
    }
    results = {name: run(write, args.repeats, args.frames) for name, write in cases.items()}
    results["colorize_only"] = time_per_frame(lambda: [colorize(f, CAMVID) for f in labels], args.repeats, args.frames)
    results["blend_only"] = time_per_frame(
        lambda: [blend(i, f, CAMVID, 0.5) for f, i in zip(labels, images)], args.repeats, args.frames
    )
    deferral_ms = time_per_frame(defer_many, args.repeats, DEFERRALS)["ms_per_frame_all"]
    results["ctrl_c_deferral"] = {"us_per_write": round(1000 * statistics.median(deferral_ms), 2)}
    baseline = results["label_png_pillow_default"]["ms_per_frame"]
    print(
        json.dumps(
            {
                "benchmark": "writers",
                "size_hw": [HEIGHT, WIDTH],
                "frames": args.frames,
                "repeats": args.repeats,
                "statistic": "median over repeats of ms per frame",
                "versions": {
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                    "av": av.__version__,
                    "ffmpeg_libavcodec": av.library_versions["libavcodec"],
                    "pillow": PIL.__version__,
                },
                "cpu": {"machine": platform.machine(), "cpus": os.cpu_count()},
                "settings": {
                    "colour_overlay": "libx264 veryfast crf 18 yuv420p",
                    "png_compress_level": 1,
                    "ctrl_c_deferral": "microseconds per enter+leave of interrupts_deferred (each write does one)",
                },
                "results": results,
                "speedup_png_compress1_vs_default": round(baseline / results["label_png_compress1"]["ms_per_frame"], 2),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
