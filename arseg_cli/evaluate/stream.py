"""The stream protocol of `arseg eval --source stream`: the pipeline itself, on each clip's own video.

Each video of the split is segmented by `arseg_cli.pipeline.segment_frames` exactly as `arseg segment`
does it (its own bitstream, its own motion vectors, keyframes by the policy), and every labelled frame is
scored at its distance d to the keyframe the scheduler gave it. One confusion matrix per d, mIoU_d, and the
mean over the d that occur. With the `fixed` policy on SynthStreet clips (H.264, an I-frame every L of the
generator, no B-frames) every d = 0..L-1 occurs when the clips are at least L frames long.

The mode is 'ar' (HR keyframes, LR + CReFF between), or 'hr' when s = 1 or L = 1 (per-frame HR).
"""

from __future__ import annotations

from collections.abc import Callable

from arseg_cli.data.records import Dataset, LabelledFrame
from arseg_cli.errors import InputError
from arseg_cli.evaluate.metrics import ConfusionMatrix
from arseg_cli.evaluate.protocol import ClassRule, EvalResult, ModeResult, check_classes, class_rule, lr_kind_of, target_ids
from arseg_cli.model.arseg import ARSeg
from arseg_cli.pipeline import Settings, segment_frames
from arseg_cli.video.decode import decode_frames

OnFrame = Callable[[int, int], None]


def clips_of(dataset: Dataset) -> dict[str, dict[int, LabelledFrame]]:
    """The data set's labelled frames by video path, then by frame index, in data set order."""
    clips: dict[str, dict[int, LabelledFrame]] = {}
    for frame in dataset.frames:
        path = getattr(frame.source, "path", None)
        if path is None or not path.is_file():
            raise InputError(f"{dataset.name}: the stream protocol needs each clip's video file; {frame.name} has none")
        clips.setdefault(str(path), {})[frame.index] = frame
    return clips


def evaluate_stream(
    model: ARSeg,
    dataset: Dataset,
    settings: Settings = Settings(),
    *,
    rule: ClassRule | None = None,
    on_frame: OnFrame | None = None,
) -> EvalResult:
    """Segment every clip of `dataset` with the pipeline and score its labelled frames per distance d."""
    check_classes(model, dataset)
    rule = rule or class_rule(model.meta.classes)
    scale, keyframe_interval = settings.resolve(model)
    mode = "ar" if keyframe_interval > 1 else "hr"
    result = ModeResult([ConfusionMatrix(model.num_classes, dataset.ignore_index) for _ in range(keyframe_interval)])
    clips = clips_of(dataset)
    total = sum(len(frames) for frames in clips.values())
    done, names = 0, []
    for path, labelled in clips.items():
        last = max(labelled) + 1
        for segmented in segment_frames(decode_frames(path, end=last), model, settings):
            frame = labelled.get(segmented.index)
            if frame is None:
                continue
            target = target_ids(dataset.read_labels(frame), rule, dataset.ignore_index)
            result.per_d[segmented.distance].update(segmented.labels, target)
            names.append(frame.name)
            done += 1
            if on_frame is not None:
                on_frame(done, total)
    if done != total:
        raise InputError(f"{dataset.name}: {total - done} labelled frame(s) are not in their videos")
    return EvalResult({mode: result}, rule, tuple(model.meta.classes), lr_kind_of(model), scale, keyframe_interval, done, names)


__all__ = ["clips_of", "evaluate_stream"]
