"""Where one frame's model time goes: CPU milliseconds per stage of a keyframe and a non-keyframe;
prints one JSON object on stdout.

720x960, AR 0.5x, random weights (seed 0), inference mode, the folded channels-last copies that
`arseg segment` runs. Stages: normalisation of the RGB frame; HR: features, classifier, labels; NK:
downscale, LR features, CReFF, classifier, labels; then each whole frame as the pipeline asks for it
(`keyframe_labels`, `nonkeyframe_labels`). Labels are what `arseg segment` writes: a checkout without
`SegNet.labels` (before issue 19's labels) takes the argmax of `to_image_size`'s scores, as it did.
CPU time (time.process_time) of one thread by default: on a machine other jobs load, steadier than wall
time; `--threads N --clock wall` measures what N torch threads give on a quiet machine.
`model_ratio` = HR / ((HR + (L - 1) NK) / L), L = 12: the speed-up of AR 0.5x over per-frame HR that
the model alone allows. Run it from the checkout to measure (`python -m`/`-c` import from the current
directory): `python /path/to/bench_frame_stages.py --arch camvid-bise18 --repeats 5`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.getcwd())  # the checkout this runs in, not the script's

import numpy as np  # noqa: E402
import torch  # noqa: E402

from arseg_cli.model import build_arseg  # noqa: E402
from arseg_cli.model.architecture import CAMVID_MEAN, CAMVID_STD  # noqa: E402
from arseg_cli.model.meta import ModelMeta  # noqa: E402
from arseg_cli.model.resize import downscale  # noqa: E402
from arseg_cli.palettes import CAMVID  # noqa: E402

SIZE, L = (720, 960), 12


def labels_of(net: Any, scores: torch.Tensor) -> torch.Tensor:
    if hasattr(net, "labels"):
        return net.labels(scores, SIZE)
    return net.to_image_size(scores, SIZE).argmax(1).to(torch.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="camvid-bise18")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="CPU time (default) or wall time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.manual_seed(0)
    meta = ModelMeta(args.arch, CAMVID.classes, CAMVID.colors, CAMVID_MEAN, CAMVID_STD, scale=0.5, keyframe_interval=L)
    model = build_arseg(meta).eval().optimize_for_inference()
    rgb = np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    flow = torch.randn(1, 2, *SIZE)
    times: dict[str, list[float]] = {}

    def timed(name: str, call: Callable[[], Any]) -> Any:
        start = clock()
        result = call()
        times.setdefault(name, []).append(clock() - start)
        return result

    def whole_key() -> Any:
        x = model.normalize(rgb)
        if hasattr(model, "keyframe_labels"):
            return model.keyframe_labels(x)
        return model.keyframe(x)[0].argmax(1).to(torch.uint8)

    def whole_nonkey(feat: torch.Tensor) -> Any:
        x_lr = downscale(model.normalize(rgb), 0.5)
        if hasattr(model, "nonkeyframe_labels"):
            return model.nonkeyframe_labels(x_lr, feat, flow)
        return model.nonkeyframe(x_lr, feat, flow).argmax(1).to(torch.uint8)

    with torch.inference_mode():
        hr, lr = model._branch("hr"), model._branch("lr")
        for repeat in range(args.repeats + 1):  # the first round warms up
            x = timed("normalise", lambda: model.normalize(rgb))
            feat = timed("HR: features", lambda: hr.features(x))
            scores = timed("HR: classifier", lambda: hr.classify(feat))
            timed("HR: labels", lambda: labels_of(hr, scores))
            x_lr = timed("NK: downscale", lambda: downscale(x, 0.5))
            lr_feat = timed("NK: LR features", lambda: lr.features(x_lr))
            fused = timed("NK: CReFF", lambda: lr.fuse(lr_feat, feat, flow))
            lr_scores = timed("NK: classifier", lambda: lr.classify(fused))
            timed("NK: labels", lambda: labels_of(lr, lr_scores))
            timed("keyframe", whole_key)
            timed("non-keyframe", lambda: whole_nonkey(feat))
            if repeat == 0:
                times.clear()
    ms = {name: round(statistics.median(values) * 1e3, 1) for name, values in times.items()}
    key, nonkey = ms["keyframe"], ms["non-keyframe"]
    print(json.dumps({"arch": args.arch, "checkout": os.getcwd(), f"{args.clock}_ms": ms, "repeats": args.repeats,
                      "threads": args.threads,
                      "model_ratio": round(key / ((key + (L - 1) * nonkey) / L), 3), "load_average": os.getloadavg(),
                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}))  # fmt: skip


if __name__ == "__main__":
    main()
