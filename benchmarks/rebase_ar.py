"""AR weights moved onto another HR network, as a start for `arseg train --phase ar --ar-start`.

    python benchmarks/rebase_ar.py --ar AR.safetensors --hr HR.safetensors -o OUT.safetensors

OUT holds HR's network and AR's LR branch (its own layers, CReFF, the fusion gate when it has one), at
AR's scale; the classifier the branches share is HR's. With a shared LR backbone (`--lr-backbone
shared`) the LR branch then runs HR's backbone, which its other layers were not trained with: OUT is a
starting point for phase ar on HR (the run's `--hr`), not a finished model. Used for the HR network fine-tuned across scales (docs/TRAINING.md).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from arseg_cli.errors import ArsegError
from arseg_cli.model import build_arseg, load_weights, save_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ar", type=Path, required=True, help="AR weights: the LR branch, CReFF and gate to keep")
    parser.add_argument("--hr", type=Path, required=True, help="weights whose HR network replaces AR's")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--fp16", action="store_true", help="store float16")
    args = parser.parse_args(argv)
    try:
        return rebase(args.ar, args.hr, args.output, half=args.fp16)
    except ArsegError as error:  # a missing or damaged file, an existing output: one line
        print(f"error: {error}", file=sys.stderr)
        return 1


def rebase(ar_path: Path, hr_path: Path, output: Path, *, half: bool) -> int:
    ar, hr = load_weights(ar_path), load_weights(hr_path)
    if ar.lr is None or not ar.has_creff or hr.hr is None:
        print(f"error: {ar_path} needs an LR branch with CReFF and {hr_path} an HR network", file=sys.stderr)
        return 1
    if ar.arch != hr.arch or ar.meta.classes != hr.meta.classes:
        print(f"error: {ar_path} and {hr_path} differ in architecture or classes", file=sys.stderr)
        return 1
    meta = replace(ar.meta, provenance={"rebased": {"ar": str(ar_path.resolve()), "hr": str(hr_path.resolve())}}, metrics={})
    model = build_arseg(meta)
    model.lr.load_state_dict(ar.lr.state_dict())  # type: ignore[union-attr]
    # then the HR network: what the LR branch shares with it (the classifier, a shared backbone) is HR's
    model.hr.load_state_dict(hr.hr.state_dict())  # type: ignore[union-attr]
    save_weights(model, output, meta=meta, force=False, dtype=torch.float16 if half else None)
    print(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
