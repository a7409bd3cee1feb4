"""Small stand-ins for the training tests: a pair data set of synthetic tensors with the PairDataset
item contract, and tiny model metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from arseg_cli.model import build_arseg
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.architecture import CAMVID_MEAN, CAMVID_STD
from arseg_cli.model.meta import ModelMeta
from arseg_cli.palettes import CAMVID

if TYPE_CHECKING:
    from arseg_cli.train import TrainConfig

HEIGHT, WIDTH = 64, 96


class FakePairs(Dataset):
    """`count` items of PairDataset's form: blocky label maps, images coloured by class plus noise,
    the keyframe shifted right by 2 px (flow dx = -2 wherever the shift is defined). Deterministic per
    (seed, epoch, index), like PairDataset."""

    def __init__(self, count: int = 4, *, seed: int = 0, height: int = HEIGHT, width: int = WIDTH, variants: int = 0) -> None:
        self.count, self.seed, self.height, self.width = count, seed, height, width
        self.epoch = 0
        self.variants = variants

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        variant = self.epoch % self.variants if self.variants else self.epoch
        # fixed content per item (and per variant, when there are variants): overfitting is possible
        rng = np.random.default_rng([self.seed, index, variant] if self.variants else [self.seed, index])
        blocks = rng.integers(0, 4, (self.height // 16, self.width // 16))
        labels = np.kron(blocks, np.ones((16, 16), np.int64))
        colours = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], np.int16)
        cur = np.clip(colours[labels] + rng.integers(-20, 21, labels.shape + (3,)), 0, 255).astype(np.uint8)
        key = np.roll(cur, 2, axis=1)
        flow = np.zeros((2, self.height, self.width), np.float32)
        flow[0] = 2.0  # pixel x of cur sits at x + 2 in key
        labels[:, :2] = 255
        return {
            "key": torch.from_numpy(np.ascontiguousarray(key.transpose(2, 0, 1))),
            "cur": torch.from_numpy(np.ascontiguousarray(cur.transpose(2, 0, 1))),
            "flow": torch.from_numpy(flow),
            "labels": torch.from_numpy(labels),
            "distance": 2,
            "index": index,
            "variant": variant,
        }


def camvid_meta(arch: str = "camvid-bise18", scale: float | None = None) -> ModelMeta:
    return ModelMeta(arch, CAMVID.classes, CAMVID.colors, CAMVID_MEAN, CAMVID_STD, scale=scale)


def seeded_model(meta: ModelMeta, seed: int = 0) -> ARSeg:
    torch.manual_seed(seed)
    return build_arseg(meta)


def ddp_worker(rank: int, world_size: int, port: int, config: object, out: str) -> None:
    """One process of a DDP run as `torchrun` would start it (environment variables), training
    FakePairs(4) from seeded_model(camvid_meta()); rank 0 saves the final state_dict to `out`."""
    import os

    from arseg_cli.train import Trainer, distributed

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    processes = distributed.start("cpu")
    try:
        model = seeded_model(camvid_meta())
        Trainer(model, FakePairs(4), config, processes).run()  # type: ignore[arg-type]
        if processes.is_main:
            torch.save(model.state_dict(), out)
    finally:
        distributed.stop(processes)


def train_config(**changes: object) -> "TrainConfig":
    """A small TrainConfig (camvid-bise18, phase hr, 6 steps of batch 2, Adam 1e-3) with `changes`."""
    from arseg_cli.train import TrainConfig

    base: dict[str, object] = {"phase": "hr", "arch": "camvid-bise18", "steps": 6, "batch": 2, "lr": 1e-3, "optimizer": "adam"}
    base.update(changes)
    return TrainConfig(**base)  # type: ignore[arg-type]


class StopTraining(Exception):
    """Raised by `stop_after`'s callback: a run that dies after a given step."""


def stop_after(step: int):  # noqa: ANN201
    """A Trainer.run on_step callback that raises StopTraining once `step` is done."""

    def on_step(report) -> None:  # noqa: ANN001
        if report.step == step:
            raise StopTraining

    return on_step
