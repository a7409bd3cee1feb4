"""One video as a unit of work: what to run (VideoJob, JobOptions), running it (run_job), and what came
of it (VideoResult). The same code runs in the driver's process (--shard without Ray) and in a Ray worker.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from arseg_cli.errors import ArsegError
from arseg_cli.atomic_files import remove_temp_outputs
from arseg_cli.palettes import Palette
from arseg_cli.pipeline import OnFrame, OutputTargets, SegmentSummary, Settings, segment_video
from arseg_cli.video.probe import DEFAULT_MAX_PIXELS

Outcome = Literal["done", "damaged", "failed", "skipped", "worker-lost"]


@dataclass(frozen=True)
class JobOptions:
    """How every video of a run is segmented and written (the same for all of them)."""

    settings: Settings = Settings()
    palette: Palette | None = None  # None: the weights' own classes and colours
    opacity: float = 0.5
    start: int | None = None
    end: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    force: bool = False
    compile_attention: bool = False  # CReFF's attention compiled (`--compile`; in this process only)

    def fingerprint(self, weights: str, targets: OutputTargets, scale_keyint: tuple[float, int]) -> dict[str, Any]:
        """What decides a video's output files besides its input: compared by `--resume`."""
        palette = None if self.palette is None else [self.palette.name, [list(c) for c in self.palette.colors]]
        names = {kind.value: Path(path).name for kind, path in targets.paths().items()}
        return {"weights": weights, "scale": scale_keyint[0], "keyint": scale_keyint[1],
                "policy": self.settings.policy, "half": self.settings.half, "palette": palette,
                "opacity": self.opacity, "start": self.start, "end": self.end, "outputs": names}  # fmt: skip


@dataclass(frozen=True)
class VideoJob:
    """One input and where its outputs go. resume: keep the label PNGs an earlier attempt or run wrote
    (pipeline.Resume) and write the rest; attempt: 1 for the first try."""

    source: str
    label: str
    folder: str
    targets: OutputTargets
    resume: bool = False
    attempt: int = 1

    def retry(self) -> VideoJob:
        """The next attempt after a worker was lost: it continues from the PNGs the lost one finished."""
        return replace(self, resume=True, attempt=self.attempt + 1)


@dataclass
class VideoResult:
    """What came of one job. seconds: time the worker spent on it (cpu_s: its process's CPU time meanwhile);
    turnaround_s: from the driver handing it out to the driver holding the result (Ray runs); summary:
    None unless it ran."""

    source: str
    outcome: Outcome
    attempt: int = 1
    seconds: float = 0.0
    cpu_s: float = 0.0
    error: str | None = None
    summary: SegmentSummary | None = None
    worker: dict[str, Any] = field(default_factory=dict)
    turnaround_s: float = 0.0

    @property
    def frames(self) -> int:
        return self.summary.frames if self.summary is not None else 0

    @property
    def ok(self) -> bool:
        return self.outcome in ("done", "skipped")


def run_job(job: VideoJob, model: Any, options: JobOptions, palette: Palette, on_frame: OnFrame | None = None) -> VideoResult:
    """Segment one video into its targets. An input that cannot be segmented, or any other failure of
    this video, is returned as a failed result (one line), never raised: the other videos go on."""
    started, cpu = time.perf_counter(), time.process_time()
    try:
        if job.resume:
            # A lost attempt's temporary files (its unfinished videos) must not linger beside the retry's.
            for directory in (Path(job.folder), Path(job.targets.png_dir or job.folder)):
                if directory.is_dir():
                    remove_temp_outputs(directory)
        summary = segment_video(job.source, model, job.targets, options.settings, palette=palette,
                                force=options.force or job.resume, opacity=options.opacity, start=options.start,
                                end=options.end, max_pixels=options.max_pixels, resume=job.resume,
                                on_frame=on_frame)  # fmt: skip
    except ArsegError as error:
        return _failed(job, started, cpu, str(error))
    except Exception as error:  # noqa: BLE001 - one video's defect must not stop the others
        return _failed(job, started, cpu, f"internal error: {type(error).__name__}: {error}")
    outcome: Outcome = "damaged" if summary.damaged else "done"
    return VideoResult(job.source, outcome, job.attempt, time.perf_counter() - started, time.process_time() - cpu,
                       error=summary.damaged, summary=summary, worker=worker_identity())  # fmt: skip


def _failed(job: VideoJob, started: float, cpu: float, message: str) -> VideoResult:
    return VideoResult(job.source, "failed", job.attempt, time.perf_counter() - started, time.process_time() - cpu,
                       error=failure_message(job.source, message), worker=worker_identity())  # fmt: skip


def failure_message(source: str, message: str) -> str:
    """One line naming the input that failed: `message`, prefixed with `source` unless it names it."""
    return message if source in message else f"{source}: {message}"


def worker_identity() -> dict[str, Any]:
    """Where a job ran: host name and process id (the Ray node id is added by Ray workers)."""
    return {"host": os.uname().nodename, "pid": os.getpid()}


def model_fingerprint(model: Any) -> str:
    """sha256 of the model's tensors (names, dtypes, shapes, bytes) and of the input padding where there
    is one: the same weights give the same fingerprint whatever file or format they were loaded from."""
    digest = hashlib.sha256()
    padding = getattr(getattr(model, "meta", None), "input_multiple", 1)
    if padding > 1:  # the same tensors segment differently padded; unpadded models keep their old fingerprints
        digest.update(f"input_multiple:{padding}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_palette(model: Any, options: JobOptions) -> Palette:
    return options.palette or Palette(model.arch, model.meta.classes, model.meta.palette)


__all__ = ["JobOptions", "Outcome", "VideoJob", "VideoResult", "failure_message", "model_fingerprint", "model_palette",
           "run_job"]  # fmt: skip
