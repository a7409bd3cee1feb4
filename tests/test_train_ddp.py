"""DDP with 2 CPU processes (gloo), started as torchrun starts them, against one process.

On CPU each process normalises with its own shard's BatchNorm statistics (PyTorch's SyncBatchNorm runs
on GPUs only), so one process reproduces a 2-process step by running the objective on each half of the
global batch and averaging the two losses: the gradient DDP all-reduces. The weights then agree up to
float32 rounding of the summation order (gradients summed by gloo vs. by autograd): SGD's update is
linear in the gradient, so differences stay at lr * |grad| * 1e-7 per step; atol 1e-6 leaves room.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from _train_fixtures import FakePairs, camvid_meta, ddp_worker, seeded_model
from arseg_cli.model.weights import read_info
from arseg_cli.synth import SynthSpec, write_dataset
from arseg_cli.train import TrainConfig, seed_everything
from arseg_cli.train.distributed import Processes
from arseg_cli.train.loop import cosine_factor, epoch_batches, make_optimizer
from arseg_cli.train.metrics import read_metrics
from arseg_cli.train.objective import PhaseObjective

CONFIG = TrainConfig(phase="hr", arch="camvid-bise18", steps=3, batch=2, lr=0.05, optimizer="sgd", momentum=0.9, seed=4)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_process_reference() -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    model = seeded_model(camvid_meta())
    data = FakePairs(4)
    seed_everything(CONFIG.seed)
    objective = PhaseObjective(model, "hr")
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], CONFIG)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_factor(s, CONFIG.steps))
    alone = Processes(0, 1, torch.device("cpu"))
    for step in range(CONFIG.steps):
        epoch, position = divmod(step, 1)  # 4 items, global batch 4: one step per epoch
        indices = epoch_batches(4, batch=4, processes=alone, seed=CONFIG.seed, epoch=epoch)[position]
        shards = [indices[:2], indices[2:]]  # rank 0, rank 1
        objective.train()
        losses = []
        for shard in shards:
            items = [data[i] for i in shard]
            batch = {k: torch.stack([item[k] for item in items]) for k in ("key", "cur", "flow", "labels")}
            losses.append(objective(batch["key"], batch["cur"], batch["flow"], batch["labels"]).total)
        optimizer.zero_grad()
        (sum(losses) / len(losses)).backward()
        optimizer.step()
        schedule.step()
    return model.state_dict()


def test_two_gloo_processes_match_one_process_on_the_global_batch(tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    mp.spawn(ddp_worker, args=(2, _free_port(), CONFIG, str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    reference = _one_process_reference()
    start = seeded_model(camvid_meta()).state_dict()
    moved = 0
    for name, param in seeded_model(camvid_meta()).named_parameters():
        assert torch.allclose(ddp[name], reference[name], rtol=0, atol=1e-6), name
        moved += not torch.equal(ddp[name], start[name])
    assert moved > 50  # the run did train


@pytest.mark.slow
def test_torchrun_trains_with_two_cpu_processes(tmp_path: Path) -> None:
    """The CLI under `torchrun --nproc-per-node 2` (gloo): one weights file, written by rank 0."""
    data = tmp_path / "data"
    write_dataset(data, SynthSpec(clips=1, frames=8, height=64, width=96, seed=3, keyint=4, crf=20, preset="ultrafast"))
    out = tmp_path / "hr.safetensors"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--nproc-per-node", "2", "-m", "arseg_cli", "train", str(data), "--split", "all", "-L", "4",
               "--phase", "hr", "-o", str(out), "--steps", "2", "--batch", "2", "--crop", "64x96", "--device", "cpu"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(out)  # printed once, by rank 0
    facts = read_info(out).meta.provenance
    assert facts["device"] == "cpu x2" and facts["command"].startswith("torchrun --nproc-per-node 2 -m arseg_cli train")
    assert [r["step"] for r in read_metrics(out.with_name(out.name + ".metrics.jsonl"))] == [1, 2]
