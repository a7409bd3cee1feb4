"""`segment_many`: many videos, each into `OUT/<stem>/` as a local multi-input run writes them, on a Ray
cluster or in this process (one shard of an array job), with run records and `--resume` by video."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from arseg_cli.errors import ArsegError
from arseg_cli.scaleout.jobs import JobOptions, VideoJob, VideoResult, model_fingerprint, model_palette, run_job, worker_identity
from arseg_cli.scaleout.progress import InFlight, OnEvent, RunProgress
from arseg_cli.scaleout.ray_pool import WorkerSpec, import_ray, run_on_ray, share_model
from arseg_cli.scaleout.records import RunRecorder, completed_inputs, read_records
from arseg_cli.scaleout.shards import Shard
from arseg_cli.output_plan import plan_runs
from arseg_cli.request import check_scaleout_paths


@dataclass
class RunReport:
    """What a run did: one result per input of its shard, in input order (skipped ones included),
    the counts, where its records are, the model (for SegmentSummary.to_json) and its fingerprint."""

    results: list[VideoResult]
    progress: RunProgress
    records: Path
    model: Any
    weights: str

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)


def segment_many(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    ray_address: str | None = None,
    weights: Sequence[str] = (),
    arch: str | None = None,
    model: Any = None,
    options: JobOptions = JobOptions(),
    video: str | None = None,
    overlay: str | None = None,
    lossless: str | None = None,
    shard: Shard | str | None = None,
    workers: WorkerSpec = WorkerSpec(),
    resume: bool = False,
    max_attempts: int = 3,
    on_event: OnEvent | None = None,
) -> RunReport:
    """Segment the videos `inputs` (files, directories, globs, `@list.txt`) into `output/<stem>/`.

    ray_address: a Ray cluster address, 'auto' (the cluster this machine belongs to), 'local' (start
    Ray on this machine for the run) or None (this process, one video after another). A Ray already
    initialised by the caller is used as it is. The model comes from `weights`/`arch` (as `arseg
    segment --weights`) or `model`, is loaded once here, and reaches every Ray worker through the
    object store. shard: run only the K-th of N deterministic shards (shards.Shard, or 'K/N').
    resume: skip the videos an earlier run finished with the same weights and options (run records in
    `output/_runs/`) and continue the others from their label PNGs. A video that fails is reported in
    its result and the others go on; a lost Ray worker's video is retried (`max_attempts` in all).
    """
    output, inputs = str(output), [str(item) for item in inputs]
    check_scaleout_paths(inputs, output)
    chosen = Shard.parse(shard) if isinstance(shard, str) else shard
    runs = plan_runs(list(inputs), output, video=video, overlay=overlay, lossless=lossless,
                     force=options.force or resume, subdirs=True, keep=chosen.holds if chosen else None)  # fmt: skip
    if model is None:
        from arseg_cli.model.weights_specs import load_model

        model, weights_name = load_model(list(weights), arch=arch, scale=options.settings.scale, device="cpu")
    else:
        weights_name = getattr(model, "arch", "model")
    palette = model_palette(model, options)
    palette.check_fits(model.num_classes)
    jobs = [VideoJob(run.source, run.label, str(Path(run.targets.png_dir or output).parent), run.targets) for run in runs]
    progress = RunProgress(total=len(jobs))
    if not jobs:
        return RunReport([], progress, Path(output), model, weights_name)
    fingerprint = options.fingerprint(model_fingerprint(model), jobs[0].targets, options.settings.resolve(model))
    if resume:
        options = replace(options, force=True)
    results: dict[str, VideoResult] = {}
    # Connected, and the model in Ray's object store, before the record file is created: a cluster that
    # cannot be reached or will not hold the model leaves nothing behind.
    with ray_connection(ray_address) if ray_address is not None else nullcontext():
        model_ref = share_model(model) if ray_address is not None else None
        with RunRecorder(output) as recorder:

            def finish(job: VideoJob, result: VideoResult) -> None:
                recorder.record(job, result, fingerprint)
                if result.outcome != "worker-lost":
                    results[job.source] = result

            jobs = _resumed(jobs, output, fingerprint, finish, progress, on_event) if resume else jobs
            for job in jobs:  # before any output changes: a cut-off video is never taken for done
                recorder.started(job, fingerprint)
            if jobs and model_ref is not None:
                run_on_ray(jobs, model_ref, options, workers, progress=progress, on_result=finish, on_event=on_event,
                           max_attempts=max_attempts)  # fmt: skip
            elif jobs:
                _run_here(jobs, model, options, workers, progress, finish, on_event)
        del model_ref  # released while Ray is still up
    progress.ended = time.perf_counter()
    ordered = [results[run.source] for run in runs if run.source in results]
    return RunReport(ordered, progress, recorder.path, model, weights_name)


def _resumed(jobs: list[VideoJob], output: str, fingerprint: dict[str, Any], finish: Any, progress: RunProgress,
             on_event: OnEvent | None) -> list[VideoJob]:  # fmt: skip
    """The jobs left to run after an earlier run: finished ones are recorded as skipped; the others
    continue from their PNGs, unless a record shows those came from other weights or options."""
    done = completed_inputs(output, jobs, fingerprint)
    latest = {entry["input"]: entry for entry in read_records(output)}
    other_options = {source for source, entry in latest.items() if entry.get("options") != fingerprint}
    left = []
    for job in jobs:
        if job.source in done:
            result = VideoResult(job.source, "skipped")
            finish(job, result)
            progress.add(result)
            if on_event is not None:
                on_event(progress, result)
        else:
            left.append(replace(job, resume=job.source not in other_options))
    return left


def _run_here(jobs: list[VideoJob], model: Any, options: JobOptions, spec: WorkerSpec, progress: RunProgress,
              finish: Any, on_event: OnEvent | None) -> None:  # fmt: skip
    """Without Ray: one video after another in this process."""
    from arseg_cli.options import pick_device

    model = model.to(pick_device(spec.device)).eval()
    if options.compile_attention:
        model.use_compiled_attention(True)
    palette = model_palette(model, options)
    for job in jobs:
        item = progress.in_flight[job.source] = InFlight(worker_identity(), job.attempt)

        def on_frame(frame: Any, summary: Any, expected: int | None, item: InFlight = item) -> None:
            item.frames = summary.frames
            if on_event is not None:
                on_event(progress, None)

        result = run_job(job, model, options, palette, on_frame)
        progress.add(result)
        finish(job, result)
        if on_event is not None:
            on_event(progress, result)


@contextmanager
def ray_connection(address: str) -> Iterator[None]:
    """Connected to the Ray cluster at `address` ('local': a Ray started here for the run) while inside;
    a Ray the caller initialised is used and left as it is."""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    if address not in ("auto", "local"):
        _check_reachable(address)
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    # ray.init installs its own SIGTERM handler (it aborts the process): keep the caller's, so that the
    # CLI ends a run stopped by SIGTERM as it ends one stopped by Ctrl-C.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)} if _main_thread() else {}
    try:
        if address == "local":  # always a new instance, never one found on this machine
            ray.init(address="local", include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as error:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
        lines = [line for line in str(error).splitlines() if line.strip()]
        raise ArsegError(f"`ray` {address}: cannot use the Ray cluster: {lines[0] if lines else type(error).__name__}") from None
    finally:
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail in one line when nothing answers at HOST:PORT: ray.init would retry for minutes."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # not HOST:PORT: ray.init says what is wrong with it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise ArsegError(f"`ray` {address}: no Ray cluster answers there ({error.strerror or error})") from None


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


__all__ = ["RunReport", "ray_connection", "segment_many"]
