"""Training (`arseg train`): phase hr (the HR network at 1.0x) and phase ar (the LR branch at scale s
with CReFF against the frozen HR branch, FST). docs/TRAINING.md.

Modules, one job each: config (TrainConfig, official recipes), losses (segmentation, auxiliary, FST),
objective (the per-batch loss of each phase as a module DDP can wrap), loop (Trainer: data order,
optimiser, schedule, AMP, checkpoints), checkpoint (resumable state, RNG states), distributed (torchrun
/ DDP), metrics (JSONL), run (data + model + provenance for the CLI). The CLI renders progress from the
Trainer's StepReports (cli/_train_progress.py).
"""

from arseg_cli.train.config import Recipe, TrainConfig, recipe_for
from arseg_cli.train.loop import StepReport, Trainer, TrainResult, seed_everything

__all__ = ["Recipe", "StepReport", "TrainConfig", "TrainResult", "Trainer", "recipe_for", "seed_everything"]
