"""Mutation fuzzing of the probe (`arseg info`) and decode + segment library paths: bytes of a small valid clip flipped, inserted
and deleted (seeded), each mutant decoded and segmented in a worker process that keeps the model
loaded; the parent gives every mutant a timeout and restarts the worker after a hang or a crash.

A mutant passes when the library either segments it (any number of frames; a PartialDecodeError at the
end, damage after some frames, counts as 'damaged, frames kept') or raises an ArsegError with a one-line message (the CLI turns those into `error: ...` and exit code 1). Anything else (another
exception, a crash of the process, a hang) is a finding, kept as a file with its seed and index.

Used by tests/test_reliability_fuzz.py (a small budget in `make test`) and `make fuzz`
(benchmarks/bench_corpus.py, a larger one). Run as a script it is the worker.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def mutate(data: bytes, rng: np.random.Generator, max_edits: int = 8) -> bytes:
    """`data` with 1..max_edits random edits: a bit flipped, a byte overwritten, bytes inserted or deleted."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, max_edits + 1))):
        at = int(rng.integers(0, max(1, len(out))))
        edit = int(rng.integers(0, 4))
        if edit == 0 and out:
            out[at] ^= 1 << int(rng.integers(0, 8))
        elif edit == 1 and out:
            out[at] = int(rng.integers(0, 256))
        elif edit == 2:
            out[at:at] = rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
        elif out:
            del out[at : at + int(rng.integers(1, 17))]
    return bytes(out)


@dataclass
class FuzzReport:
    """Counts per outcome ('segmented', 'damaged, frames kept', 'refused: <ArsegError subclass>'), and the findings."""

    inputs: int = 0
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, str]] = field(default_factory=list)

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class Worker:
    """A Python script run as a worker: it prints 'ready', then one JSON verdict per line it reads."""

    def __init__(self, *args: str, script: str = __file__) -> None:
        # The worker imports the arseg of this tree (the script's folder is its sys.path[0], not the root).
        root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
        self.process = subprocess.Popen([sys.executable, script, *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env, text=True)  # fmt: skip
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "ready"

    def run(self, job: Path | str, timeout: float) -> dict[str, str] | None:
        """The worker's verdict on `job` (a line), or None when it did not answer within `timeout` seconds."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{job}\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        return json.loads(line) if line else None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def fuzz(
    clip: Path, weights: Path, workdir: Path, *, seed: int, count: int, budget_s: float, timeout_s: float = 60
) -> FuzzReport:
    """Run up to `count` mutants of `clip` (stopping after `budget_s` seconds) through the worker."""
    original = clip.read_bytes()
    rng = np.random.default_rng(seed)
    report = FuzzReport()
    started = time.monotonic()
    worker = Worker(str(weights))
    try:
        for index in range(count):
            if time.monotonic() - started > budget_s:
                break
            path = workdir / f"mutant-{seed}-{index}{clip.suffix}"
            path.write_bytes(mutate(original, rng))
            verdict = worker.run(path, timeout_s)
            report.inputs += 1
            if verdict is None:
                alive = worker.process.poll() is None
                worker.stop()
                verdict = {"outcome": "hang" if alive else "crash", "detail": f"no answer in {timeout_s:g} s"}
                worker = Worker(str(weights))
            report.add(verdict["outcome"])
            if verdict["outcome"] in ("hang", "crash", "uncaught", "multi-line message"):
                report.findings.append({"input": str(path), "seed": str(seed), "index": str(index), **verdict})
            else:
                path.unlink()
    finally:
        worker.stop()
    report.seconds = time.monotonic() - started
    return report


def _verdict(path: str, model: object) -> dict[str, str]:
    import traceback

    from arseg_cli.errors import ArsegError
    from arseg_cli.pipeline import Settings, segment_frames
    from arseg_cli.video.decode import PartialDecodeError, decode_frames
    from arseg_cli.video.probe import probe_video

    try:  # `arseg info`'s path first: its own reading of the packets
        probe_video(path)
    except ArsegError:
        pass
    except Exception:  # noqa: BLE001 - what the fuzzer looks for
        return {"outcome": "uncaught", "detail": "probe_video: " + traceback.format_exc()}
    frames = 0
    try:
        for _ in segment_frames(decode_frames(path), model, Settings()):  # type: ignore[arg-type]
            frames += 1
    except PartialDecodeError as error:  # the CLI keeps these frames and warns (exit code 1)
        kind = "multi-line message" if "\n" in str(error) else "damaged, frames kept"
        return {"outcome": kind, "detail": f"{frames} frames; {error}"}
    except ArsegError as error:
        kind = "multi-line message" if "\n" in str(error) else f"refused: {type(error).__name__}"
        return {"outcome": kind, "detail": str(error)}
    except Exception:  # noqa: BLE001 - what the fuzzer looks for
        return {"outcome": "uncaught", "detail": traceback.format_exc()}
    return {"outcome": "segmented", "detail": f"{frames} frames"}


def _serve(weights: str) -> None:
    import torch

    from arseg_cli.model import load_weights

    torch.set_num_threads(1)
    model = load_weights(weights)
    print("ready", flush=True)
    with torch.inference_mode():
        for line in sys.stdin:
            print(json.dumps(_verdict(line.strip(), model)), flush=True)


if __name__ == "__main__":
    _serve(sys.argv[1])
