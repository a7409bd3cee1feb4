"""The training loop: data order, optimiser and schedule, AMP, checkpoints and exact resume.

Data order: epoch e is the permutation `torch.randperm(n)` drawn from a generator seeded with
(seed, e); step t of the epoch takes its `batch * world_size` items from position t * batch * world_size,
process r the r-th slice of `batch` (DDP: the global batch is the concatenation of the processes'
batches). An incomplete last global batch is dropped. The dataset's own randomness (distance,
augmentation) is seeded per (seed, epoch, item) through `set_epoch` (PairDataset), so the step alone
says which data come next: resuming needs no sampler state.
"""

from __future__ import annotations

import math
import multiprocessing
import random
import time
from collections import deque
from collections.abc import Callable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from arseg_cli.errors import InputError
from arseg_cli.model.arseg import ARSeg
from arseg_cli.train import distributed
from arseg_cli.train.checkpoint import check_resumable, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from arseg_cli.train.config import TrainConfig
from arseg_cli.train.distributed import Processes
from arseg_cli.train.feature_cache import FeatureCache
from arseg_cli.train.metrics import MetricsLog
from arseg_cli.train.objective import PhaseObjective

#: How many of the last steps' losses the reported final loss averages.
FINAL_LOSS_STEPS = 10


def loader_start_method() -> str | None:
    """How loader workers start: from a clean server process (Python 3.14's default on Linux), not as
    forks of this one. A fork inherits the native thread pools this process holds without their
    threads (with PyAV 18.1.1, swscale's after any frame conversion here, arseg's or the caller's) and
    can wait on them for ever. The server imports torch and the pair dataset once, so that each
    epoch's workers start as fast as forks. As with any non-fork start, a script that trains with
    workers must guard its entry point (`if __name__ == "__main__":`)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    multiprocessing.set_forkserver_preload(["torch", "arseg_cli.data.torch_dataset"])  # before it starts
    return "forkserver"


@dataclass(frozen=True)
class StepReport:
    """What one finished step reports (losses averaged over the processes)."""

    step: int
    total_steps: int
    epoch: int
    losses: dict[str, float]
    lr: float
    images_per_s: float
    creff: bool


@dataclass(frozen=True)
class TrainResult:
    """steps: steps done in all (resumed runs included); seconds: wall time of all runs;
    final_loss: mean total loss of the last FINAL_LOSS_STEPS steps."""

    steps: int
    seconds: float
    final_loss: float
    world_size: int


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (model initialisation, dropout)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def steps_per_epoch(num_items: int, batch: int, world_size: int) -> int:
    per_step = batch * world_size
    if num_items < per_step:
        raise InputError(f"the data have {num_items} training items, fewer than one global batch of {per_step}")
    return num_items // per_step


def epoch_batches(num_items: int, *, batch: int, processes: Processes, seed: int, epoch: int) -> list[list[int]]:
    """Item indices of this process's batches in `epoch`, one list per step (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_items, generator=generator).tolist()
    per_step = batch * processes.world_size
    start = processes.rank * batch
    return [order[s * per_step + start : s * per_step + start + batch] for s in range(num_items // per_step)]


def make_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def cosine_factor(step: int, total: int) -> float:
    """Cosine decay of the learning rate per iteration: 1 at step 0, 0 at `total`."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


class Trainer:
    """Trains `model` (phase and settings from `config`) on `dataset`, whose items are PairDataset's
    dicts (key, cur, flow, labels, distance). Phase ar expects the HR branch already loaded; it is
    frozen here.

    checkpoint: where the resumable state is written (every `config.checkpoint_every` steps and at
    the end); resume: start from it. metrics: the JSONL file (main process only). feature_cache:
    phase ar's frozen HR features per (item, variant) (one process only; items carry "index" and
    "variant").
    """

    def __init__(
        self,
        model: ARSeg,
        dataset: Dataset[dict[str, Any]],
        config: TrainConfig,
        processes: Processes,
        *,
        checkpoint: Path | None = None,
        metrics: Path | None = None,
        feature_cache: FeatureCache | None = None,
    ) -> None:
        if feature_cache is not None and (config.phase != "ar" or processes.world_size != 1):
            raise InputError("a feature cache serves phase ar in one process only")
        self.model = model.to(processes.device)
        self.dataset = dataset
        self.config = config
        self.processes = processes
        self.checkpoint = checkpoint
        self.metrics_path = metrics
        if config.phase == "ar":
            model.freeze_hr()
        if config.gate_only:
            model.freeze_all_but_gate()
        self.feature_cache = feature_cache
        self.objective = PhaseObjective(
            model, config.phase, fst_weight=config.fst_weight, loss=config.loss, feature_cache=feature_cache
        ).to(processes.device)
        find_unused = config.phase == "ar" and config.plain_steps > 0
        self.module = distributed.wrap(self.objective, processes, find_unused=find_unused)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(params, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: cosine_factor(s, config.steps))
        self.amp = config.amp and processes.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.num_items = len(dataset) if isinstance(dataset, Sized) else 0
        self.steps_per_epoch = steps_per_epoch(self.num_items, config.batch, processes.world_size)
        self.step = 0
        self.seconds_before = 0.0
        self._run_started: float | None = None  # perf_counter at the start of this process's run
        self.recent: deque[float] = deque(maxlen=FINAL_LOSS_STEPS)

    # --- state --------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The resumable state (collective in DDP: every process must call it)."""
        rngs = distributed.gather_objects(rng_state(), self.processes)
        return {
            "step": self.step,
            "config": self.config.resume_key(),
            "world_size": self.processes.world_size,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rngs,
            "recent_losses": list(self.recent),
            "seconds": self.elapsed_s(),
        }

    def elapsed_s(self) -> float:
        """Wall seconds of training so far: earlier runs (from the checkpoint) and this one."""
        running = 0.0 if self._run_started is None else time.perf_counter() - self._run_started
        return self.seconds_before + running

    def save(self) -> None:
        state = self.state()
        if self.processes.is_main and self.checkpoint is not None:
            save_checkpoint(self.checkpoint, state)
        distributed.barrier(self.processes)

    def resume(self) -> None:
        if self.checkpoint is None:
            raise InputError("resuming needs a checkpoint path")
        state = load_checkpoint(self.checkpoint)
        check_resumable(state["config"], self.config.resume_key(), self.checkpoint)
        if state["world_size"] != self.processes.world_size:
            raise InputError(
                f"cannot resume from {self.checkpoint}: it was written by {state['world_size']} processes, "
                f"this run has {self.processes.world_size}"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][self.processes.rank])
        self.step = int(state["step"])
        self.recent.extend(float(v) for v in state["recent_losses"])
        self.seconds_before = float(state["seconds"])

    # --- running ------------------------------------------------------------------------------------
    def run(self, on_step: Callable[[StepReport], None] | None = None, *, resume: bool = False) -> TrainResult:
        """Train up to `config.steps` steps (from the checkpoint's step when `resume`)."""
        if resume:
            self.resume()
        else:
            seed_everything(self.config.seed + self.processes.rank)
        log = self._open_log(resume)
        started = self._run_started = time.perf_counter()
        try:
            while self.step < self.config.steps:
                self._run_epoch_from(self.step, log, on_step, started)
        finally:
            if log is not None:
                log.close()
        self.seconds_before += time.perf_counter() - started
        self._run_started = None
        if self.checkpoint is not None:
            self.save()
        final = float(np.mean(self.recent)) if self.recent else float("nan")
        return TrainResult(self.step, self.seconds_before, final, self.processes.world_size)

    def _open_log(self, resume: bool) -> MetricsLog | None:
        if self.metrics_path is None or not self.processes.is_main:
            return None
        log = MetricsLog(self.metrics_path, append=resume)
        if resume:
            log.truncate_after(self.step)
        return log

    def _run_epoch_from(
        self, step: int, log: MetricsLog | None, on_step: Callable[[StepReport], None] | None, started: float
    ) -> None:
        epoch, position = divmod(step, self.steps_per_epoch)
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        batches = epoch_batches(
            self.num_items, batch=self.config.batch, processes=self.processes, seed=self.config.seed, epoch=epoch
        )[position:]
        remaining = self.config.steps - step
        loader = DataLoader(
            self.dataset,
            batch_sampler=batches[:remaining],
            num_workers=self.config.workers,
            pin_memory=self.processes.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.config.seed),  # keeps the global RNG untouched
            multiprocessing_context=loader_start_method() if self.config.workers > 0 else None,
        )
        tick = time.perf_counter()
        for batch in loader:
            lr = float(self.optimizer.param_groups[0]["lr"])  # the rate this step uses
            losses = self._train_step(batch)
            self.step += 1
            now = time.perf_counter()
            report = StepReport(
                step=self.step,
                total_steps=self.config.steps,
                epoch=epoch,
                losses=distributed.mean_over_processes(losses, self.processes),
                lr=lr,
                images_per_s=self.config.batch * self.processes.world_size / max(now - tick, 1e-9),
                creff=self._use_creff(self.step - 1),
            )
            tick = now
            self.recent.append(report.losses["total"])
            if log is not None:
                log.write(_record(report, self.seconds_before + now - started))
            if on_step is not None and self.processes.is_main:
                on_step(report)
            if self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0:
                self.save()

    def _use_creff(self, step: int) -> bool:
        return self.config.phase == "ar" and step >= self.config.plain_steps

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        device = self.processes.device
        key, cur, flow, labels = (batch[k].to(device, non_blocking=True) for k in ("key", "cur", "flow", "labels"))
        slots = None
        if self.feature_cache is not None:
            slots = [self.feature_cache.slot(int(i), int(v)) for i, v in zip(batch["index"], batch["variant"])]
        self.module.train()
        with torch.autocast(device.type, dtype=torch.float16, enabled=self.amp):
            losses = self.module(key, cur, flow, labels, self._use_creff(self.step), slots)
        if not bool(torch.isfinite(losses.total)):
            raise InputError(f"the loss became {float(losses.total)} at step {self.step + 1}: lower `lr` or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses.total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return losses.detached()


def _record(report: StepReport, seconds: float) -> dict[str, Any]:
    return {
        "step": report.step,
        "epoch": report.epoch,
        **{f"loss_{k}" if k != "total" else "loss": round(v, 6) for k, v in report.losses.items()},
        "lr": report.lr,
        "images_per_s": round(report.images_per_s, 3),
        "creff": report.creff,
        "seconds": round(seconds, 3),
    }
