"""Phase ar's frozen features, computed once per training item and form, kept on disk.

In phase ar the HR network is frozen (eval mode, no gradients), so its feature of an item's keyframe and
of its current frame (FST's target) depend only on the item's pixels. When the items take a finite
number of forms (PairDataset `variants` V: item i in epoch e is form e mod V), each (item, form) is
a slot whose two features are computed the first time the slot is met and read back afterwards.

Storage: float16 memory-mapped arrays `key.f16` and `target.f16` of shape (V * N, C, Hf, Wf) and a
byte per slot in `filled.u8`, under one directory with `cache.json`, which records what the
features were made from: the HR weights' hash and the data's identity (data set, split, frames,
pair and augmentation settings). A cache made from anything else is refused in one line.

Phase ar rounds the frozen features to float16 whether or not a cache is used (`round_frozen`), so
a cached run and an uncached one compute the same steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from arseg_cli.errors import InputError

CACHE_FORMAT = 1
_FEATURES = ("key", "target")


def round_frozen(feature: Tensor) -> Tensor:
    """The frozen feature as phase ar uses it: rounded to float16, computed on in float32."""
    return feature.to(torch.float16).to(torch.float32)


def weights_hash(module: nn.Module) -> str:
    """sha256 over the module's state_dict (names, dtypes, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def data_identity(pairs: Any) -> dict[str, Any]:
    """What a PairDataset's items are made from: the data set, its frames and the pair settings."""
    dataset = pairs.dataset
    names = hashlib.sha256("\n".join(str(f.labels.resolve()) for f in pairs.frames).encode()).hexdigest()
    # The codec only when not H.264, so that caches made before the option keep their identity.
    codec = {"codec": pairs.codec} if getattr(pairs, "codec", "h264") != "h264" else {}
    return codec | {
        "dataset": dataset.name, "layout": dataset.layout, "split": dataset.split, "frames": len(pairs),
        "frame_names_sha256": names, "keyint": pairs.keyframe_interval, "policy": pairs.policy, "seed": pairs.seed,
        "augment": pairs.augment, "crop_hw": list(pairs.crop_hw) if pairs.crop_hw else None,
        "scale_range": list(pairs.scale_range), "jitter": pairs.jitter, "variants": pairs.variants,
        "pair_frames": pairs.pair_frames, "crf": pairs.crf, "preset": pairs.preset,
    }  # fmt: skip


class FeatureCache:
    """The slots of `items` x `variants` under `directory` (see the module docstring).

    identity: what the features are made from (weights hash, data identity); an existing cache with
    another identity raises InputError.
    """

    def __init__(self, directory: Path, *, identity: dict[str, Any], items: int, variants: int) -> None:
        if items < 1 or variants < 1:
            raise InputError(f"a feature cache needs items and variants >= 1, got {items} and {variants}")
        self.directory = Path(directory)
        self.identity = {"format": CACHE_FORMAT, "items": items, "variants": variants, **identity}
        self.slots = items * variants
        self.items = items
        self._arrays: dict[str, np.memmap] = {}
        self._filled: np.memmap | None = None
        self._open()

    def slot(self, index: int, variant: int) -> int:
        return (variant % self.identity["variants"]) * self.items + index

    def _meta_path(self) -> Path:
        return self.directory / "cache.json"

    def _open(self) -> None:
        meta_path = self._meta_path()
        if meta_path.is_file():
            try:
                stored = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise InputError(f"feature cache {self.directory} is unreadable ({error}): delete it or choose another") from None
            made_from = {k: v for k, v in stored.items() if k != "shape"}
            if made_from != self.identity:
                differing = sorted(k for k in set(made_from) | set(self.identity) if made_from.get(k) != self.identity.get(k))
                raise InputError(
                    f"feature cache {self.directory} was made from other weights or data ({', '.join(differing[:4])} differ): "
                    "delete it or choose another `feature_cache`"
                )
            if stored.get("shape"):
                self._check_files(tuple(stored["shape"]))
                self._map(tuple(stored["shape"]), mode="r+")
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_meta(None)

    def _write_meta(self, shape: tuple[int, ...] | None) -> None:
        temp = self._meta_path().with_suffix(".json.tmp")
        temp.write_text(json.dumps({**self.identity, "shape": list(shape) if shape else None}), encoding="utf-8")
        os.replace(temp, self._meta_path())

    def _file_sizes(self, shape: tuple[int, ...]) -> dict[str, int]:
        per_slot = 2 * int(np.prod(shape))
        return {**{f"{name}.f16": self.slots * per_slot for name in _FEATURES}, "filled.u8": self.slots}

    def _check_files(self, shape: tuple[int, ...]) -> None:
        """InputError unless every array file has the size the recorded shape gives (a missing or cut
        file would otherwise be read as zeros, or extended with them)."""
        for name, size in self._file_sizes(shape).items():
            path = self.directory / name
            if not path.is_file() or path.stat().st_size != size:
                raise InputError(f"feature cache {self.directory} is damaged ({name} is missing or cut): delete it or choose another")

    def _allocate(self, shape: tuple[int, ...]) -> None:
        """Create the array files at their full size, refusing in one line when the disk cannot hold
        them (writing into a memory map past a full disk would kill the process)."""
        sizes = self._file_sizes(shape)
        needed = sum(sizes.values())
        free = shutil.disk_usage(self.directory).free
        if needed > free:
            raise InputError(
                f"the feature cache needs {needed / 1e9:.1f} GB for {self.slots} item forms of shape {shape}, "
                f"{self.directory} has {free / 1e9:.1f} GB free: use `no_feature_cache`, a smaller `crop`, fewer "
                "`augment_variants` or another `feature_cache`"
            )
        for name, size in sizes.items():
            with open(self.directory / name, "wb") as file:
                try:
                    os.posix_fallocate(file.fileno(), 0, size)
                except OSError as error:
                    raise InputError(f"cannot allocate the feature cache {self.directory / name}: {error.strerror}") from None

    def _map(self, shape: tuple[int, ...], *, mode: str) -> None:
        for name in _FEATURES:
            self._arrays[name] = np.memmap(self.directory / f"{name}.f16", np.float16, mode, shape=(self.slots, *shape))
        self._filled = np.memmap(self.directory / "filled.u8", np.uint8, mode, shape=(self.slots,))

    @property
    def shape(self) -> tuple[int, ...] | None:
        """(C, Hf, Wf) of the stored features; None before the first put."""
        return tuple(self._arrays["key"].shape[1:]) if self._arrays else None

    def missing(self, slots: list[int]) -> list[int]:
        """The positions in `slots` whose features are not stored yet."""
        if self._filled is None:
            return list(range(len(slots)))
        return [i for i, s in enumerate(slots) if not self._filled[s]]

    def put(self, slots: list[int], key: Tensor, target: Tensor) -> None:
        """Store the features (len(slots), C, Hf, Wf) of `slots` (rounded to float16)."""
        shape = tuple(key.shape[1:])
        if self.shape is None:
            self._allocate(shape)
            self._map(shape, mode="r+")
            self._write_meta(shape)
        elif shape != self.shape:
            raise InputError(
                f"feature cache {self.directory} holds features of shape {self.shape}, this item's is {shape}: "
                "the cache needs items of one size (whole frames of one size, or `crop`)"
            )
        for name, values in zip(_FEATURES, (key, target)):
            self._arrays[name][slots] = values.detach().to(torch.float16).cpu().numpy()
        for name in _FEATURES:
            self._arrays[name].flush()
        assert self._filled is not None
        self._filled[slots] = 1
        self._filled.flush()

    def get(self, slots: list[int], device: torch.device) -> tuple[Tensor, Tensor]:
        """(key, target) features of `slots` as float32 on `device`."""
        if self._filled is None or not all(self._filled[s] for s in slots):
            raise KeyError("feature cache: a slot is not filled")
        key, target = (torch.from_numpy(np.asarray(self._arrays[n][slots])).to(device, torch.float32) for n in _FEATURES)
        return key, target
