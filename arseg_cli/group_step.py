"""The model on one keyframe group: the HR network on the keyframe, then the LR branch + CReFF on the
group's other frames, batched in chunks of at most `batch` frames (memory bounded by the chunk).

The keyframe feature is kept between calls, so a call may also hold non-keyframes only (the low-latency
mode hands on every frame alone). While resuming, the frames the stopped run wrote take their labels
from its PNGs and the model runs again from the keyframe at or before the first missing frame (its HR
pass only), so every frame gets the labels an uninterrupted run gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from arseg_cli.errors import OptionsError
from arseg_cli.frame_step import FrameStep
from arseg_cli.graphed_step import nonkey_call
from arseg_cli.groups import ScheduledFrame
from arseg_cli.resume import Resume

#: Non-keyframes per model call in a group: a group of L = 12 runs in 3 calls of 4 and 1 of 3 frames.
DEFAULT_BATCH = 4


class GroupStep:
    """Labels for the frames of keyframe groups, called group after group in display order.

    keep_feature: False when no frame is ever fused (L = 1): the keyframe feature is dropped at once.
    batch: most non-keyframes per model call. cuda_graphs: replay the non-keyframe step from CUDA graphs
    where possible (`graphed_step.py`).
    """

    def __init__(self, step: FrameStep, *, keep_feature: bool, batch: int = DEFAULT_BATCH, resume: Resume | None = None,
                 cuda_graphs: bool = False) -> None:  # fmt: skip
        if batch < 1:
            raise OptionsError(f"the group batch must be >= 1 frame, got {batch}")
        self.step, self.keep_feature, self.batch, self.resume = step, keep_feature, batch, resume
        self._nonkey_labels = nonkey_call(step, cuda_graphs, call=step.nonkey_labels)
        self._feat: torch.Tensor | None = None
        self._pending_key: np.ndarray | None = None  # while resuming: the latest keyframe's input, its feature not yet computed

    def labels(self, group: Sequence[ScheduledFrame]) -> list[np.ndarray]:
        """(H, W) uint8 labels of each frame of `group`, in its order. Call inside torch.inference_mode()."""
        out: list[np.ndarray | None] = [None] * len(group)
        to_run = []
        for position, item in enumerate(group):
            if self.resume is not None and self.resume.has(item.frame.index):
                out[position] = self.resume.labels(item.frame.index, item.size)
                if item.decision.is_key:
                    self._pending_key, self._feat = (item.frame.rgb if self.keep_feature else None), None
            else:
                to_run.append(position)
        if to_run and group[to_run[0]].decision.is_key:
            key = group[to_run[0]]
            labels, feat = self.step.key_labels(self.step.inputs(key.frame.rgb))
            out[to_run.pop(0)] = _to_numpy(labels, key.size)[0]
            self._feat, self._pending_key = (feat if self.keep_feature else None), None
        if to_run and self._feat is None and self._pending_key is not None:  # the first frame run after a resume
            self._feat = self.step.key(self.step.inputs(self._pending_key))[1]
            self._pending_key = None
        for first in range(0, len(to_run), self.batch):
            chunk = to_run[first : first + self.batch]
            for position, labels in zip(chunk, self._nonkeys([group[p] for p in chunk])):
                out[position] = labels
        assert all(labels is not None for labels in out)
        return out  # type: ignore[return-value]

    def _nonkeys(self, items: list[ScheduledFrame]) -> list[np.ndarray]:
        assert self._feat is not None, "a non-keyframe before any keyframe"
        rgb = items[0].frame.rgb[None] if len(items) == 1 else np.stack([item.frame.rgb for item in items])
        flows = np.stack([item.flow_px for item in items])  # type: ignore[misc]
        feat = self._feat.expand(len(items), -1, -1, -1) if len(items) > 1 else self._feat
        labels = self._nonkey_labels(self.step.inputs(rgb), feat, flows)
        return list(_to_numpy(labels, items[0].size))


def _to_numpy(labels: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    assert tuple(labels.shape[-2:]) == tuple(size), "the model's labels are at the frame's size"
    return labels.cpu().numpy()


__all__ = ["DEFAULT_BATCH", "GroupStep"]
