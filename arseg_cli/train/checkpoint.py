"""Resumable training state: model, optimiser, LR scheduler, AMP scaler, RNG states, step.

A checkpoint is a torch file read back with `torch.load(weights_only=True)` (no code is unpickled):
everything in it is tensors, numbers, strings and containers of them. The data order needs no state of
its own: it is a function of (seed, epoch, position), and the step gives both (loop.py).
RNG states are kept per process (a DDP run gathers them to rank 0) so that every process resumes
with its own generators exactly where they were.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from arseg_cli.errors import InputError, InputNotFoundError
from arseg_cli.atomic_files import atomic_path, os_errors_as_output_errors

CHECKPOINT_FORMAT = "arseg-train-checkpoint-1"


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (CUDA too when present)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write `state` (see `TrainState.checkpoint` in loop.py) atomically to `path`, replacing it."""
    with os_errors_as_output_errors(path), atomic_path(path, force=True) as temp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, temp)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (tensors on CPU)."""
    if not path.is_file():
        raise InputNotFoundError(f"no checkpoint to resume from at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise InputError(f"{path} is not a readable arseg training checkpoint ({type(error).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not an arseg training checkpoint")
    return state


def check_resumable(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Refuse to resume when settings that shape the run differ from the checkpoint's."""
    differing = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if differing:
        shown = ", ".join(f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in differing[:4])
        raise InputError(f"cannot resume from {path}: settings differ ({shown})")
