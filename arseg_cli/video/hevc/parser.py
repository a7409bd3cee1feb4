"""Motion of HEVC pictures parsed from the bitstream by the native extension `_hevcparse`.

The extension is optional (it needs a C compiler at install): `available()` says whether it was built.
Without it this module still imports, and HevcMotionParser raises HevcUnsupported.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from types import ModuleType

import numpy as np


def _load_native() -> ModuleType | None:
    # ARSEG_HEVC_NATIVE names another build of the extension (`make hevc-asan` tests a sanitised one).
    override = os.environ.get("ARSEG_HEVC_NATIVE")
    if override:
        spec = importlib.util.spec_from_file_location("arseg_cli.video.hevc._hevcparse", override)
        if spec is None or spec.loader is None:
            raise ImportError(f"ARSEG_HEVC_NATIVE={override} is not an extension module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    try:
        from arseg_cli.video.hevc import _hevcparse
    except ImportError:  # not built: the callers fall back to another motion source
        return None
    return _hevcparse


_hevcparse = _load_native()

FLAG_INTRA, FLAG_SKIP, FLAG_MERGE, FLAG_L0, FLAG_L1 = 1, 2, 4, 8, 16

# Mirrors HevcPuMotion (native/hevc_motion.h): one record per prediction unit and per intra coding unit.
PU_DTYPE = np.dtype(
    {
        "names": ["x", "y", "w", "h", "flags", "mv", "ref_poc"],
        "formats": ["<u2", "<u2", "u1", "u1", "u1", ("<i2", (2, 2)), ("<i4", (2,))],
        "offsets": [0, 2, 4, 5, 6, 8, 16],
        "itemsize": 24,
    }
)

_HVCC_PARAMETER_SET_TYPES = (32, 33, 34)  # VPS, SPS, PPS


class HevcUnsupported(Exception):
    """The stream uses a feature the parser does not support (one-line reason)."""


class HevcStreamError(Exception):
    """Corrupt or undecodable HEVC data (one-line reason)."""


@dataclass(frozen=True)
class PictureMotion:
    """One coded picture: its POC, its place in decoding order, and the motion of its blocks.

    width/height are the coded luma size; crop is the conformance window (left, right, top, bottom) in
    luma samples; pus holds PU_DTYPE records with positions in the coded picture."""

    poc: int
    decode_index: int
    slice_types: tuple[str, ...]
    width: int
    height: int
    crop: tuple[int, int, int, int]
    bit_depth: int
    pus: np.ndarray


def available() -> bool:
    """Whether the native parser was built."""
    return _hevcparse is not None


def _hvcc_parameter_sets(extradata: bytes) -> tuple[int, bytes]:
    """(NAL length size, the parameter-set NAL units re-framed with 4-byte lengths) of an hvcC record."""
    if len(extradata) < 23:
        raise HevcStreamError("truncated hvcC extradata")
    length_size = (extradata[21] & 3) + 1
    framed = bytearray()
    pos, arrays = 23, extradata[22]
    for _ in range(arrays):
        if pos + 3 > len(extradata):
            raise HevcStreamError("truncated hvcC extradata")
        nal_type = extradata[pos] & 0x3F
        count = int.from_bytes(extradata[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            nal = extradata[pos + 2 : pos + 2 + size]
            if len(nal) != size or pos + 2 > len(extradata):
                raise HevcStreamError("truncated hvcC extradata")
            pos += 2 + size
            if nal_type in _HVCC_PARAMETER_SET_TYPES:
                framed += size.to_bytes(4, "big") + nal
    return length_size, bytes(framed)


class HevcMotionParser:
    """Parses the packets of one HEVC stream, in decoding order, into PictureMotion records."""

    def __init__(self, extradata: bytes | None = None) -> None:
        if _hevcparse is None:
            raise HevcUnsupported("the native HEVC parser is not built (no C compiler at install)")
        self._parser = _hevcparse.Parser()
        self._nal_length_size = 0
        if extradata and extradata[0] == 1:  # hvcC (ISO/IEC 14496-15)
            self._nal_length_size, parameter_sets = _hvcc_parameter_sets(bytes(extradata))
            self._run(parameter_sets, 4)
        elif extradata:
            self._run(bytes(extradata), 0)

    def parse_packet(self, data: bytes) -> PictureMotion | None:
        """The picture of one access unit, or None when the packet codes none (parameter sets only, or
        a leading picture that decoders skip). A packet holding several pictures yields the last."""
        pictures = self._run(bytes(data), self._nal_length_size)
        if not pictures:
            return None
        poc, decode_index, slice_types, width, height, crop, bit_depth, records = pictures[-1]
        return PictureMotion(
            poc=poc,
            decode_index=decode_index,
            slice_types=tuple(slice_types),
            width=width,
            height=height,
            crop=tuple(crop),
            bit_depth=bit_depth,
            pus=np.frombuffer(records, PU_DTYPE),
        )

    def _run(self, data: bytes, nal_length_size: int) -> list[tuple]:
        try:
            return self._parser.parse(data, nal_length_size)
        except _hevcparse.Unsupported as error:
            raise HevcUnsupported(str(error)) from None
        except _hevcparse.StreamError as error:
            raise HevcStreamError(str(error)) from None
