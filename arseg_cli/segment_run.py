"""`run`: one SegmentRequest carried out. The model is loaded once; each input is segmented into its
targets in turn (arseg_cli.pipeline.segment_video), or the inputs go to arseg_cli.scaleout (Ray, a
shard). The error policy: an input that cannot be segmented (unreadable, not a video) is a failed
result and the others go on (`OnError.CONTINUE`), or stops the run (`OnError.STOP`: the error is
raised); a damaged input keeps the frames decoded before the damage and counts as not ok. Any other
error (weights, options, outputs) stops the run. `SegmentReport.exit_code` is 0 when every input was
segmented whole, else 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arseg_cli.choices import Backend, OnError
from arseg_cli.errors import InputError, InputNotFoundError, OptionsError
from arseg_cli.options import compile_on, pick_device
from arseg_cli.output_plan import Run, plan_runs
from arseg_cli.palettes import Palette
from arseg_cli.pipeline import OnFrame, segment_video
from arseg_cli.request import SegmentRequest
from arseg_cli.scaleout.jobs import VideoResult, failure_message

if TYPE_CHECKING:
    import torch

    from arseg_cli.scaleout.progress import OnEvent
    from arseg_cli.scaleout.run import RunReport

#: Progress of one input: called with its label, gives a context inside which the input is segmented
#: and the `on_frame` callback for it (None: no callback).
ProgressFactory = Callable[[str], AbstractContextManager["OnFrame | None"]]


@dataclass
class SegmentReport:
    """What a run did: one result per input in input order (outcome done / damaged / failed, or skipped
    by a resumed scale-out run; each done or damaged one with its SegmentSummary), the model (for
    SegmentSummary.to_json), what its weights are, and for scale-out runs their report (records, counts)."""

    results: list[VideoResult]
    model: Any
    weights: str
    scaleout: RunReport | None = None

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def exit_code(self) -> int:
        """0 when every input was segmented whole (or skipped as done before), else 1."""
        return 0 if self.ok else 1


def run(
    request: SegmentRequest,
    *,
    progress: ProgressFactory | None = None,
    on_result: Callable[[VideoResult], None] | None = None,
    on_event: OnEvent | None = None,
) -> SegmentReport:
    """Carry out `request` (module docstring). progress: per input, its progress (ProgressFactory);
    on_result(result) after each input; on_event(progress, result or None): the events of a scale-out
    run (arseg_cli.scaleout.segment_many), which calls neither of the others."""
    if request.scaleout:
        return _run_scaleout(request, on_event)
    device = _device(request)
    # resume replaces the stopped run's outputs: its PNGs are kept, its videos are re-created whole.
    runs = plan_runs(list(request.inputs), request.output, video=request.video, overlay=request.overlay,
                     lossless=request.lossless, force=request.force or request.resume)  # fmt: skip
    model, weights = load_backend(request, device)
    if compile_on(request.compile_attention, model.device):
        model.use_compiled_attention(True)
    palette = request.load_palette() or Palette(model.arch, model.meta.classes, model.meta.palette)
    palette.check_fits(model.num_classes)
    results = []
    for planned in runs:
        result = _segment_one(request, planned, model, palette, progress)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return SegmentReport(results, model, weights)


def _segment_one(
    request: SegmentRequest, planned: Run, model: Any, palette: Palette, progress: ProgressFactory | None
) -> VideoResult:
    started, cpu = time.perf_counter(), time.process_time()
    try:
        with progress(planned.label) if progress is not None else nullcontext(None) as on_frame:
            summary = segment_video(planned.source, model, planned.targets, request.settings(), palette=palette,
                                    force=request.force or request.resume, opacity=request.opacity, start=request.start,
                                    end=request.end, max_pixels=request.max_pixels, resume=request.resume,
                                    on_frame=on_frame)  # fmt: skip
    except (InputError, InputNotFoundError) as error:
        if request.on_error is OnError.STOP:
            raise
        return VideoResult(planned.source, "failed", seconds=time.perf_counter() - started,
                           cpu_s=time.process_time() - cpu, error=failure_message(planned.source, str(error)))  # fmt: skip
    return VideoResult(planned.source, "damaged" if summary.damaged else "done", seconds=time.perf_counter() - started,
                       cpu_s=time.process_time() - cpu, error=summary.damaged, summary=summary)  # fmt: skip


def _device(request: SegmentRequest) -> torch.device:
    """The device the model runs on here; OptionsError for half precision without CUDA."""
    device = pick_device(request.device)
    if request.half and device.type != "cuda":
        raise OptionsError("`half` needs CUDA (`device` cuda, or auto on a machine with a GPU)")
    return device


def load_backend(request: SegmentRequest, device: torch.device | str) -> tuple[Any, str]:
    """The model the pipeline runs (ARSeg, or OnnxARSeg with the same calls) and what its weights are."""
    if request.backend is Backend.ONNXRUNTIME:
        from arseg_cli.onnx import OnnxARSeg

        return OnnxARSeg(request.onnx, device=device), f"onnx:{request.onnx}"  # type: ignore[arg-type]
    from arseg_cli.model.weights_specs import load_model

    return load_model(list(request.weights), arch=request.arch, scale=request.scale, device=device)


def _run_scaleout(request: SegmentRequest, on_event: OnEvent | None) -> SegmentReport:
    from arseg_cli.scaleout.run import segment_many

    # Ray workers pick their own device; a shard runs here, on this machine's.
    compiled = request.ray is None and compile_on(request.compile_attention, _device(request))
    report = segment_many(request.inputs, str(request.output), ray_address=request.ray, weights=request.weights,
                          arch=request.arch, options=request.job_options(compiled), video=request.video,
                          overlay=request.overlay, lossless=request.lossless, shard=request.chosen_shard(),
                          workers=request.worker_spec(), resume=request.resume, on_event=on_event)  # fmt: skip
    return SegmentReport(report.results, report.model, report.weights, scaleout=report)


__all__ = ["ProgressFactory", "SegmentReport", "load_backend", "run"]
