"""Training/evaluation pairs as inference sees them: a keyframe and a frame d later, decoded from a
compressed snippet, with the bitstream motion accumulated back to the keyframe.

AR-Seg's protocol (reference/OFFICIAL.md): one clip per labelled frame and distance d, encoded so that
the labelled frame sits d frames after an I-frame. Here the snippet [index - d, index] is encoded in
memory with libx264 (keyframe at its first frame, no B-frames, one reference: every P-frame refers to
the frame right before it, so the chain of vectors is exact) and decoded with motion-vector export;
`FlowAccumulator` composes the vectors back to the keyframe (docs/MOTION.md). AR-Seg used x265 and
per-pixel HEVC vectors rounded at each hop; `codec="hevc"` encodes the snippet with libx265 instead (no
B-frames, x265's several references, video/x265.py) and reads its vectors with arseg's HEVC parser,
which names each block's reference, so that chain is exact too (the paper's set-up, to repeat an
evaluation on HEVC). H.264 is the default.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from arseg_cli.data.records import Dataset, LabelledFrame
from arseg_cli.errors import InputError, OptionsError
from arseg_cli.video._hevc_motion import parser_problem
from arseg_cli.video.decode import decode_frames
from arseg_cli.video.motion import FlowAccumulator
from arseg_cli.video.x264 import H264Writer
from arseg_cli.video.x265 import encode_hevc

#: Changes whenever what make_pair computes changes: older cache entries are then not used.
PAIR_FORMAT = 1
DEFAULT_CRF = 23.0
DEFAULT_PRESET = "medium"

#: Which pixels a pair carries: 'decoded' (the compressed snippet as decoded: what inference sees, arseg's
#: default) or 'source' (the data set's own frames, as the official code trained; the flow still comes
#: from the compressed snippet's vectors).
PairFrames = Literal["decoded", "source"]
PAIR_FRAMES: tuple[PairFrames, ...] = ("decoded", "source")

#: The codec the snippets are encoded with: H.264 (libx264, arseg's default) or HEVC (libx265, the paper's).
PairCodec = Literal["h264", "hevc"]
PAIR_CODECS: tuple[PairCodec, ...] = ("h264", "hevc")


def check_codec(codec: str) -> None:
    """OptionsError (one line) unless pairs can be made with `codec` here."""
    if codec not in PAIR_CODECS:
        raise OptionsError(f"unknown `codec` {codec!r}: use {' or '.join(PAIR_CODECS)}")
    if codec == "hevc" and (problem := parser_problem()) is not None:
        raise OptionsError(f"`codec` hevc reads the snippets' vectors with arseg's HEVC parser: {problem}")


@dataclass(frozen=True, slots=True)
class Pair:
    """A labelled frame with its keyframe d frames before it.

    key_rgb: (H, W, 3) uint8, the keyframe as decoded from the compressed snippet.
    rgb:     (H, W, 3) uint8, the labelled frame as decoded, `distance` frames after the keyframe.
    flow:    (2, H, W) float32 backward flow rgb -> key_rgb in pixels (channel 0 = dx, 1 = dy): pixel p
             of `rgb` comes from p + flow[:, p] in `key_rgb`; bitstream vectors; zeros when d == 0.
    labels:  (H, W) uint8 train ids of the labelled frame, 255 = ignore.
    """

    name: str
    distance: int
    key_rgb: np.ndarray
    rgb: np.ndarray
    flow: np.ndarray
    labels: np.ndarray


def encode_decode(
    frames: list[np.ndarray], *, crf: float = DEFAULT_CRF, preset: str = DEFAULT_PRESET, codec: PairCodec = "h264"
) -> tuple[list[np.ndarray], np.ndarray]:
    """Encode `frames` (RGB uint8 (H, W, 3), all one size) as one H.264 (or HEVC) GOP in memory and
    decode them.

    Returns the decoded frames (same size) and the last frame's backward flow to the first,
    (2, H, W) float32 pixels, from the bitstream vectors (zeros for a single frame).
    """
    check_codec(codec)
    height, width = frames[0].shape[:2]
    if codec == "hevc":
        buffer = io.BytesIO(encode_hevc(frames, keyint=len(frames), crf=crf, preset=preset))
    else:
        buffer = io.BytesIO()
        with H264Writer(buffer, width, height, 30, keyint=len(frames), crf=crf, bframes=0, refs=1, preset=preset,
                        format="h264") as writer:  # fmt: skip
            for frame in frames:
                writer.write(frame)
        buffer.seek(0)
    accumulator = FlowAccumulator()
    decoded: list[np.ndarray] = []
    flow = None
    for frame in decode_frames(buffer, motion="bitstream"):
        result = accumulator.push(frame, is_key=not decoded)
        if decoded and not result.exact:
            raise InputError(f"frame {frame.index} of the snippet does not chain exactly to its keyframe")
        decoded.append(frame.rgb[:height, :width])
        flow = result.flow_px[:, :height, :width]
    if len(decoded) != len(frames) or flow is None:
        raise InputError(f"the encoded snippet gave {len(decoded)} frames back, {len(frames)} were written")
    return decoded, np.ascontiguousarray(flow, dtype=np.float32)


def make_pair(
    dataset: Dataset, frame: LabelledFrame, distance: int, *, crf: float = DEFAULT_CRF, preset: str = DEFAULT_PRESET,
    frames: PairFrames = "decoded", codec: PairCodec = "h264",
) -> Pair:
    """The pair of `frame` at keyframe distance `distance` (see the module docstring). Deterministic.

    `frames`: 'decoded' pixels of the snippet (default) or the data set's 'source' pixels (PairFrames).
    `codec`: the snippet's codec, 'h264' (default) or 'hevc' (PairCodec).
    Requires 0 <= distance <= frame.index (else InputError: the keyframe would precede the video).
    """
    if frames not in PAIR_FRAMES:
        raise InputError(f"unknown pair frames {frames!r}: use {' or '.join(PAIR_FRAMES)}")
    if distance < 0 or distance > frame.index:
        raise InputError(f"{frame.name}: keyframe distance {distance} needs frame index >= {distance}, "
                         f"it is {frame.index}")  # fmt: skip
    source = frame.source.read(frame.index - distance, frame.index + 1)
    labels = dataset.read_labels(frame)
    if labels.shape != source[-1].shape[:2]:
        raise InputError(f"{frame.name}: labels are {labels.shape[1]}x{labels.shape[0]} but the frame is "
                         f"{source[-1].shape[1]}x{source[-1].shape[0]}")  # fmt: skip
    decoded, flow = encode_decode(source, crf=crf, preset=preset, codec=codec)
    pixels = decoded if frames == "decoded" else source
    return Pair(frame.name, distance, pixels[0], pixels[-1], flow, labels)


class PairCache:
    """make_pair results stored as .npz files under `directory`, keyed by the data set, the frame, d,
    crf, preset, the pixels and codec (PairFrames, PairCodec) and PAIR_FORMAT, so that training epochs and repeated evaluations encode each pair once.

    The key includes the label file's resolved path, so two data sets with the same name do not mix.
    Entries are written atomically (a temporary file renamed), so parallel loader workers are safe.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path_for(
        self, dataset: Dataset, frame: LabelledFrame, distance: int, crf: float, preset: str,
        frames: PairFrames = "decoded", codec: PairCodec = "h264",
    ) -> Path:  # fmt: skip
        fields: list[object] = [PAIR_FORMAT, dataset.name, dataset.layout, frame.name, str(frame.labels.resolve()),
                                distance, float(crf), preset]  # fmt: skip
        if frames != "decoded":  # the defaults keep the keys of caches made before the options
            fields.append(frames)
        if codec != "h264":
            fields.append(codec)
        key = json.dumps(fields)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return self.directory / digest[:2] / f"{digest}.npz"

    def get(
        self, dataset: Dataset, frame: LabelledFrame, distance: int, *, crf: float = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET, frames: PairFrames = "decoded", codec: PairCodec = "h264",
    ) -> Pair:  # fmt: skip
        """The pair from the cache, made and stored first when missing (or unreadable)."""
        path = self.path_for(dataset, frame, distance, crf, preset, frames, codec)
        if path.is_file():
            try:
                with np.load(path) as stored:
                    return Pair(frame.name, distance, stored["key_rgb"], stored["rgb"], stored["flow"],
                                stored["labels"])  # fmt: skip
            except (OSError, KeyError, ValueError):
                pass  # a damaged entry is made again
        pair = make_pair(dataset, frame, distance, crf=crf, preset=preset, frames=frames, codec=codec)
        self._store(path, pair)
        return pair

    def _store(self, path: Path, pair: Pair) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, key_rgb=pair.key_rgb, rgb=pair.rgb, flow=pair.flow, labels=pair.labels)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
