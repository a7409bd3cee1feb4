"""A bit-exact oracle for parsed HEVC motion.

Clips are encoded with libx265 with deblocking and SAO off, so a skipped coding unit (merge, no
residual) is exactly its motion-compensated prediction. The oracle predicts the luma of every skipped
CU from FFmpeg's decoded reference pictures with the parsed vectors, as H.265 computes it (8.5.3.3.3.1
luma sample interpolation, 8.5.3.3.4.2 default weighted sample prediction), and compares it with
FFmpeg's decoded picture, per 8x8 block.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from arseg_cli.video.hevc.parser import FLAG_L0, FLAG_L1, FLAG_SKIP, HevcMotionParser, PictureMotion

# The luma interpolation filters, by fractional position (quarter samples); taps at offsets -3..4.
LUMA_FILTERS = np.array(
    [
        [0, 0, 0, 64, 0, 0, 0, 0],
        [-1, 4, -10, 58, 17, -5, 1, 0],
        [-1, 4, -11, 40, 40, -11, 4, -1],
        [0, 1, -5, 17, 58, -10, 4, -1],
    ],
    np.int64,
)
NO_LOOP_FILTERS = "no-deblock=1:no-sao=1:weightp=0:weightb=0:log-level=error"
# One worker thread: x265 still codes WPP (pools=none would turn it off), and encodes are repeatable.
FEW_THREADS = "pools=1:frame-threads=1"


@dataclass(frozen=True)
class EncodedPacket:
    data: bytes
    pts: int


def encode_hevc(
    frames: Sequence[np.ndarray], x265_params: str, *, crf: int = 28, pix_fmt: str = "yuv420p"
) -> list[EncodedPacket]:
    """RGB frames -> Annex B packets of libx265 in decoding order (parameter sets in band)."""
    height, width = frames[0].shape[:2]
    ctx = av.CodecContext.create("libx265", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"x265-params": f"{x265_params}:{NO_LOOP_FILTERS}:{FEW_THREADS}", "crf": str(crf)}
    packets = []
    for index, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
        frame.pts = index
        packets += ctx.encode(frame)
    packets += ctx.encode(None)
    return [EncodedPacket(bytes(packet), int(packet.pts)) for packet in packets]


def nal_unit_types(annex_b: bytes) -> list[int]:
    """nal_unit_type of each NAL unit of an Annex B packet."""
    types, pos = [], annex_b.find(b"\x00\x00\x01")
    while pos >= 0 and pos + 3 < len(annex_b):
        types.append((annex_b[pos + 3] >> 1) & 0x3F)
        pos = annex_b.find(b"\x00\x00\x01", pos + 3)
    return types


def luma_plane(frame: av.VideoFrame) -> np.ndarray:
    """The Y plane as int64 (H, W), 8- or 10-bit samples as stored."""
    plane = frame.planes[0]
    dtype = np.uint16 if frame.format.name.endswith("10le") else np.uint8
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype().itemsize)
    return rows[:, : plane.width].astype(np.int64)


def decode_lumas(packets: Iterable[EncodedPacket]) -> dict[int, np.ndarray]:
    """FFmpeg's decoded luma of each picture, by pts (FFmpeg outputs in display order)."""
    ctx = av.CodecContext.create("hevc", "r")
    lumas = {}
    for item in packets:
        packet = av.Packet(item.data)
        packet.pts = item.pts
        for frame in ctx.decode(packet):
            lumas[int(frame.pts)] = luma_plane(frame)
    for frame in ctx.decode(None):
        lumas[int(frame.pts)] = luma_plane(frame)
    return lumas


def _filter(samples: np.ndarray, frac: int, axis: int, length: int) -> np.ndarray:
    taps = LUMA_FILTERS[frac]
    if axis == 1:
        return sum(taps[i] * samples[:, i : i + length] for i in range(8))
    return sum(taps[i] * samples[i : i + length, :] for i in range(8))


def predict_luma(
    ref: np.ndarray, x: int, y: int, w: int, h: int, mv: Sequence[int], bit_depth: int
) -> np.ndarray:
    """predSamplesLX (14-bit intermediate) of a w x h block at (x, y) moved by mv (quarter samples),
    the reference padded by repeating its edge samples."""
    shift1, shift3 = bit_depth - 8, 14 - bit_depth
    x_frac, y_frac = int(mv[0]) & 3, int(mv[1]) & 3
    cols = np.clip(x + (int(mv[0]) >> 2) + np.arange(-3, w + 4), 0, ref.shape[1] - 1)
    rows = np.clip(y + (int(mv[1]) >> 2) + np.arange(-3, h + 4), 0, ref.shape[0] - 1)
    patch = ref[np.ix_(rows, cols)]
    if x_frac == 0 and y_frac == 0:
        return patch[3 : 3 + h, 3 : 3 + w] << shift3
    if y_frac == 0:
        return _filter(patch[3 : 3 + h], x_frac, 1, w) >> shift1
    if x_frac == 0:
        return _filter(patch[:, 3 : 3 + w], y_frac, 0, h) >> shift1
    return _filter(_filter(patch, x_frac, 1, w) >> shift1, y_frac, 0, h) >> 6


def weighted_prediction(preds: Sequence[np.ndarray], bit_depth: int) -> np.ndarray:
    """Default weighted sample prediction of one (uni) or two (bi) predictions."""
    shift = 14 - bit_depth + len(preds) - 1
    return np.clip((sum(preds) + (1 << (shift - 1))) >> shift, 0, (1 << bit_depth) - 1)


@dataclass
class OracleScore:
    exact_blocks: int = 0
    blocks: int = 0
    skipped_cus: int = 0
    bi_cus: int = 0

    @property
    def exact_fraction(self) -> float:
        return self.exact_blocks / max(self.blocks, 1)


def parse_pictures(packets: Sequence[EncodedPacket]) -> list[tuple[PictureMotion, int]]:
    """The parser's pictures in decoding order, with the pts of their packet."""
    parser = HevcMotionParser(None)
    pictures = []
    for item in packets:
        picture = parser.parse_packet(item.data)
        if picture is not None:
            pictures.append((picture, item.pts))
    return pictures


def score_skipped_blocks(packets: Sequence[EncodedPacket]) -> OracleScore:
    """Motion-compensates every skipped CU with the parsed vectors; counts its exact 8x8 luma blocks."""
    lumas = decode_lumas(packets)
    score = OracleScore()
    by_poc: dict[int, np.ndarray] = {}  # the latest decoded picture of each POC, as references see it
    for picture, pts in parse_pictures(packets):
        current = lumas[pts]
        # FFmpeg's planes are cropped to the conformance window; the oracle needs the coded picture.
        assert current.shape == (picture.height, picture.width) and picture.crop == (0, 0, 0, 0), picture.crop
        for pu in picture.pus[(picture.pus["flags"] & FLAG_SKIP) != 0]:
            x, y, w, h = (int(pu[k]) for k in ("x", "y", "w", "h"))
            lists = [k for k, flag in enumerate((FLAG_L0, FLAG_L1)) if pu["flags"] & flag]
            refs = [by_poc.get(int(pu["ref_poc"][k])) for k in lists]
            exact = np.zeros((h // 8, w // 8), bool)
            if lists and all(ref is not None for ref in refs):
                preds = [predict_luma(ref, x, y, w, h, pu["mv"][k], picture.bit_depth) for ref, k in zip(refs, lists)]
                got = weighted_prediction(preds, picture.bit_depth)
                exact = (got == current[y : y + h, x : x + w]).reshape(h // 8, 8, w // 8, 8).all(axis=(1, 3))
            score.exact_blocks += int(exact.sum())
            score.blocks += exact.size
            score.skipped_cus += 1
            score.bi_cus += len(lists) == 2
        by_poc[picture.poc] = current
    return score
