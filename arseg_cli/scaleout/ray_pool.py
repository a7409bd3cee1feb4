"""Videos on a Ray cluster: one actor per worker slot keeps the model loaded and segments one video at a
time; the driver hands out videos, follows progress, and re-submits a video whose worker died.

A worker (actor process) or node that dies loses its video's attempt: the video is queued again with
`resume` (the label PNGs the lost attempt finished are kept, its temporary files removed, the rest
written anew: pipeline.Resume), up to `max_attempts` attempts, and a fresh actor replaces the dead one.
An error inside a video (corrupt input) is not a lost worker: run_job returns it as a failed result.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from arseg_cli.errors import ArsegError
from arseg_cli.scaleout.jobs import JobOptions, VideoJob, VideoResult, model_palette, run_job
from arseg_cli.scaleout.progress import InFlight, OnEvent, RunProgress

#: Seconds between progress polls of the busy workers.
TICK_S = 0.5
#: Seconds to wait for the first worker to load the model before giving up (cluster without room).
STARTUP_TIMEOUT_S = 300.0


class RayExtraMissingError(ArsegError):
    """--ray was asked for without the `[ray]` extra installed."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayExtraMissingError("`ray` needs the [ray] extra (ray is not installed): pip install 'arseg[ray]'") from None
    return ray


class RayStorageError(ArsegError):
    """Ray would not store the model in its object store."""


def share_model(model: Any) -> Any:
    """A reference to `model` in the connected Ray cluster's object store, where every worker reads it
    (run_on_ray's `model_ref`); Ray's refusal in one line (RayStorageError)."""
    return _put_model(import_ray(), model)


def _put_model(ray: Any, model: Any) -> Any:
    from ray.exceptions import ObjectStoreFullError, OutOfDiskError

    try:
        return ray.put(model)
    except OutOfDiskError:
        raise RayStorageError(
            f"Ray cannot store the model ({_megabytes(model)}): it does not fit in the object store, and the disk "
            "Ray falls back to is fuller than Ray allows (95% by default); give Ray a larger object store "
            "(`ray start --object-store-memory`), free disk space, or raise RAY_local_fs_capacity_threshold"
        ) from None
    except ObjectStoreFullError:
        raise RayStorageError(f"Ray's object store has no room for the model ({_megabytes(model)}): give Ray a "
                              "larger one (`ray start --object-store-memory`) or free what other jobs hold") from None


def _megabytes(model: Any) -> str:
    tensors = model.state_dict().values() if hasattr(model, "state_dict") else ()
    return f"{sum(t.numel() * t.element_size() for t in tensors) / 1e6:.0f} MB"


@dataclass(frozen=True)
class WorkerSpec:
    """The actors of a run: how many (None: as many as the cluster's CPUs, or GPUs, allow), the
    resources of each, torch threads (the CPUs), the device ('auto', 'cpu', 'cuda')."""

    workers: int | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    device: str = "auto"


class SegmentWorker:
    """The actor: the model, loaded once, and one video at a time (a second thread answers progress)."""

    def __init__(self, model: Any, options: JobOptions, device: str, threads: int) -> None:
        import torch

        from arseg_cli.options import pick_device

        torch.set_num_threads(max(1, threads))
        self.model = model.to(pick_device(device)).eval()
        self.options = options
        self.palette = model_palette(self.model, options)
        self._frames = 0

    def identity(self) -> dict[str, Any]:
        import ray

        return {"host": os.uname().nodename, "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                "device": str(self.model.device)}  # fmt: skip

    def segment(self, job: VideoJob) -> VideoResult:
        self._frames = 0

        def on_frame(frame: Any, summary: Any, expected: int | None) -> None:
            self._frames = summary.frames

        result = run_job(job, self.model, self.options, self.palette, on_frame)
        result.worker = self.identity()
        return result

    def frames(self) -> int:
        return self._frames


@dataclass
class _Actor:
    handle: Any
    ready: Any  # the ObjectRef of identity() until it resolves
    identity: dict[str, Any] | None = None


def run_on_ray(
    jobs: Sequence[VideoJob],
    model_ref: Any,
    options: JobOptions,
    spec: WorkerSpec,
    *,
    progress: RunProgress,
    on_result: Callable[[VideoJob, VideoResult], None],
    on_event: OnEvent | None = None,
    max_attempts: int = 3,
) -> None:
    """Segment `jobs` on the connected Ray cluster with the model `share_model` put in its object store.
    on_result(job, result) for every outcome, a lost worker's attempt included (outcome `worker-lost`);
    on_event for the progress display."""
    ray = import_ray()
    from ray.exceptions import RayError, RayTaskError

    count = max(1, min(spec.workers or _slots(ray, spec), len(jobs)))
    actor_class = ray.remote(SegmentWorker).options(
        num_cpus=spec.cpus, num_gpus=spec.gpus, max_restarts=0, max_concurrency=2, scheduling_strategy="SPREAD"
    )
    threads = max(1, int(spec.cpus))

    def start_actor() -> _Actor:
        handle = actor_class.remote(model_ref, options, "cuda" if spec.gpus > 0 else spec.device, threads)
        return _Actor(handle, handle.identity.remote())

    starting = [start_actor() for _ in range(count)]
    idle: list[_Actor] = []
    busy: dict[Any, tuple[_Actor, VideoJob, float]] = {}
    queue = deque(jobs)
    waiting_since, start_failures = time.perf_counter(), 0
    try:
        while queue or busy:
            starting, ready, failures = _ready_actors(ray, starting, RayError)
            start_failures += len(failures)
            if start_failures > count + max_attempts:
                raise ArsegError(f"Ray workers keep failing to start ({start_failures} times): {failures[-1]}")
            if ready or busy:
                waiting_since = time.perf_counter()
            elif time.perf_counter() - waiting_since > STARTUP_TIMEOUT_S:
                raise ArsegError(f"no Ray worker started in {STARTUP_TIMEOUT_S:.0f} s: does the cluster have "
                                 f"{spec.cpus:g} CPUs and {spec.gpus:g} GPUs free for one?")  # fmt: skip
            idle.extend(ready)
            progress.workers.extend(actor.identity for actor in ready if actor.identity is not None)
            wanted = min(count, len(queue) + len(busy)) - len(starting) - len(idle) - len(busy)
            starting.extend(start_actor() for _ in range(wanted))
            while queue and idle:
                actor, job = idle.pop(), queue.popleft()
                busy[actor.handle.segment.remote(job)] = (actor, job, time.perf_counter())
                progress.in_flight[job.source] = InFlight(actor.identity or {}, job.attempt)
            if busy:
                finished, _ = ray.wait(list(busy), num_returns=1, timeout=TICK_S)
            else:
                finished = []
                time.sleep(TICK_S)
            for ref in finished:
                actor, job, submitted = busy.pop(ref)
                try:
                    result = ray.get(ref)
                    result.turnaround_s = time.perf_counter() - submitted
                    idle.append(actor)
                except RayTaskError as error:  # outside run_job's guard, e.g. the job could not be unpickled
                    result = VideoResult(job.source, "failed", job.attempt, error=f"{job.source}: {_first_line(error)}")
                    idle.append(actor)
                except RayError as error:  # the worker process or its node died
                    ray.kill(actor.handle, no_restart=True)
                    result = _lost(job, actor, error, max_attempts)
                if result.outcome == "worker-lost":
                    queue.appendleft(job.retry())
                    progress.retried += 1
                    progress.in_flight.pop(job.source, None)
                else:
                    progress.add(result)
                on_result(job, result)
                if on_event is not None:
                    on_event(progress, result)
            _poll_frames(ray, busy, progress, RayError)
            if on_event is not None:
                on_event(progress, None)
    finally:
        for actor in [*starting, *idle, *(entry[0] for entry in busy.values())]:
            ray.kill(actor.handle, no_restart=True)


def _lost(job: VideoJob, actor: _Actor, error: Exception, max_attempts: int) -> VideoResult:
    """A worker died under `job`: retried (outcome worker-lost) until `max_attempts` attempts failed."""
    worker = actor.identity or {}
    reason = f"worker {worker.get('host', '?')}:{worker.get('pid', '?')} lost ({type(error).__name__})"
    if job.attempt < max_attempts:
        return VideoResult(job.source, "worker-lost", job.attempt, error=reason, worker=worker)
    return VideoResult(job.source, "failed", job.attempt, worker=worker,
                       error=f"{job.source}: {reason}, {job.attempt} attempts, giving up")  # fmt: skip


def _ready_actors(ray: Any, starting: list[_Actor], ray_error: type[Exception]) -> tuple[list[_Actor], list[_Actor], list[str]]:
    """(still starting, ready now, why others died while starting: the caller replaces them)."""
    if not starting:
        return [], [], []
    done, _ = ray.wait([actor.ready for actor in starting], num_returns=len(starting), timeout=0)
    done_ids = {ref.hex() for ref in done}
    waiting, ready, failed = [], [], []
    for actor in starting:
        if actor.ready.hex() not in done_ids:
            waiting.append(actor)
            continue
        try:
            actor.identity = ray.get(actor.ready)
        except ray_error as error:
            if getattr(error, "actor_init_failed", False):  # the worker raised while loading: it would again
                raise ArsegError(f"a Ray worker failed to start: {_first_line(error)}") from None
            failed.append(_first_line(error))
            logging.getLogger(__name__).warning("a Ray worker failed to start: %s", failed[-1])
            continue
        ready.append(actor)
    return waiting, ready, failed


def _poll_frames(ray: Any, busy: dict[Any, tuple[_Actor, VideoJob, float]], progress: RunProgress, ray_error: type[Exception]) -> None:
    """Frames done so far by each busy worker (a worker that does not answer in time keeps its count)."""
    polls = {actor.handle.frames.remote(): job.source for actor, job, _ in busy.values()}
    if not polls:
        return
    answered, _ = ray.wait(list(polls), num_returns=len(polls), timeout=TICK_S / 2)
    for ref in answered:
        try:
            frames = ray.get(ref)
        except ray_error:
            continue
        item = progress.in_flight.get(polls[ref])
        if item is not None:
            item.frames = frames


def _slots(ray: Any, spec: WorkerSpec) -> int:
    """How many workers of `spec` the cluster's resources hold."""
    resources = ray.cluster_resources()
    if spec.gpus > 0:
        return int(resources.get("GPU", 0) // spec.gpus)
    return int(resources.get("CPU", 1) // spec.cpus) if spec.cpus > 0 else 1


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


__all__ = ["RayExtraMissingError", "SegmentWorker", "WorkerSpec", "import_ray", "run_on_ray", "share_model"]
