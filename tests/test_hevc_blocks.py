"""video/hevc/blocks.py: an HEVC picture's prediction units -> BlockMotion, on hand-made PictureMotion values
(exact expected records). The motion stage on blocks that name their references: tests/test_motion.py."""

from __future__ import annotations

import numpy as np
import pytest

parser = pytest.importorskip("arseg_cli.video.hevc.parser", reason="arseg's HEVC parser package is not in this tree")

from arseg_cli.video.hevc.blocks import frame_hw, picture_blocks  # noqa: E402

L0, L1, INTRA = parser.FLAG_L0, parser.FLAG_L1, parser.FLAG_INTRA


def pu(x: int, y: int, w: int, h: int, flags: int, mv0: tuple[int, int] = (0, 0), ref0: int = 0,
       mv1: tuple[int, int] = (0, 0), ref1: int = 0) -> dict[str, object]:  # fmt: skip
    return {"x": x, "y": y, "w": w, "h": h, "flags": flags, "mv": (mv0, mv1), "ref_poc": (ref0, ref1)}


def picture(poc: int, units: list[dict[str, object]], size: tuple[int, int] = (64, 32),
            crop: tuple[int, int, int, int] = (0, 0, 0, 0)) -> object:  # fmt: skip
    pus = np.zeros(len(units), parser.PU_DTYPE)
    for name in ("x", "y", "w", "h", "flags", "mv", "ref_poc"):
        pus[name] = [unit[name] for unit in units]
    return parser.PictureMotion(poc=poc, decode_index=poc, slice_types=("P",), width=size[0], height=size[1], crop=crop,
                                bit_depth=8, pus=pus)  # fmt: skip


def test_inter_units_become_blocks_at_their_size_with_quarter_sample_vectors() -> None:
    motion = picture_blocks(picture(5, [
        pu(0, 0, 16, 16, L0, (5, -3), 4),   # 2x16 quarter samples: (1.25, -0.75) from POC 4
        pu(16, 0, 8, 4, L0, (-8, 2), 3),    # HEVC's smallest shapes, two frames back
        pu(16, 4, 8, 4, L0, (0, 0), 4),
        pu(24, 0, 4, 8, L0, (1, 1), 4),
        pu(0, 16, 32, 16, INTRA),          # intra: no block
    ]))  # fmt: skip
    assert motion is not None
    assert motion.dst_xy.tolist() == [[8, 8], [20, 2], [20, 6], [26, 4]]
    assert motion.size_wh.tolist() == [[16, 16], [8, 4], [8, 4], [4, 8]]
    assert motion.offset_px.tolist() == [[1.25, -0.75], [-2.0, 0.5], [0.0, 0.0], [0.25, 0.25]]
    assert motion.source.tolist() == [-1, -1, -1, -1]
    assert motion.ref_offset is not None and motion.ref_offset.tolist() == [-1, -2, -1, -1]
    assert motion.frame_hw == (32, 64) and motion.method == "bitstream"


def test_conformance_window_moves_blocks_into_the_decoded_frame() -> None:
    shown = picture(1, [pu(8, 8, 8, 8, L0, (4, 0), 0)], size=(64, 48), crop=(8, 0, 4, 12))
    assert frame_hw(shown) == (32, 56)  # type: ignore[arg-type]
    motion = picture_blocks(shown)  # type: ignore[arg-type]
    assert motion is not None and motion.dst_xy.tolist() == [[4, 8]] and motion.frame_hw == (32, 56)


def test_bi_prediction_takes_the_past_vector_or_the_nearer_past_one() -> None:
    motion = picture_blocks(picture(8, [
        pu(0, 0, 8, 8, L0 | L1, (4, 0), 7, (-4, 0), 10),   # past + future: the past one
        pu(8, 0, 8, 8, L0 | L1, (8, 0), 4, (12, 4), 6),    # two past: the nearer (POC 6, list 1)
        pu(16, 0, 8, 8, L0 | L1, (1, 2), 7, (3, 4), 7),    # one picture twice: list 0
        pu(24, 0, 8, 8, L1, mv1=(0, 8), ref1=12),          # future only: kept as a future block
        pu(32, 0, 8, 8, L0 | L1, (0, 4), 12, (0, 8), 9),   # two future: the nearer
    ]))  # fmt: skip
    assert motion is not None
    assert motion.offset_px.tolist() == [[1.0, 0.0], [3.0, 1.0], [0.25, 0.5], [0.0, 2.0], [0.0, 2.0]]
    assert motion.source.tolist() == [-1, -1, -1, 1, 1]
    assert motion.ref_offset is not None and motion.ref_offset.tolist() == [-1, -2, -1, 4, 1]


def test_reference_offsets_follow_the_display_positions_given() -> None:
    units = [pu(0, 0, 8, 8, L0, (4, 0), 10), pu(8, 0, 8, 8, L0, (4, 0), 6), pu(16, 0, 8, 8, L0, (4, 0), 2)]
    # POCs counted in steps of 2 (10 is the previous frame, 6 three back); POC 2 was never shown: no block.
    motion = picture_blocks(picture(12, units), {10: -1, 6: -3})  # type: ignore[arg-type]
    assert motion is not None and motion.ref_offset is not None
    assert motion.ref_offset.tolist() == [-1, -3] and motion.dst_xy[:, 0].tolist() == [4, 12]


def test_an_intra_picture_and_self_references_give_no_motion() -> None:
    assert picture_blocks(picture(0, [pu(0, 0, 64, 32, INTRA)])) is None  # type: ignore[arg-type]
    assert picture_blocks(picture(3, [pu(0, 0, 8, 8, L0, (4, 4), 3)])) is None  # type: ignore[arg-type]
