"""The official AR-Seg evaluation protocol (reference/OFFICIAL.md, "Evaluation").

For each keyframe distance d = 0..L-1 and each labelled frame of the split, the pair made by
`make_pair(dataset, frame, d)` (the frames [index - d, index] encoded and decoded, bitstream flow back to
the keyframe) is segmented in each mode:

- `hr`: the HR network on the decoded current frame.
- `lr`: the plain LR network (no CReFF) on the current frame downscaled by s, when the weights hold one
        (lr_kind "lr-network", as the official LR checkpoints); else the HR network on the downscaled
        frame (lr_kind "hr-downscaled").
- `ar`: the HR network on the decoded keyframe, then the LR branch on the downscaled current frame with
        the keyframe feature warped along the flow and fused by CReFF; d = 0 is the HR network alone
        (the same logits as `hr`).
- `lr_trained` (with `lr_model`): a separately trained plain LR network (`arseg train --phase lr`, the
        paper's LR row) on the current frame downscaled by its own scale.

Logits are upsampled (bilinear, align_corners=True) to the label size and argmax taken; one confusion
matrix per (mode, d); mIoU_d under the class rule; the reported mIoU is the mean over d.

Frames: the same frames for every d, those with at least L-1 frames before them in their video (so
that each has a keyframe at every distance); `limit` keeps the first N of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from arseg_cli.data.pairs import Pair, make_pair
from arseg_cli.data.records import Dataset, LabelledFrame
from arseg_cli.errors import InputError, OptionsError
from arseg_cli.evaluate.metrics import ConfusionMatrix
from arseg_cli.frame_step import FrameStep
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.resize import scores_to_labels
from arseg_cli.scale_interval import check_keyframe_interval, check_scale

MODES = ("hr", "lr", "ar")
#: The separately trained LR network's row (`lr_model`), beside the three modes of the weights.
LR_TRAINED = "lr_trained"
#: Batches of pairs made ahead of the networks when pairs are made in threads.
PREFETCH = 2
LR_NETWORK = "lr-network"
HR_DOWNSCALED = "hr-downscaled"

PairMaker = Callable[[Dataset, LabelledFrame, int], Pair]
OnPair = Callable[[int, int], None]


@dataclass(frozen=True)
class ClassRule:
    """Which classes mIoU averages over. `ignored_target`: a class whose target pixels are ignored
    (CamVid 11: Void), or None."""

    name: str
    description: str
    counted: tuple[int, ...]
    ignored_target: int | None = None


def class_rule(classes: Sequence[str], count: int | None = None) -> ClassRule:
    """The rule for a model's `classes`. count None or len(classes): every class counts (CamVid: 12 with
    Void, as the official figures). count len(classes) - 1: the Void class is left out and its target
    pixels ignored (the common CamVid 11); needs a class named 'void'."""
    total = len(classes)
    if count is None or count == total:
        void_note = " (Void counted, as the official figures)" if _void_index(classes) is not None else ""
        return ClassRule(f"all-{total}", f"mean over all {total} classes{void_note}", tuple(range(total)))
    void = _void_index(classes)
    if count == total - 1 and void is not None:
        counted = tuple(i for i in range(total) if i != void)
        return ClassRule(f"no-void-{count}", f"mean over {count} classes; Void pixels ignored, Void left out",
                         counted, void)  # fmt: skip
    raise OptionsError(f"`classes` {count}: the model has {total} classes"
                       + (f"; use {total} or {total - 1} (without Void)" if void is not None else f"; use {total}"))  # fmt: skip


def _void_index(classes: Sequence[str]) -> int | None:
    lowered = [c.lower() for c in classes]
    return lowered.index("void") if "void" in lowered else None


@dataclass
class ModeResult:
    """One mode's confusion matrices, one per distance d (index = d)."""

    per_d: list[ConfusionMatrix]

    def miou_per_d(self, rule: ClassRule) -> list[float]:
        return [m.miou(rule.counted) for m in self.per_d]

    def miou(self, rule: ClassRule) -> float:
        """The reported figure: the mean over d of mIoU_d, over the d that have frames (all of them in
        the per-d pair protocol; a stream scheduled by I-frames may leave some d without frames)."""
        values = [m.miou(rule.counted) for m in self.per_d if m.matrix.any()]
        return float(np.mean(values)) if values else float("nan")

    def iou_per_class(self, rule: ClassRule) -> dict[int, float]:
        """Per counted class: its IoU averaged over d (over the d where it has one; NaN if none)."""
        table = np.array([m.iou() for m in self.per_d])
        result = {}
        for c in rule.counted:
            column = table[:, c][~np.isnan(table[:, c])]
            result[c] = float(column.mean()) if column.size else float("nan")
        return result


@dataclass
class EvalResult:
    modes: dict[str, ModeResult]
    rule: ClassRule
    classes: tuple[str, ...]
    lr_kind: str
    scale: float
    keyframe_interval: int
    frames: int
    names: list[str] = field(default_factory=list)


def lr_kind_of(model: ARSeg) -> str:
    """LR_NETWORK when the model's LR branch is a plain LR network (no CReFF), else HR_DOWNSCALED."""
    return LR_NETWORK if model.lr is not None and not model.has_creff else HR_DOWNSCALED


def check_modes(model: ARSeg, modes: Sequence[str]) -> None:
    """Raise OptionsError for modes the model cannot run (unknown, or missing branches)."""
    for mode in modes:
        if mode not in MODES:
            raise OptionsError(f"unknown mode {mode!r}: use {', '.join(MODES)}")
    if model.hr is None and any(m in modes for m in ("hr", "ar")):
        raise OptionsError("the weights hold no HR network: only `modes` lr can be evaluated")
    if "ar" in modes and not model.has_creff:
        raise OptionsError("the weights hold no AR branch (LR network with CReFF): drop 'ar' from `modes`")


def check_lr_model(lr_model: ARSeg, model: ARSeg) -> None:
    """OptionsError unless `lr_model` is a plain LR network (phase lr's output) for `model`'s classes."""
    if lr_model.lr is None or lr_model.has_creff or lr_model.hr is not None:
        raise OptionsError("`lr_model` must hold a plain LR network (`arseg train --phase lr`), not HR or AR weights")
    if tuple(lr_model.meta.classes) != tuple(model.meta.classes):
        raise OptionsError(f"`lr_model` has {lr_model.num_classes} classes, the weights have {model.num_classes}")


def available_modes(model: ARSeg) -> tuple[str, ...]:
    """The modes the model can run, in MODES order."""
    return tuple(m for m in MODES if not ((m in ("hr", "ar") and model.hr is None) or (m == "ar" and not model.has_creff)))


def check_classes(model: ARSeg, dataset: Dataset) -> None:
    """InputError when the data set's classes are not the model's."""
    if [c.lower() for c in dataset.classes] != [c.lower() for c in model.meta.classes]:
        raise InputError(f"{dataset.name}'s {len(dataset.classes)} classes are not the model's {model.num_classes} "
                         f"({', '.join(dataset.classes[:3])}, ... vs {', '.join(model.meta.classes[:3])}, ...)")  # fmt: skip


def target_ids(labels: np.ndarray, rule: ClassRule, ignore_index: int) -> np.ndarray:
    """The labels scored under `rule`: its ignored class (CamVid 11's Void) becomes `ignore_index`."""
    if rule.ignored_target is None:
        return labels
    return np.where(labels == rule.ignored_target, ignore_index, labels)


def eligible_frames(dataset: Dataset, keyframe_interval: int, limit: int | None = None) -> list[LabelledFrame]:
    """The labelled frames with at least keyframe_interval - 1 frames before them; the first `limit` of them."""
    frames = [f for f in dataset.frames if f.index >= keyframe_interval - 1]
    if not frames:
        raise InputError(f"{dataset.name} ({dataset.split}): no labelled frame has {keyframe_interval - 1} frames before it "
                         f"(needed for keyframe distances up to L-1 = {keyframe_interval - 1}); lower the keyframe interval L")  # fmt: skip
    return frames[:limit] if limit is not None else frames


def evaluate(
    model: ARSeg,
    dataset: Dataset,
    *,
    modes: Sequence[str] = MODES,
    scale: float = 0.5,
    keyframe_interval: int = 12,
    rule: ClassRule | None = None,
    limit: int | None = None,
    batch: int = 4,
    workers: int = 1,
    pairs: PairMaker = make_pair,
    on_pair: OnPair | None = None,
    lr_model: ARSeg | None = None,
) -> EvalResult:
    """Run the protocol (module docstring) and return the confusion matrices per mode and d.

    model: in eval mode; runs on its own device. batch: frames of one d run through the networks
    together (those of one size). workers: threads making the pairs of the next batches while the
    networks run (0: made inline). pairs: where pairs come from (make_pair, or a PairCache's `get`).
    on_pair(done, total) as the (frame, d) pairs are done. lr_model: a separately trained plain LR
    network (phase lr), evaluated on the same frames as mode LR_TRAINED at its own scale.
    """
    if batch < 1 or workers < 0:
        raise OptionsError(f"`batch` must be >= 1 and `workers` >= 0, got {batch} and {workers}")
    check_keyframe_interval(keyframe_interval)
    check_scale(scale)
    check_modes(model, modes)
    check_classes(model, dataset)
    if lr_model is not None:
        check_lr_model(lr_model, model)
        modes = (*modes, LR_TRAINED)
    rule = rule or class_rule(model.meta.classes)
    frames = eligible_frames(dataset, keyframe_interval, limit)
    results = {m: ModeResult([ConfusionMatrix(model.num_classes, dataset.ignore_index) for _ in range(keyframe_interval)])
               for m in modes}  # fmt: skip
    runner = _Runner(model, scale, lr_model)
    total, done = keyframe_interval * len(frames), 0
    jobs = [(d, frames[start : start + batch]) for d in range(keyframe_interval) for start in range(0, len(frames), batch)]
    with torch.inference_mode():
        for d, chunk in _made_pairs(dataset, jobs, pairs, workers):
            for group in _same_size(chunk):
                predictions = runner.predict(group, modes)
                for i, pair in enumerate(group):
                    target = target_ids(pair.labels, rule, dataset.ignore_index)
                    for mode, pred in predictions.items():
                        results[mode].per_d[d].update(pred[i], target)
            done += len(chunk)
            if on_pair is not None:
                on_pair(done, total)
    return EvalResult(results, rule, tuple(model.meta.classes), lr_kind_of(model), scale, keyframe_interval, len(frames),
                      [f.name for f in frames])  # fmt: skip


def _made_pairs(
    dataset: Dataset, jobs: list[tuple[int, list[LabelledFrame]]], pairs: PairMaker, workers: int
) -> Iterator[tuple[int, list[Pair]]]:
    """(d, the pairs of a batch of frames at d) for each job, in order; with workers, the pairs of the
    next PREFETCH batches are made in threads meanwhile (overlapping with the networks as far as the
    encoder, decoder and numpy release the GIL)."""
    if workers == 0:
        for d, frames in jobs:
            yield d, [pairs(dataset, frame, d) for frame in frames]
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[tuple[int, list[Future[Pair]]]] = deque()
        for d, frames in jobs:
            pending.append((d, [pool.submit(pairs, dataset, frame, d) for frame in frames]))
            if len(pending) > PREFETCH:
                done_d, futures = pending.popleft()
                yield done_d, [f.result() for f in futures]
        while pending:
            done_d, futures = pending.popleft()
            yield done_d, [f.result() for f in futures]


def _same_size(pairs: list[Pair]) -> list[list[Pair]]:
    """The pairs grouped by frame size, in first-seen order (a batch needs one size)."""
    groups: dict[tuple[int, ...], list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.rgb.shape, []).append(pair)
    return list(groups.values())


class _Runner:
    """The forward passes of each mode on a batch of pairs (through the shared FrameStep); the HR
    logits of a frame are computed once."""

    def __init__(self, model: ARSeg, scale: float, lr_model: ARSeg | None = None) -> None:
        self.model = model
        self.step = FrameStep(model, scale)
        self.lr_kind = lr_kind_of(model)
        self.lr_trained = FrameStep(lr_model) if lr_model is not None else None

    def predict(self, pairs: list[Pair], modes: Sequence[str]) -> dict[str, np.ndarray]:
        """(N, H, W) int64 class ids per mode, at the label size, for N pairs of one frame size and one d."""
        step = self.step
        distance = pairs[0].distance
        size = (int(pairs[0].labels.shape[0]), int(pairs[0].labels.shape[1]))
        x = step.inputs(np.stack([p.rgb for p in pairs]))
        out: dict[str, Tensor] = {}
        if "hr" in modes or ("ar" in modes and distance == 0):
            out["hr"] = step.key(x)[0]
        if "lr" in modes:
            out["lr"] = step.lowres(x) if self.lr_kind == LR_NETWORK else step.hr_on_lowres(x)
        if LR_TRAINED in modes and self.lr_trained is not None:
            out[LR_TRAINED] = self.lr_trained.lowres(self.lr_trained.inputs(np.stack([p.rgb for p in pairs])))
        if "ar" in modes:
            if distance == 0:
                out["ar"] = out["hr"]
            else:
                feat = step.key(step.inputs(np.stack([p.key_rgb for p in pairs])))[1]
                out["ar"] = step.nonkey(x, feat, np.stack([p.flow for p in pairs]).astype(np.float32, copy=False))
        return {m: scores_to_labels(out[m], size).cpu().numpy() for m in modes}
