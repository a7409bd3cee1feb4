"""What CReFF's fusion adds at each keyframe distance d. Prints one JSON object on stdout.

For each d given, on the labelled frames of a split (the `arseg eval` pairs: the keyframe d frames
earlier, bitstream motion), the mIoU (%, the eval class rule) of:

- `hr`: the HR network on the frame (the ceiling AR is measured against);
- `lr_branch`: the AR network's LR branch alone on the downscaled frame (no keyframe);
- `warp_only`: the shared classifier on the keyframe's HR feature warped with the bitstream flow,
  no LR branch: what the motion vectors alone carry over d frames;
- `ar`: the fusion as inference runs it;
- `label_warp`: no network: the keyframe's ground-truth labels warped with the same flow (nearest
  pixel): how much of the scene any warp of the keyframe can carry over d frames (what moved out of
  view, what came into view, what block motion cannot follow); SynthStreet sets only (every frame
  labelled), null elsewhere;
- `ar_value_xG` for each `--value-gain G`: the fusion with CReFF's value (the attention-weighted
  keyframe term) multiplied by G. The classifier is one 1x1 convolution, so this weighs the keyframe
  term's logits against the LR branch's: G > 1 trusts the keyframe more.

`--flow exact` (SynthStreet sets only) replaces the bitstream flow with the exact motion, rendered
again from the set's manifest (arseg_cli/synth/truth.py), in `warp_only`, `ar`, the gains and
`label_warp`, and reports per d the share of pixels whose point is visible in the keyframe: the
columns then say what perfect motion would give.

Where `ar` stays below `warp_only` at small d, the fusion throws away part of what the aligned
keyframe feature knows; where `warp_only` falls far below `hr` at large d, no fusion of the warped
feature can close the gap alone. Usage:
`python benchmarks/fusion_by_distance.py DATA --weights W [--split test] [--cache DIR] [--distances 1,6,11]
[--value-gain 2] [--limit N] [--flow bitstream|exact]`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from arseg_cli.data import Dataset, LabelledFrame, open_dataset
from arseg_cli.data.pairs import Pair, PairCache, make_pair
from arseg_cli.errors import ArsegError
from arseg_cli.evaluate import protocol
from arseg_cli.evaluate.metrics import ConfusionMatrix
from arseg_cli.model import load_weights
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.creff import warp_feature
from arseg_cli.synth.truth import SynthTruth

from _diagnosis_args import diagnosis_parser


def _scaled_value(model: ARSeg, gain: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Multiply CReFF's value convolution by `gain` in place; returns the original weight and bias."""
    value = model.lr.fuse_attention.hr_value_conv  # type: ignore[union-attr]
    original = (value.weight.detach().clone(), value.bias.detach().clone())
    with torch.no_grad():
        value.weight.mul_(gain)
        value.bias.mul_(gain)
    return original


def _restore_value(model: ARSeg, original: tuple[torch.Tensor, torch.Tensor]) -> None:
    value = model.lr.fuse_attention.hr_value_conv  # type: ignore[union-attr]
    with torch.no_grad():
        value.weight.copy_(original[0])
        value.bias.copy_(original[1])


#: (frame, its pair at distance d) -> (backward flow (2, H, W) float32 to the keyframe, visible (H, W) bool or None)
FlowSource = Callable[[LabelledFrame, Pair], tuple[np.ndarray, "np.ndarray | None"]]


def bitstream_flow(frame: LabelledFrame, pair: Pair) -> tuple[np.ndarray, None]:
    return pair.flow, None


def exact_flow(dataset: Dataset) -> FlowSource:
    truth = SynthTruth(dataset)
    return lambda frame, pair: truth.flow(frame, frame.index - pair.distance)


def warp_labels(key_labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(H, W) labels of the keyframe moved to the current frame: pixel p takes the label at the nearest
    pixel to p + flow[:, p]; points outside the frame read the nearest border pixel."""
    height, width = key_labels.shape
    ys, xs = np.mgrid[0:height, 0:width]
    source_x = np.clip(np.rint(xs + flow[0]), 0, width - 1).astype(np.intp)
    source_y = np.clip(np.rint(ys + flow[1]), 0, height - 1).astype(np.intp)
    return key_labels[source_y, source_x]


def _keyframe_labels(dataset: Dataset, frame: LabelledFrame, distance: int, scored_as: int) -> np.ndarray | None:
    """The keyframe's labels where it has a label file named as SynthStreet names them (every SynthStreet
    frame is labelled; CamVid and Cityscapes label few frames: None), unlabelled pixels as class
    `scored_as` (a prediction must name a class)."""
    path = frame.labels.with_name(f"{frame.index - distance:06d}{frame.labels.suffix}")
    if dataset.layout != "synthstreet" or not path.is_file():
        return None
    labels = dataset.read_labels(LabelledFrame(frame.name, frame.source, frame.index - distance, path))
    return np.where(labels == dataset.ignore_index, scored_as, labels)


def fusion_by_distance(
    model: ARSeg, dataset: Dataset, distances: list[int], gains: list[float], pairs: Callable[[Dataset, LabelledFrame, int], Pair],
    limit: int | None, flows: FlowSource = bitstream_flow,
) -> dict[str, Any]:
    net = model.lr
    if net is None or not model.has_creff or model.hr is None:
        raise SystemExit("error: the weights need an HR branch and an LR branch with CReFF")
    rule = protocol.class_rule(model.meta.classes)
    frames = protocol.eligible_frames(dataset, model.meta.keyframe_interval, limit)
    if not frames:
        raise SystemExit("error: no labelled frames to score (empty split, or --limit below 1)")
    modes = ["hr", "lr_branch", "warp_only", "ar", *(f"ar_value_x{g:g}" for g in gains), "label_warp"]
    table: dict[int, dict[str, float]] = {}
    visible: dict[int, float] = {}
    with torch.inference_mode():
        for d in distances:
            matrices = {mode: ConfusionMatrix(model.num_classes, dataset.ignore_index) for mode in modes}
            shares, label_frames = [], 0
            for frame in frames:
                pair = pairs(dataset, frame, d)
                flow_px, seen = flows(frame, pair)
                if seen is not None:
                    shares.append(float(seen.mean()))
                x = model.normalize(pair.rgb)
                size = (x.shape[-2], x.shape[-1])
                _, key_feat = model.keyframe(model.normalize(pair.key_rgb))
                flow = torch.from_numpy(np.ascontiguousarray(flow_px, dtype=np.float32))[None].to(model.device)
                x_lr = model.downscale(x)
                outputs = {
                    "hr": model.keyframe(x)[0],
                    "lr_branch": model.lowres(x_lr, size),
                    "warp_only": net.to_image_size(net.classify(warp_feature(key_feat, flow, net.fuse_attention.warp)), size),
                    "ar": model.nonkeyframe(x_lr, key_feat, flow),
                }
                for gain in gains:
                    original = _scaled_value(model, gain)
                    outputs[f"ar_value_x{gain:g}"] = model.nonkeyframe(x_lr, key_feat, flow)
                    _restore_value(model, original)
                target = protocol.target_ids(pair.labels, rule, dataset.ignore_index)
                for mode, logits in outputs.items():
                    matrices[mode].update(logits.argmax(1)[0].cpu().numpy(), target)
                key_labels = _keyframe_labels(dataset, frame, d, scored_as=model.num_classes - 1)
                if key_labels is not None:
                    matrices["label_warp"].update(warp_labels(key_labels, flow_px), target)
                    label_frames += 1
            table[d] = {mode: round(100 * matrices[mode].miou(rule.counted), 2) for mode in modes}
            if shares:
                visible[d] = round(float(np.mean(shares)), 4)
            if label_frames < len(frames):  # a column over some of the frames would not compare with the others
                table[d]["label_warp"] = None  # type: ignore[assignment]
    mean = {mode: None if any(table[d][mode] is None for d in distances) else round(float(np.mean([table[d][mode] for d in distances])), 2)
            for mode in modes}  # fmt: skip
    report: dict[str, Any] = {"frames": len(frames), "distances": distances, "by_distance": table, "mean": mean}
    if visible:
        report["visible_share"] = visible
    return report


def main() -> None:
    parser = diagnosis_parser(__doc__.splitlines()[0])
    parser.add_argument("--distances", default="1,3,6,9,11")
    parser.add_argument("--value-gain", type=float, action="append", default=[])
    parser.add_argument("--flow", choices=("bitstream", "exact"), default="bitstream",
                        help="exact: the rendered motion of a SynthStreet set instead of the codec's vectors")
    args = parser.parse_args()
    try:
        try:
            distances = [int(d) for d in args.distances.split(",")]
        except ValueError:
            raise SystemExit(f"error: --distances takes whole numbers separated by commas, got {args.distances!r}") from None
        model = load_weights(args.weights).float().eval()
        if any(not 1 <= d < model.meta.keyframe_interval for d in distances):
            raise SystemExit(f"error: --distances must lie in 1..{model.meta.keyframe_interval - 1}")
        dataset = open_dataset(args.data, split=args.split)
        pairs = PairCache(args.cache).get if args.cache else make_pair
        flows = exact_flow(dataset) if args.flow == "exact" else bitstream_flow
        report = fusion_by_distance(model, dataset, distances, args.value_gain, partial(pairs, codec="h264"), args.limit, flows)
    except (ArsegError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    report.update(weights=str(args.weights), data=str(args.data), split=args.split, flow=args.flow)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
