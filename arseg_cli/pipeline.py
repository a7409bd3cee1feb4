"""The AR-Seg video pipeline: decode -> motion -> schedule -> model -> outputs, as streaming generators.

`segment_frames` turns decoded frames into segmented frames; `segment_video` decodes a video, runs
`segment_frames` and writes each frame to the requested outputs as it comes. Memory does not grow with
the video's length: the only state kept between frames is the keyframe's feature, the scheduler's
count and the motion accumulator's chain back to the keyframe (bounded by L).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from arseg_cli.errors import InputError, OptionsError
from arseg_cli.frame_step import FrameStep
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.resize import scores_to_labels
from arseg_cli.schedule import DEFAULT_POLICY, FrameKind, Policy, Scheduler
from arseg_cli.stage_times import StageClock, StageTimes
from arseg_cli.video.decode import PartialDecodeError, open_video
from arseg_cli.output_plan import OutputKind, OutputTargets
from arseg_cli.video.mask_outputs import MaskOutputs, Timing
from arseg_cli.video.motion import FlowAccumulator
from arseg_cli.video.probe import DEFAULT_MAX_PIXELS, MotionRequest, Source
from arseg_cli.video.records import DecodedFrame

@dataclass(frozen=True, slots=True)
class SegmentedFrame:
    """One frame's segmentation.

    index:     display index in the input stream; pts / time_s: its timestamp (as DecodedFrame).
    labels:    (H, W) uint8 class ids at the input size.
    kind:      KEY (HR network) or NONKEY (LR + CReFF); reason: why a keyframe ('' otherwise).
    key_index: display index of its keyframe; distance: frames since that keyframe (0 for a keyframe).
    rgb:       (H, W, 3) uint8, the decoded input frame (for overlays).
    """

    index: int
    pts: int | None
    time_s: float | None
    labels: np.ndarray
    kind: FrameKind
    reason: str
    key_index: int
    distance: int
    rgb: np.ndarray


@dataclass(frozen=True)
class Settings:
    """How frames are segmented.

    scale:  LR scale s of non-keyframes (None: the weights' scale; 1.0, or weights without an LR
            branch: every frame HR).
    keyframe_interval: keyframe interval L, the most frames from one keyframe to the next (None: the weights').
    policy: keyframe policy (arseg_cli.schedule). half: float16 on CUDA.
    """

    scale: float | None = None
    keyframe_interval: int | None = None
    policy: Policy = DEFAULT_POLICY
    half: bool = False

    def resolve(self, model: ARSeg) -> tuple[float, int]:
        """(s, L) for `model`: s = 1.0 or L = 1 both mean per-frame HR, returned as (1.0, 1)."""
        scale = self.scale if self.scale is not None else (model.meta.scale or 1.0)
        keyframe_interval = self.keyframe_interval if self.keyframe_interval is not None else model.meta.keyframe_interval
        if keyframe_interval < 1:
            raise OptionsError(f"-L must be >= 1, got {keyframe_interval}")
        if not 0.0 < scale <= 1.0:
            raise OptionsError(f"--scale must be in (0, 1], got {scale}")
        if scale >= 1.0 or keyframe_interval == 1:
            return 1.0, 1
        if model.lr is None:
            raise OptionsError(
                f"the weights hold no LR branch (HR only): use --scale 1.0 or -L 1 for per-frame HR, not --scale {scale}"
            )
        return scale, keyframe_interval


def segment_frames(
    frames: Iterable[DecodedFrame],
    model: ARSeg,
    settings: Settings = Settings(),
    *,
    times: StageTimes | None = None,
    resume: Resume | None = None,
) -> Iterator[SegmentedFrame]:
    """Segment decoded frames one by one, in order: one SegmentedFrame per frame.

    The model runs on its own device (eval mode). `times`, when given, accumulates the seconds spent
    decoding (pulling the next frame from `frames`), on motion and in the model.
    resume: the frames before `resume.first_missing` were segmented by an earlier run: their labels
    come from `resume.labels`, and the model runs again from the keyframe at or before the first
    missing frame (its HR pass only), so every frame gets the labels an uninterrupted run gives.
    """
    scale, keyframe_interval = settings.resolve(model)
    step = FrameStep(model, scale, half=settings.half)
    scheduler = Scheduler(settings.policy, keyframe_interval)
    accumulator = FlowAccumulator()
    clock = StageClock(model.device, times or StageTimes())
    feat: torch.Tensor | None = None
    pending_key: np.ndarray | None = None  # while resuming: the latest keyframe's input, its feature not yet computed
    with torch.inference_mode():
        for frame in clock.pulled(frames):
            decision = scheduler.decide(frame)
            if keyframe_interval > 1:
                with clock.stage("motion"):
                    flow = accumulator.push(frame, is_key=decision.is_key)
            size = (int(frame.rgb.shape[0]), int(frame.rgb.shape[1]))
            if resume is not None and frame.index < resume.first_missing:
                if decision.is_key:
                    pending_key, feat = (frame.rgb if keyframe_interval > 1 else None), None
                labels = resume.labels(frame.index, size)
            else:
                with clock.stage("model"):
                    x = step.inputs(frame.rgb)
                    if decision.is_key:
                        scores, feat = step.key(x)
                        if keyframe_interval == 1:
                            feat = None  # never fused: do not keep it
                    else:
                        if feat is None and pending_key is not None:  # the first frame after a resume
                            feat = step.key(step.inputs(pending_key))[1]
                        assert feat is not None
                        scores = step.nonkey(x, feat, flow.flow_px[None])
                    pending_key = None
                    labels = scores_to_labels(scores, size)[0].to(torch.uint8).cpu().numpy()
            yield SegmentedFrame(
                index=frame.index,
                pts=frame.pts,
                time_s=frame.time_s,
                labels=labels,
                kind=decision.kind,
                reason=decision.reason,
                key_index=frame.index - decision.distance,
                distance=decision.distance,
                rgb=frame.rgb,
            )


@dataclass(frozen=True)
class Resume:
    """What an earlier, stopped run of the same video already wrote: label PNGs in `png_dir` for every
    segmented frame before `first_missing` (display index)."""

    png_dir: Path
    first_missing: int

    @classmethod
    def find(cls, png_dir: str | Path, start: int = 0) -> Resume:
        """The PNGs present in `png_dir` from frame `start` on, without a gap, end at `first_missing`."""
        directory = Path(png_dir)
        index = start
        while _png_name(directory, index).is_file():
            index += 1
        return cls(directory, index)

    def labels(self, index: int, size: tuple[int, int]) -> np.ndarray:
        """(H, W) uint8 labels of frame `index` from its PNG; InputError when it is not this video's."""
        path = _png_name(self.png_dir, index)
        try:
            with Image.open(path) as image:
                labels = np.asarray(image)
        except (OSError, ValueError) as error:
            raise InputError(f"--resume: cannot read {path}: {error}") from None
        if labels.shape != size or labels.dtype != np.uint8:
            raise InputError(
                f"--resume: {path} ({labels.shape[1::-1]} {labels.dtype}) is not a label PNG of this video "
                f"({size[1]}x{size[0]}); resume into the directory of the stopped run, with the same options"
            )
        return labels


def _png_name(directory: Path, index: int) -> Path:
    return directory / f"{index:06d}.png"  # LabelPngWriter's names


@dataclass
class SegmentSummary:
    """What one `segment_video` run did (the CLI's --json, docs/SEGMENT.md)."""

    input: str
    frames: int = 0
    keyframes: int = 0
    size_hw: tuple[int, int] = (0, 0)
    fps: float | None = None
    scale: float = 1.0
    keyframe_interval: int = 1
    policy: str = DEFAULT_POLICY
    device: str = "cpu"
    half: bool = False
    times: StageTimes = field(default_factory=StageTimes)
    wall_s: float = 0.0
    keyframe_reasons: dict[str, int] = field(default_factory=dict)
    damaged: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    def macs(self, arch: str, num_classes: int) -> dict[str, Any]:
        """MACs per frame (FLOPs = 2 MACs): the HR keyframe, the LR + CReFF non-keyframe, and the mean
        over this run's frames (from model.flops.branch_costs at the input size)."""
        if not self.frames:
            return {}
        height, width = self.size_hw
        costs = _branch_costs(arch, height, width, self.scale if self.scale < 1.0 else 0.5, num_classes)
        nonkeys = self.frames - self.keyframes
        nonkey = costs.nonkeyframe.macs if self.scale < 1.0 else 0
        mean = (self.keyframes * costs.hr.macs + nonkeys * nonkey) / self.frames
        return {"keyframe": costs.hr.macs, "nonkeyframe": nonkey if nonkeys else None, "mean": mean,
                "per_frame_hr": costs.hr.macs}  # fmt: skip

    def to_json(self, model: ARSeg | None = None) -> dict[str, Any]:
        seconds = self.wall_s or self.times.total
        data: dict[str, Any] = {
            "input": self.input,
            "frames": self.frames,
            "keyframes": self.keyframes,
            "keyframe_reasons": self.keyframe_reasons,
            "size": list(self.size_hw),
            "input_fps": self.fps,
            "scale": self.scale,
            "keyframe_interval": self.keyframe_interval,
            "policy": self.policy,
            "device": self.device,
            "half": self.half,
            "seconds": {**self.times.to_json(), "total": seconds},
            "fps": self.frames / seconds if seconds > 0 else None,
            "damaged": self.damaged,
            "outputs": self.outputs,
        }
        if model is not None:
            data["arch"] = model.arch
            data["macs_per_frame"] = self.macs(model.arch, model.num_classes)
        return data


@functools.lru_cache(maxsize=8)
def _branch_costs(arch: str, height: int, width: int, scale: float, num_classes: int) -> Any:
    """model.flops.branch_costs, once per size (it traces the network: seconds for camvid-psp18)."""
    from arseg_cli.model.flops import branch_costs

    return branch_costs(arch, height, width, scale, num_classes=num_classes)


OnFrame = Callable[[SegmentedFrame, SegmentSummary, int | None], None]


def segment_video(
    source: Source,
    model: ARSeg,
    targets: OutputTargets,
    settings: Settings = Settings(),
    *,
    palette: Any,
    force: bool = False,
    opacity: float = 0.5,
    start: int | None = None,
    end: int | None = None,
    motion: MotionRequest = "auto",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    resume: bool = False,
    on_frame: OnFrame | None = None,
) -> SegmentSummary:
    """Segment the video `source` (a path or '-') into `targets`; returns what was done.

    palette: the class colours (arseg_cli.palettes.Palette) of PNGs and videos, one per model class.
    on_frame(frame, summary so far, expected frame count or None) after each frame is written.
    A damaged input (corrupt or truncated mid-stream: decode's PartialDecodeError) keeps every frame
    decoded before the damage in every output and returns normally with `damaged` set to what was wrong:
    check it. Ctrl-C leaves the outputs valid with the frames written so far.
    max_pixels: the largest frame decoded (arseg_cli.video.decode; None or 0: FFmpeg's own limit).
    resume: continue a stopped run into the same targets (`Resume`): the label PNGs already written
    are kept, the model runs from the keyframe at or before the first missing frame, and the video
    outputs are written anew from the start (the earlier frames from their PNGs), replacing those of
    the stopped run. The result equals an uninterrupted run's. Needs `targets.png_dir`.
    """
    if resume and targets.png_dir is None:
        raise OptionsError("--resume continues from the label PNGs of the stopped run: give their directory with -o DIR")
    if palette.num_classes != model.num_classes:
        raise OptionsError(
            f"the palette {palette.name!r} has {palette.num_classes} classes but the weights have {model.num_classes}"
        )
    scale, keyframe_interval = settings.resolve(model)
    started = time.perf_counter()
    summary = SegmentSummary(input=str(source), scale=scale, keyframe_interval=keyframe_interval, policy=settings.policy,
                             device=str(model.device), half=settings.half)  # fmt: skip
    with open_video(source, motion=motion if keyframe_interval > 1 else "none", start=start, end=end, max_pixels=max_pixels) as reader:
        info = reader.info
        summary.input, summary.fps = info.name, float(info.fps) if info.fps else None
        expected = _expected_frames(info.frame_count, info.duration_s, summary.fps, start, end)
        paths = targets.paths()
        if not paths:
            raise OptionsError("no output requested: give -o DIR, -o -, --video, --overlay or --lossless")
        needs_timing = bool(paths.keys() & {OutputKind.COLOUR, OutputKind.OVERLAY, OutputKind.LOSSLESS})
        timing = Timing.of(info.fps, info.time_base) if needs_timing else Timing(fps=_any_rate(info.fps))
        codec = "png" if str(paths.get(OutputKind.LOSSLESS, "")).lower().endswith(".mov") else "ffv1"
        summary.outputs = {kind.value: str(path) for kind, path in paths.items()}
        for kind, path in paths.items():
            if kind is not OutputKind.PNG and path != "-":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        outputs = MaskOutputs(".", list(paths), palette, timing, opacity=opacity, force=force,
                              lossless_codec=codec, paths=paths)  # fmt: skip
        done = Resume.find(targets.png_dir, start or 0) if resume and targets.png_dir is not None else None
        with outputs:
            try:
                frames = segment_frames(reader, model, settings, times=summary.times, resume=done)
                for result in frames:
                    tick = time.perf_counter()
                    written = done is not None and result.index < done.first_missing  # its PNG is there
                    outputs.write(result.labels, result.rgb if outputs.needs_rgb else None, index=result.index,
                                  pts=result.pts if timing.time_base is not None else None,
                                  skip=(OutputKind.PNG,) if written else ())  # fmt: skip
                    summary.times.write += time.perf_counter() - tick
                    _count(summary, result)
                    summary.wall_s = time.perf_counter() - started
                    if on_frame is not None:
                        on_frame(result, summary, expected)
            except PartialDecodeError as error:
                summary.damaged = str(error)
    summary.wall_s = time.perf_counter() - started
    return summary


def _count(summary: SegmentSummary, result: SegmentedFrame) -> None:
    summary.frames += 1
    summary.size_hw = (int(result.labels.shape[0]), int(result.labels.shape[1]))
    if result.kind is FrameKind.KEY:
        summary.keyframes += 1
        summary.keyframe_reasons[result.reason] = summary.keyframe_reasons.get(result.reason, 0) + 1


def _any_rate(fps: Fraction | None) -> Fraction:
    """A frame rate for outputs that do not use one (PNGs, raw): the stream's, or 25 when unknown."""
    return Fraction(fps) if fps else Fraction(25)


def _expected_frames(
    count: int | None, duration_s: float | None, fps: float | None, start: int | None, end: int | None
) -> int | None:
    """Frames the run will give, from the container's count or duration x fps; None when unknown."""
    total = count if count else (round(duration_s * fps) if duration_s and fps else None)
    if total is not None and end is not None:
        total = min(total, end)
    elif total is None and end is not None:
        return None
    return None if total is None else max(0, total - (start or 0))


__all__ = ["OutputTargets", "Resume", "SegmentSummary", "SegmentedFrame", "Settings", "StageTimes", "segment_frames", "segment_video"]
