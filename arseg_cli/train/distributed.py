"""Data-parallel training with PyTorch DDP, launched by `torchrun` (which sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Backend: nccl on CUDA, gloo on CPU. Without those variables the
run is a single process and nothing here touches torch.distributed.

BatchNorm: on CUDA the model's BatchNorm layers become SyncBatchNorm (statistics over the global batch,
as one process would compute them); PyTorch's SyncBatchNorm does not run on CPU, so CPU processes
normalise with their own shard's statistics (docs/TRAINING.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from arseg_cli.options import pick_device


@dataclass(frozen=True)
class Processes:
    """Where this process sits: rank among world_size processes, and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start(policy: str) -> Processes:
    """Join the process group `torchrun` describes in the environment, or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(policy)
    if world <= 1:
        return Processes(0, 1, device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(rank, world, device)


def stop(processes: Processes) -> None:
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, processes: Processes, *, find_unused: bool) -> nn.Module:
    """`module` inside DistributedDataParallel when running with several processes, else itself."""
    if not processes.distributed:
        return module
    if processes.device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return nn.parallel.DistributedDataParallel(module, device_ids=[processes.device], find_unused_parameters=find_unused)
    return nn.parallel.DistributedDataParallel(module, find_unused_parameters=find_unused)


def mean_over_processes(values: dict[str, float], processes: Processes) -> dict[str, float]:
    """The mean of each value over the processes (for logging); the values themselves when alone."""
    if not processes.distributed:
        return values
    names = sorted(values)
    packed = torch.tensor([values[n] for n in names], dtype=torch.float64, device=processes.device)
    dist.all_reduce(packed)
    return {n: float(v) / processes.world_size for n, v in zip(names, packed.tolist())}


def gather_objects(value: Any, processes: Processes) -> list[Any]:
    """[value of rank 0, value of rank 1, ...] on every process."""
    if not processes.distributed:
        return [value]
    gathered: list[Any] = [None] * processes.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(processes: Processes) -> None:
    if processes.distributed:
        dist.barrier()
