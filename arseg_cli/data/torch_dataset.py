"""PairDataset: the pairs of a data set as a torch Dataset, with a keyframe-distance policy.

Distance policies (d = frames from the keyframe to the labelled frame, L = keyframe interval):
- "official": d = L - 1 for every item, as AR-Seg trains (the largest distance at inference);
- "uniform":  d drawn uniformly from 1..L-1 per item and epoch (arseg's default: training sees every
  distance inference meets).
Only frames with index >= L - 1 are used, under both policies, so that every distance is possible and
both policies draw from the same frames. Item i of epoch e draws d and the augmentation from
`np.random.default_rng([seed, e, i])`: the same seed gives the same items in any order and in any
loader worker; `set_epoch` changes them. With `variants` V > 0 the draw is that of epoch e mod V: each
item then takes only V forms (variant = e mod V), which is what lets training cache what frozen
networks compute on each form (train/feature_cache.py).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from arseg_cli.data.augment import augment_pair
from arseg_cli.data.pairs import DEFAULT_CRF, DEFAULT_PRESET, Pair, PairCache, PairCodec, PairFrames, check_codec, make_pair
from arseg_cli.data.records import Dataset
from arseg_cli.errors import InputError, OutOfRangeError
from arseg_cli.scale_interval import check_keyframe_interval

DistancePolicy = Literal["official", "uniform"]


class PairDataset(TorchDataset[dict[str, torch.Tensor | int]]):
    """Items: {"key": (3, H, W) uint8, "cur": (3, H, W) uint8, "flow": (2, H, W) float32 (cur -> key,
    pixels), "labels": (H, W) int64 (255 = ignore), "distance": int, "index": int, "variant": int}.

    `augment`: random scale/flip/crop and colour jitter (augment.py) with `crop_hw`, `scale_range`,
    `jitter`; with no `crop_hw` the scaled pair is cropped back to its own size (whole frames, the
    official training). Without `augment` the pairs keep their size (`crop_hw` then still crops/pads
    when given, at a random position).
    `cache`: a PairCache (or directory) so that each pair is encoded once.
    `frames`: the pixels the pairs carry, 'decoded' (default) or 'source' (pairs.PairFrames).
    `codec`: the snippets' codec, 'h264' (default) or 'hevc' (pairs.PairCodec).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        keyframe_interval: int = 12,
        policy: DistancePolicy = "uniform",
        seed: int = 0,
        augment: bool = False,
        crop_hw: tuple[int, int] | None = None,
        scale_range: tuple[float, float] = (0.75, 1.25),
        jitter: float = 0.0,
        variants: int = 0,
        cache: PairCache | str | None = None,
        crf: float = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        frames: PairFrames = "decoded",
        codec: PairCodec = "h264",
    ) -> None:
        check_codec(codec)
        if policy not in ("official", "uniform"):
            raise InputError(f"unknown distance policy {policy!r}: use official or uniform")
        if check_keyframe_interval(keyframe_interval) < 2:
            raise OutOfRangeError(f"pairs need a keyframe interval L >= 2 (a keyframe and a frame after it), got {keyframe_interval}")
        if variants < 0:
            raise InputError(f"augmentation variants must be >= 0, got {variants}")
        self.dataset = dataset
        self.keyframe_interval, self.policy, self.seed = keyframe_interval, policy, seed
        self.augment, self.crop_hw, self.scale_range, self.jitter = augment, crop_hw, scale_range, jitter
        self.variants = variants
        self.cache = PairCache(cache) if isinstance(cache, str) else cache
        self.crf, self.preset, self.pair_frames, self.codec = crf, preset, frames, codec
        self.epoch = 0
        self.frames = tuple(f for f in dataset.frames if f.index >= keyframe_interval - 1)
        if not self.frames:
            raise InputError(f"{dataset.name} ({dataset.split}): no labelled frame has {keyframe_interval - 1} frames before it")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def variant(self) -> int:
        """Which of the V forms the items take in the current epoch (the epoch itself when V = 0)."""
        return self.epoch % self.variants if self.variants else self.epoch

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.variant, index])

    def _draw_distance(self, rng: np.random.Generator) -> int:
        return self.keyframe_interval - 1 if self.policy == "official" else int(rng.integers(1, self.keyframe_interval))

    def distance_of(self, index: int) -> int:
        """The keyframe distance item `index` has in the current epoch (without making the pair)."""
        return self._draw_distance(self._rng(index))

    def pair(self, index: int) -> Pair:
        """Item `index` as a (possibly augmented) Pair."""
        rng = self._rng(index)
        frame = self.frames[index]
        distance = self._draw_distance(rng)  # drawn first: distance_of repeats it
        if self.cache is not None:
            pair = self.cache.get(self.dataset, frame, distance, crf=self.crf, preset=self.preset, frames=self.pair_frames,
                                  codec=self.codec)  # fmt: skip
        else:
            pair = make_pair(self.dataset, frame, distance, crf=self.crf, preset=self.preset, frames=self.pair_frames,
                             codec=self.codec)  # fmt: skip
        if self.augment:
            pair = augment_pair(
                pair, rng, crop_hw=self.crop_hw, scale_range=self.scale_range, jitter=self.jitter, keep_size=True
            )
        elif self.crop_hw is not None:
            pair = augment_pair(pair, rng, crop_hw=self.crop_hw, scale_range=(1.0, 1.0), flip=False)
        return pair

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        pair = self.pair(index)
        return {
            "key": torch.from_numpy(np.ascontiguousarray(pair.key_rgb.transpose(2, 0, 1))),
            "cur": torch.from_numpy(np.ascontiguousarray(pair.rgb.transpose(2, 0, 1))),
            "flow": torch.from_numpy(np.ascontiguousarray(pair.flow, dtype=np.float32)),
            "labels": torch.from_numpy(pair.labels.astype(np.int64)),
            "distance": pair.distance,
            "index": index,
            "variant": self.variant,
        }
