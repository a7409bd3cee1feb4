"""An HEVC picture's prediction units (parser.PictureMotion) -> the BlockMotion of its decoded frame.

One block per inter prediction unit, at the unit's own size (down to HEVC's 8x4 and 4x8; AMP gives
shapes such as 16x4 or 64x16), in the coordinates of the frame FFmpeg decodes:
- Position: the unit's luma position minus the conformance window's left and top offsets (FFmpeg
  crops the coded picture to that window). Blocks reaching outside the window keep their inside part.
- Vector: mv / 4 (quarter luma samples). HEVC's vector points from the block to its source in the
  reference, which is arseg's backward convention: offset_px = mv / 4 as it is.
- Which list: one block per unit. A unit predicted from a past frame gives that vector (source -1);
  with two past references (bi-prediction in a low-delay B slice) the nearer one, the shorter chain
  to compose (on a tie, list 0). Bi-prediction from a past and a future frame gives the past vector,
  as the H.264 path uses only the past vectors of B-frames; a unit predicted only from the future
  gives its nearer future vector (source +1), which the motion stage leaves uncomposed.
- Reference: `ref_offset` is the display index of the reference minus the frame's own, so the motion
  stage composes several references exactly. `ref_offsets` maps each reference POC to it (the decode
  loop knows where each picture was shown); without it, POC differences are used (x265 and most
  encoders count one POC per frame).
- Intra units give no block: their area counts as not covered by a past vector (the intra share the
  adaptive scheduler measures), as FFmpeg exports no vector for an H.264 intra macroblock. So do units
  whose reference is the picture itself or a picture `ref_offsets` does not know (one the decoder
  never output).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from arseg_cli.video.hevc.parser import FLAG_INTRA, FLAG_L0, FLAG_L1, PictureMotion
from arseg_cli.video.records import BlockMotion

def frame_hw(picture: PictureMotion) -> tuple[int, int]:
    """(H, W) of the decoded frame: the coded size less the conformance window's offsets."""
    left, right, top, bottom = picture.crop
    return picture.height - top - bottom, picture.width - left - right


def picture_blocks(picture: PictureMotion, ref_offsets: Mapping[int, int] | None = None) -> BlockMotion | None:
    """The picture's inter units as BlockMotion (module docstring); None when it has none (intra picture).

    ref_offsets: reference POC -> its display index minus this picture's; None: POC differences.
    """
    units = _columns(picture.pus)
    flags = units["flags"]
    inter = (flags & FLAG_INTRA) == 0
    first = _reference_offsets(units["ref_poc.0"], picture.poc, ref_offsets)  # 0: unusable
    second = _reference_offsets(units["ref_poc.1"], picture.poc, ref_offsets)
    used_first = inter & ((flags & FLAG_L0) != 0) & (first != 0)
    used_second = inter & ((flags & FLAG_L1) != 0) & (second != 0)
    past_first, past_second = used_first & (first < 0), used_second & (second < 0)
    # List 1 when it gives the nearer reference in the preferred direction (past, else future); list 0 on a tie.
    take_second = np.where(
        past_first | past_second,
        past_second & (~past_first | (second > first)),
        used_second & (~used_first | (second < first)),
    )
    keep = used_first | used_second
    if not keep.any():
        return None
    take_second = take_second[keep]
    left, _, top, _ = picture.crop
    size = np.stack([units["w"][keep], units["h"][keep]], axis=1).astype(np.int32)
    corner = np.stack([units["x"][keep].astype(np.int32) - left, units["y"][keep].astype(np.int32) - top], axis=1)
    vector = np.stack([np.where(take_second, units[f"mv.1.{axis}"][keep], units[f"mv.0.{axis}"][keep]) for axis in (0, 1)],
                      axis=1)  # fmt: skip
    reference = np.where(take_second, second[keep], first[keep])
    return BlockMotion(
        dst_xy=corner + size // 2,
        size_wh=size,
        offset_px=vector.astype(np.float32) / 4,
        source=np.sign(reference).astype(np.int8),
        frame_hw=frame_hw(picture),
        method="bitstream",
        ref_offset=reference.astype(np.int32),
    )


def _columns(records: np.ndarray) -> dict[str, np.ndarray]:
    """Each field of the units as its own contiguous array; array fields as one per element ('mv.0.1' is
    mv[0][1]). NumPy copies a scalar field of a record array quickly but an array field (mv, ref_poc)
    element by element, some 50 times slower: so the records are viewed with scalar fields only."""
    flat = _scalar_dtype(records.dtype)
    view = np.ascontiguousarray(records).view(flat)
    return {name: np.array(view[name]) for name in flat.names or ()}


def _scalar_dtype(dtype: np.dtype) -> np.dtype:
    names, formats, offsets = [], [], []
    for name, (field, offset, *_) in (dtype.fields or {}).items():
        if not field.shape:
            names.append(name), formats.append(field), offsets.append(offset)
            continue
        for position, index in enumerate(np.ndindex(field.shape)):
            names.append(".".join([name, *map(str, index)]))
            formats.append(field.base)
            offsets.append(offset + position * field.base.itemsize)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": dtype.itemsize})


def _reference_offsets(ref_poc: np.ndarray, poc: int, ref_offsets: Mapping[int, int] | None) -> np.ndarray:
    """(n,) int64 display offsets of one list's references; 0 where unknown or the picture itself."""
    ref_poc = ref_poc.astype(np.int64)
    if ref_offsets is None:
        return ref_poc - poc
    known = np.array(sorted(ref_offsets), np.int64)
    if known.size == 0:
        return np.zeros_like(ref_poc)
    mapped = np.array([ref_offsets[int(value)] for value in known], np.int64)
    slot = np.clip(np.searchsorted(known, ref_poc), 0, known.size - 1)
    return np.where(known[slot] == ref_poc, mapped[slot], 0)
