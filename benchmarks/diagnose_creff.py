"""How much does CReFF use the keyframe's HR feature? Prints one JSON object on stdout.

On the labelled frames of a split (one pair each, keyframe distance d drawn uniformly from 1..L-1,
seeded), one confusion matrix per way of making the frame's labels:

- `hr`: the HR network on the frame;
- `lr_branch`: the LR branch alone on the downscaled frame (no fusion);
- `ar`: LR branch + CReFF with the keyframe's feature and the bitstream flow (what inference does);
- `ar_zero_flow`: the same with the flow set to zero (what motion compensation is worth);
- `ar_own_feature`: CReFF given the frame's *own* HR feature and zero flow: the best case, a perfectly
  warped keyframe. If this is not clearly above `lr_branch`, CReFF has not learnt to use HR features.
- `warp_only`: no LR branch at all: the shared classifier on the keyframe's HR feature warped with the
  bitstream flow (CReFF's warp). What motion compensation alone gives; a fusion that scores below it
  throws away part of what the warped keyframe knows.

Also the mean |weight| of CReFF's value convolution and the attention's mean weight on the centre of
its window for `ar_own_feature` (1/49 = 0.020 for uniform attention), and the attention's entropy over
the window as a fraction of ln 49 (1 = uniform, 0 = one position). Usage:
`python benchmarks/diagnose_creff.py DATA --weights W [--split test] [--cache DIR] [-L 12] [--limit N]`.
"""

from __future__ import annotations

import json
import math

import torch

from arseg_cli.data import PairDataset, open_dataset
from arseg_cli.errors import ArsegError
from arseg_cli.evaluate.metrics import ConfusionMatrix
from arseg_cli.model import load_weights
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.creff import CReFF, resize_bilinear, warp_feature, window_logits

from _diagnosis_args import diagnosis_parser

MODES = ("hr", "lr_branch", "ar", "ar_zero_flow", "ar_own_feature", "warp_only")


def attention_statistics(creff: CReFF, lr_feat: torch.Tensor, key_feat: torch.Tensor) -> tuple[float, float]:
    """When CReFF fuses key_feat at zero flow: the mean softmax weight of the window's centre, and the
    mean entropy of the attention over the window divided by its maximum ln(window^2) (1 = uniform,
    0 = all weight on one position)."""
    size = (key_feat.shape[-2], key_feat.shape[-1])
    up = resize_bilinear(lr_feat, size, align_corners=True)
    no_motion = key_feat.new_zeros(key_feat.shape[0], 2, *size)
    q, k = creff.lr_query_conv(up), creff.hr_key_conv(warp_feature(key_feat, no_motion, creff.warp))
    weights = window_logits(q, k, creff.window).softmax(1)
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(1) / math.log(creff.window**2)
    return float(weights[:, creff.window**2 // 2].mean()), float(entropy.mean())


def diagnose(model: ARSeg, pairs: PairDataset, limit: int | None) -> dict[str, object]:
    matrices = {mode: ConfusionMatrix(model.num_classes) for mode in MODES}
    net = model.lr
    if net is None or not model.has_creff or model.hr is None:
        raise SystemExit("error: the weights need an HR branch and an LR branch with CReFF")
    centre: list[float] = []
    entropy: list[float] = []
    count = len(pairs) if limit is None else min(limit, len(pairs))
    if count < 1:
        raise SystemExit("error: no labelled frames to diagnose (empty split, or --limit below 1)")
    with torch.inference_mode():
        for index in range(count):
            item = pairs[index]
            x = model.normalize(item["cur"].permute(1, 2, 0).numpy())
            x_key = model.normalize(item["key"].permute(1, 2, 0).numpy())
            flow = item["flow"][None].to(model.device)
            labels = item["labels"].numpy()
            size = (x.shape[-2], x.shape[-1])
            logits_hr, own_feat = model.keyframe(x)
            _, key_feat = model.keyframe(x_key)
            x_lr = model.downscale(x)
            lr_feat = net.features(x_lr)
            outputs = {
                "hr": logits_hr,
                "lr_branch": model.lowres(x_lr, size),
                "ar": model.nonkeyframe(x_lr, key_feat, flow),
                "ar_zero_flow": model.nonkeyframe(x_lr, key_feat, torch.zeros_like(flow)),
                "ar_own_feature": model.nonkeyframe(x_lr, own_feat, torch.zeros_like(flow)),
                "warp_only": net.to_image_size(net.classify(warp_feature(key_feat, flow, net.fuse_attention.warp)), size),
            }
            for mode, logits in outputs.items():
                matrices[mode].update(logits.argmax(1)[0].cpu().numpy(), labels)
            centre_weight, normalised_entropy = attention_statistics(net.fuse_attention, lr_feat, own_feat)
            centre.append(centre_weight)
            entropy.append(normalised_entropy)
    value = net.fuse_attention.hr_value_conv.weight.detach()
    return {
        "frames": count,
        "miou": {mode: round(matrices[mode].miou(), 6) for mode in MODES},
        "value_conv_mean_abs_weight": round(float(value.abs().mean()), 6),
        "attention_centre_weight": round(sum(centre) / len(centre), 6),
        "attention_entropy": round(sum(entropy) / len(entropy), 6),
    }


def main() -> None:
    parser = diagnosis_parser(__doc__.splitlines()[0])
    parser.add_argument("-L", "--keyint", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        model = load_weights(args.weights).float().eval()
        dataset = open_dataset(args.data, split=args.split)
        pairs = PairDataset(dataset, keyframe_interval=args.keyint, policy="uniform", seed=args.seed, cache=str(args.cache) if args.cache else None)
        report = diagnose(model, pairs, args.limit)
    except ArsegError as error:
        raise SystemExit(f"error: {error}") from None
    report.update(weights=str(args.weights), data=str(args.data), split=args.split, keyint=args.keyint, seed=args.seed)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
