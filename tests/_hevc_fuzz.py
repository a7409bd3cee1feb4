"""Mutation fuzz of arseg's HEVC parser on its own: the packets (and the hvcC headers) of small valid libx265
clips are mutated (tests/_fuzz.py's `mutate`, seeded) and fed to a fresh HevcMotionParser in a worker
process; the parent gives every mutant a timeout and restarts the worker after a hang or a crash (an
AddressSanitizer report ends the process too, so `make hevc-asan` turns a read outside the buffer into
a finding).

A mutant passes when every packet parses or the parser raises its one-line HevcUnsupported or
HevcStreamError. Anything else (another exception, a message of several lines, a crash, a hang) is a
finding, named by clip, seed and index (the mutant is rebuilt from them).

Also `valid_hevc_clip`, the HEVC inputs of the decode + segment fuzz (tests/_fuzz.py). Run as a script
it is the worker: `python _hevc_fuzz.py CLIP...`, reading 'clip-number seed index' lines.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fuzz import FuzzReport, Worker, mutate  # noqa: E402
from _video_inputs import encode_frames  # noqa: E402

#: x265 layouts of the fuzzed clips: no B-frames with 3 references; B-frames; CTB 16 with wavefronts and
#: tiles' entry points; Main 10 (where libx265 encodes it).
LAYOUTS = {
    "refs": ("bframes=0:ref=3", "yuv420p"),
    "bframes": ("bframes=3:b-pyramid=1", "yuv420p"),
    "ctb16-wpp": ("bframes=0:ctu=16:wpp=1:amp=1:rect=1", "yuv420p"),
    "main10": ("bframes=0", "yuv420p10le"),
}


def valid_hevc_clip(path: Path, frames: list[np.ndarray], *, params: str = "bframes=0", pix_fmt: str = "yuv420p",
                    keyint: int = 4) -> Path:  # fmt: skip
    """`frames` (RGB uint8) through libx265 at `path` (container from the suffix), a keyframe every `keyint`."""
    params = f"keyint={keyint}:min-keyint={keyint}:scenecut=0:{params}:log-level=error"
    return encode_frames(frames, path, "libx265", pix_fmt=pix_fmt, options={"preset": "fast", "x265-params": params})


def packets_of(path: Path) -> tuple[bytes | None, list[bytes]]:
    """(extradata, packets in decoding order) of a clip's video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        extradata = bytes(stream.codec_context.extradata or b"") or None
        return extradata, [bytes(packet) for packet in container.demux(stream) if packet.size]


def mutant(extradata: bytes | None, packets: list[bytes], seed: int, index: int) -> tuple[bytes | None, list[bytes]]:
    """The `index`-th mutant of a clip under `seed`: 1-3 packets mutated, and the headers one time in four."""
    rng = np.random.default_rng([seed, index])
    out = list(packets)
    for at in rng.choice(len(out), size=min(len(out), int(rng.integers(1, 4))), replace=False):
        out[int(at)] = mutate(out[int(at)], rng)
    if extradata is not None and rng.integers(0, 4) == 0:
        extradata = mutate(extradata, rng)
    return extradata, out


def fuzz_parser(clips: list[Path], *, seed: int, count: int, budget_s: float, timeout_s: float = 20) -> FuzzReport:
    """Up to `count` mutants of each clip in turn (stopping after `budget_s` seconds) through the worker."""
    report = FuzzReport()
    started = time.monotonic()
    worker = Worker(*map(str, clips), script=__file__)
    try:
        for index in range(count):
            if time.monotonic() - started > budget_s:
                break
            clip = index % len(clips)
            verdict = worker.run(f"{clip} {seed} {index}", timeout_s)
            report.inputs += 1
            if verdict is None:
                alive = worker.process.poll() is None
                worker.stop()
                verdict = {"outcome": "hang" if alive else "crash", "detail": f"no answer in {timeout_s:g} s"}
                worker = Worker(*map(str, clips), script=__file__)
            report.add(verdict["outcome"])
            if verdict["outcome"] in ("hang", "crash", "uncaught", "multi-line message"):
                report.findings.append({"input": str(clips[clip]), "seed": str(seed), "index": str(index), **verdict})
    finally:
        worker.stop()
    report.seconds = time.monotonic() - started
    return report


def _verdict(extradata: bytes | None, packets: list[bytes]) -> dict[str, str]:
    from arseg_cli.video.hevc.parser import HevcMotionParser, HevcStreamError, HevcUnsupported

    pictures = 0
    try:
        parser = HevcMotionParser(extradata)
        for packet in packets:
            pictures += parser.parse_packet(packet) is not None
    except (HevcUnsupported, HevcStreamError) as error:
        kind = "multi-line message" if "\n" in str(error) or not str(error) else f"refused: {type(error).__name__}"
        return {"outcome": kind, "detail": f"after {pictures} pictures: {error}"}
    except Exception:  # noqa: BLE001 - what the fuzzer looks for
        return {"outcome": "uncaught", "detail": traceback.format_exc()}
    return {"outcome": "parsed", "detail": f"{pictures} pictures"}


def _serve(clips: list[str]) -> None:
    sources = [packets_of(Path(clip)) for clip in clips]
    print("ready", flush=True)
    for line in sys.stdin:
        clip, seed, index = map(int, line.split())
        print(json.dumps(_verdict(*mutant(*sources[clip], seed, index))), flush=True)


if __name__ == "__main__":
    _serve(sys.argv[1:])
