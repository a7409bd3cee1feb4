"""`arseg segment` end to end; prints one JSON object on stdout.

1. Throughput: the whole pipeline (decode with bitstream motion vectors, flow to the keyframe, model,
   label PNGs written) on one synthetic 720x960 H.264 video (an I-frame every 12 frames, no B-frames),
   AR-Seg at 0.5x with L = 12 (keyframe groups, the default, and frame by frame, `--low-latency`)
   against per-frame HR (`--scale 1.0`), for camvid-bise18 and camvid-psp18 (`--archs`; random
   weights: speed does not depend on them); on CUDA also the grouped run with `--cuda-graphs`
   (`ar_cuda_graphs`: graphs on against off). Runs alternate the modes, `--repeats` times; the
   median frames/s and the ratios are reported, with the share of decode + motion + writing in the AR
   run's total time (StageTimes, wall clock).
2. Memory: peak RSS (VmHWM, KiB) of a fresh child process segmenting a short video and of one segmenting
   a 10x longer one (bise18, AR 0.5x, L = 12, at `--rss-size`), with its RSS after 1, 12, 24, ... frames.
3. Keyframe policies: on SynthStreet clips with a hard cut spliced in (encoded like arseg's own data,
   x264 scene-cut detection off, so the cut is a P-frame of intra blocks), per policy the keyframe count
   and the mIoU of the keyframe's *ground-truth* labels carried along the flow to each frame (nearest
   neighbour): what the scheduler controls (how far keyframe information can be trusted), measured
   without trained weights. Keyframes score their own labels exactly, so the mIoU over non-keyframes
   alone is given too.

Usage: `nice -n 10 python benchmarks/bench_segment.py [--frames 24] [--repeats 2] [--threads N]
[--archs camvid-bise18] [--device cuda [--half]]` (--half adds float16 runs, as `arseg segment --half`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from arseg_cli.model import build_arseg
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.architecture import CAMVID_MEAN, CAMVID_STD
from arseg_cli.model.meta import ModelMeta
from arseg_cli.palettes import CAMVID
from arseg_cli.pipeline import OutputTargets, Settings, segment_video
from arseg_cli.video.synthetic import make_clip, write_clip

HEIGHT, WIDTH = 720, 960
L = 12
ARCHS = ("camvid-bise18", "camvid-psp18")


def random_model(arch: str) -> ARSeg:
    torch.manual_seed(0)
    meta = ModelMeta(arch, CAMVID.classes, CAMVID.colors, CAMVID_MEAN, CAMVID_STD, scale=0.5, keyframe_interval=L)
    return build_arseg(meta).eval().optimize_for_inference()


def write_video(path: Path, frames: int, height: int, width: int) -> Path:
    """A panning texture with a moving square, H.264 with an I-frame every L frames, 25 fps."""
    return write_clip(make_clip(frames, height, width, pan_px=(4, 1), object_size=height // 4).frames, path,
                      keyint=L, fps=25, crf=18, preset="veryfast")  # fmt: skip


def run_once(video: Path, model: ARSeg, settings: Settings, out: Path) -> dict[str, Any]:
    summary = segment_video(video, model, OutputTargets(png_dir=str(out)), settings, palette=CAMVID, force=True)
    times = summary.times
    return {"fps": summary.frames / summary.wall_s, "wall_s": summary.wall_s, "frames": summary.frames,
            "keyframes": summary.keyframes, "stages_s": times.to_json(),
            "io_share": (times.decode + times.motion + times.write) / summary.wall_s}  # fmt: skip


def throughput(
    video: Path, repeats: int, work: Path, device: str = "cpu", half: bool = False, archs: tuple[str, ...] = ARCHS
) -> dict[str, Any]:
    """AR 0.5x (L = 12; keyframe groups, the default, and frame by frame, --low-latency) against
    per-frame HR on `device`; `half`: float16 (CUDA), as `segment --half`. The three alternate."""
    results: dict[str, Any] = {}
    settings_by_mode = {"ar": Settings(scale=0.5, keyframe_interval=L, half=half),
                        "ar_low_latency": Settings(scale=0.5, keyframe_interval=L, half=half, low_latency=True),
                        "hr": Settings(scale=1.0, half=half)}  # fmt: skip
    if device == "cuda":  # the non-keyframe step replayed from CUDA graphs (arseg_cli/graphed_step.py)
        settings_by_mode["ar_cuda_graphs"] = Settings(scale=0.5, keyframe_interval=L, half=half, cuda_graphs=True)
    for arch in archs:
        model = random_model(arch).to(device)
        warm = write_video(work / "warm.mp4", 3, HEIGHT, WIDTH)
        for settings in settings_by_mode.values():
            run_once(warm, model, settings, work / "warm")
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in settings_by_mode}
        for _ in range(repeats):
            for mode, settings in settings_by_mode.items():
                runs[mode].append(run_once(video, model, settings, work / mode))
        fps = {mode: statistics.median(r["fps"] for r in runs[mode]) for mode in runs}
        results[arch] = {
            "ar_0.5x_L12_fps": round(fps["ar"], 3),
            "ar_0.5x_L12_low_latency_fps": round(fps["ar_low_latency"], 3),
            "hr_per_frame_fps": round(fps["hr"], 3),
            "speedup_ar_vs_hr": round(fps["ar"] / fps["hr"], 3),
            "speedup_grouped_vs_low_latency": round(fps["ar"] / fps["ar_low_latency"], 3),
            "ar_io_share": round(statistics.median(r["io_share"] for r in runs["ar"]), 4),
            "hr_io_share": round(statistics.median(r["io_share"] for r in runs["hr"]), 4),
            "runs": runs,
        }
        if "ar_cuda_graphs" in fps:
            results[arch] |= {"ar_0.5x_L12_cuda_graphs_fps": round(fps["ar_cuda_graphs"], 3),
                              "speedup_ar_cuda_graphs_vs_hr": round(fps["ar_cuda_graphs"] / fps["hr"], 3),
                              "speedup_cuda_graphs_on_vs_off": round(fps["ar_cuda_graphs"] / fps["ar"], 3)}  # fmt: skip
    return results


def child_rss(frames: int, size: str, work: Path) -> dict[str, Any]:
    """Peak RSS of a fresh process that segments a `frames`-frame video (video made beforehand)."""
    height, width = (int(v) for v in size.split("x"))
    video = write_video(work / f"rss_{frames}.mp4", frames, height, width)
    command = [sys.executable, __file__, "--threads", str(torch.get_num_threads()), "--child", str(video), str(work / f"rss_{frames}")]
    done = subprocess.run(command,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout) | {"frames": frames, "size_hw": [height, width]}


def child_main(video: str, out: str) -> None:
    model = random_model("camvid-bise18")
    marks: dict[int, int | None] = {}

    def on_frame(frame: Any, summary: Any, expected: Any) -> None:
        if summary.frames in (1, 12, 24, 60, 120, 240, 480):
            marks[summary.frames] = _proc_status_kib("VmRSS")

    summary = segment_video(video, model, OutputTargets(png_dir=out), Settings(scale=0.5, keyframe_interval=L), palette=CAMVID,
                            on_frame=on_frame)  # fmt: skip
    # VmHWM: this process image's peak. getrusage's ru_maxrss would not do: Linux keeps across exec the
    # peak of the process that forked (here the benchmark itself, after its 720x960 runs).
    print(json.dumps({"peak_rss_kib": _proc_status_kib("VmHWM"), "rss_after_frames_kib": marks,
                      "segmented": summary.frames, "wall_s": round(summary.wall_s, 2)}))  # fmt: skip


def _proc_status_kib(field: str) -> int | None:
    """A memory figure of this process from Linux's /proc/self/status (VmRSS, VmHWM), KiB; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def policies(work: Path) -> dict[str, Any]:
    """Keyframe count and label-propagation mIoU per policy on SynthStreet clips with a spliced cut."""
    from arseg_cli.data.labels import read_label_png
    from arseg_cli.schedule import POLICIES
    from arseg_cli.synth import SynthSpec, write_dataset
    from arseg_cli.video.decode import decode_frames

    spec = SynthSpec(clips=6, frames=24, height=360, width=480, seed=11, keyint=L, crf=18, preset="veryfast")
    manifest = json.loads(write_dataset(work / "synth", spec).read_text())
    clips = sorted(manifest["clip_list"], key=lambda r: int(r["index"]))
    cuts = []
    for a, b in zip(clips[0::2], clips[1::2]):  # clip a's frames 0..16, then clip b's 0..15: a cut at 17
        frames, labels = [], []
        for record, count in ((a, 17), (b, 16)):
            decoded = [f.rgb for f in decode_frames(work / "synth" / record["video"], motion="none", end=count)]
            frames += decoded
            labels += [read_label_png(work / "synth" / p, "ids", num_classes=CAMVID.num_classes) for p in record["labels"][:count]]
        cuts.append((write_clip(frames, work / f"cut_{len(cuts)}.mp4", keyint=L, fps=25, crf=18, preset="veryfast"), labels))
    plain = []
    for record in clips:
        labels = [read_label_png(work / "synth" / p, "ids", num_classes=CAMVID.num_classes) for p in record["labels"]]
        plain.append((work / "synth" / record["video"], labels))
    results: dict[str, Any] = {"clips_with_cut": len(cuts), "frames_per_clip": 33, "cut_at": 17,
                               "clips_without_cut": len(plain), "frames_per_plain_clip": spec.frames,
                               "size_hw": [360, 480], "L": L}  # fmt: skip
    # The control: `fixed` with L = 9 spends as many keyframes on the cut clips as `adaptive` does at L = 12.
    runs = [(policy, L, policy) for policy in POLICIES] + [("fixed", 9, "fixed_L9_control")]
    for policy, keyint, name in runs:
        results[name] = {"with_cut": _propagate(cuts, policy, keyint, cut_at=17),
                         "without_cut": _propagate(plain, policy, keyint, cut_at=None)}  # fmt: skip
    return results


def _propagate(clips: list[tuple[Path, list[np.ndarray]]], policy: str, keyint: int, cut_at: int | None) -> dict[str, Any]:
    """Keyframes and the mIoU of keyframe ground truth carried along the flow, over these clips."""
    from arseg_cli.evaluate.metrics import ConfusionMatrix
    from arseg_cli.schedule import Scheduler
    from arseg_cli.video.decode import decode_frames
    from arseg_cli.video.motion import FlowAccumulator

    every, nonkey = ConfusionMatrix(CAMVID.num_classes), ConfusionMatrix(CAMVID.num_classes)
    keys, cut_keys = 0, 0
    for video, labels in clips:
        scheduler, accumulator = Scheduler(policy, keyint), FlowAccumulator()  # type: ignore[arg-type]
        key_labels = labels[0]
        for frame in decode_frames(video):
            decision = scheduler.decide(frame)
            flow = accumulator.push(frame, is_key=decision.is_key)
            if decision.is_key:
                key_labels = labels[frame.index]
                keys += 1
                cut_keys += frame.index == cut_at
            carried = _carry(key_labels, flow.flow_px)
            every.update(carried, labels[frame.index])
            if not decision.is_key:
                nonkey.update(carried, labels[frame.index])
    return {"keyframes": keys, "keyframe_at_cut": cut_keys if cut_at is not None else None,
            "miou_all_frames": round(every.miou(), 4), "miou_nonkeyframes": round(nonkey.miou(), 4)}  # fmt: skip


def _carry(key_labels: np.ndarray, flow_px: np.ndarray) -> np.ndarray:
    """The keyframe's labels at p + flow(p) (nearest pixel, clamped to the frame): (H, W) uint8."""
    height, width = key_labels.shape
    rows, cols = np.indices((height, width))
    x = np.clip(np.rint(cols + flow_px[0]), 0, width - 1).astype(np.intp)
    y = np.clip(np.rint(rows + flow_px[1]), 0, height - 1).astype(np.intp)
    return key_labels[y, x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24, help="frames of the 720x960 throughput video")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--rss-frames", type=int, default=12, help="frames of the short video (the long has 10x)")
    parser.add_argument("--rss-size", default="360x480")
    parser.add_argument("--parts", default="speed,rss,policies")
    parser.add_argument("--archs", default=",".join(ARCHS), help="architectures of the throughput runs")
    parser.add_argument("--device", default="cpu", help="device of the throughput runs (cpu or cuda)")
    parser.add_argument("--half", action="store_true", help="throughput in float16 too (CUDA: segment --half)")
    parser.add_argument("--child", nargs=2, metavar=("VIDEO", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.half and args.device != "cuda":
        parser.error("--half needs --device cuda (float16 on the CPU is slower, not faster)")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child_main(*args.child)
        return
    parts = set(args.parts.split(","))
    archs = tuple(args.archs.split(","))
    report: dict[str, Any] = {
        "benchmark": "segment",
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "av": av.__version__,
                     "numpy": np.__version__},  # fmt: skip
        "cpu": {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "nice": os.nice(0),
        "load_average_at_start": os.getloadavg(),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "speed" in parts:
            video = write_video(work / "bench.mp4", args.frames, HEIGHT, WIDTH)
            report["throughput"] = {"size_hw": [HEIGHT, WIDTH], "frames": args.frames, "repeats": args.repeats,
                                    "device": args.device,
                                    "statistic": "median frames/s over repeats, end to end incl. label PNG writing",
                                    "by_arch": throughput(video, args.repeats, work, args.device, archs=archs)}  # fmt: skip
            if args.half:
                report["throughput"]["by_arch_half"] = throughput(video, args.repeats, work, args.device, half=True,
                                                                  archs=archs)  # fmt: skip
            if args.device == "cuda":
                report["gpu"] = torch.cuda.get_device_name()
        if "rss" in parts:
            short = child_rss(args.rss_frames, args.rss_size, work)
            long = child_rss(10 * args.rss_frames, args.rss_size, work)
            report["memory"] = {"short": short, "long": long,
                                "ratio_long_vs_short": round(long["peak_rss_kib"] / short["peak_rss_kib"], 3)}  # fmt: skip
        if "policies" in parts:
            report["policies"] = policies(work)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
