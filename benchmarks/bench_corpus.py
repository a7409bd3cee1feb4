"""Reliability figures: the bad-input corpus through `arseg segment` and a mutation fuzz with a larger budget.

Part "corpus": every input of tests/_corpus.py through `arseg segment` (a real process per input, via
tests/_forked_cli.py), its exit code and what it wrote. Part "fuzz": mutants of a small valid clip in
several containers through the decode + segment library path (tests/_fuzz.py), counted by outcome;
findings (an uncaught exception, a crash, a hang) are listed with the file that reproduces them.
Random-init tiny weights (64 x 96 frames): the model is not what is measured.

    python benchmarks/bench_corpus.py [--count 300] [--budget-s 600] [--seed 0] [--keep DIR]

Prints one JSON object on stdout; exit code 1 when there is any finding (`make fuzz`).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import av  # noqa: E402
import torch  # noqa: E402

from _corpus import CASES, frames_of, valid_clip  # noqa: E402
from _forked_cli import ForkedCli  # noqa: E402
from _fuzz import fuzz  # noqa: E402
from _hevc_fuzz import valid_hevc_clip  # noqa: E402
from _segment_fixtures import tiny_weights  # noqa: E402

from arseg_cli.video._hevc_motion import parser_problem  # noqa: E402

CONTAINERS = (".mp4", ".mkv", ".ts", ".h264")
# HEVC through arseg's own parser (no B-frames, so that `auto` reads its vectors), when it is built.
HEVC_CONTAINERS = (".hevc.mkv", ".hevc") if parser_problem() is None else ()


def corpus(weights: Path, workdir: Path) -> dict[str, object]:
    results: dict[str, object] = {}
    with ForkedCli() as cli:
        for name, case in CASES.items():
            folder = workdir / name
            folder.mkdir()
            source = case.make(folder)
            out = folder / "masks"
            done = cli.run(["segment", str(source), "-o", str(out), "-w", str(weights), "-q"], folder / "run", timeout=120)
            shown = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("WARNING ")]
            results[name] = {
                "expected": case.expect.outcome,
                "exit_code": done.code,
                "timed_out": done.timed_out,
                "frames_written": len(list(out.glob("*.png"))) if out.is_dir() else 0,
                "message": shown[0][:160] if shown else None,
                "traceback": "Traceback" in done.stderr or "internal error" in done.stderr,
                "seconds": round(done.seconds, 2),
            }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="mutants per container")
    parser.add_argument("--budget-s", type=float, default=600, help="seconds per container at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the findings' files in this directory")
    args = parser.parse_args()
    torch.set_num_threads(1)
    workdir = Path(tempfile.mkdtemp(prefix="arseg-corpus-"))
    try:
        weights = tiny_weights(workdir / "tiny.safetensors")
        result: dict[str, object] = {
            "benchmark": "corpus",
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "av": av.__version__},
            "frame_size": [64, 96],
        }
        if not args.skip_corpus:
            (workdir / "corpus").mkdir()
            result["corpus"] = corpus(weights, workdir / "corpus")
        fuzzed = {}
        findings = []
        for suffix in CONTAINERS + HEVC_CONTAINERS:
            folder = workdir / f"fuzz{suffix}"
            folder.mkdir()
            if suffix in HEVC_CONTAINERS:
                clip = valid_hevc_clip(folder / f"clip{suffix}", frames_of(6))
            else:
                clip = valid_clip(folder / f"clip{suffix}", frames=6)
            report = fuzz(clip, weights, folder, seed=args.seed, count=args.count, budget_s=args.budget_s)
            fuzzed[suffix[1:]] = {"inputs": report.inputs, "seconds": round(report.seconds, 1), "outcomes": report.outcomes}
            findings += report.findings
        if args.keep is not None and findings:
            args.keep.mkdir(parents=True, exist_ok=True)
            for finding in findings:
                shutil.copy(finding["input"], args.keep)
                finding["input"] = str(args.keep / Path(finding["input"]).name)
        result["fuzz"] = {"seed": args.seed, "per_container": fuzzed, "findings": findings}
        print(json.dumps(result, indent=1))
        corpus_bad = [n for n, r in result.get("corpus", {}).items() if r["traceback"] or r["timed_out"]]  # type: ignore[union-attr]
        return 1 if findings or corpus_bad else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
