"""Block motion vectors on the 8 px cell grid: one frame's rasterised vectors, which cells they cover,
the filled field and its expansion to dense pixels.

Conventions (see records.py): flow is backward, (2, H, W) float32 in pixels, channel 0 = dx,
channel 1 = dy; pixel p of the current frame comes from p + flow(p) in the reference frame.

Why an 8 px cell grid: FFmpeg reports H.264 partitions as 16x16, 16x8, 8x16 or 8x8 (smaller ones
collapsed to 8x8), and MPEG-1/2/4 use the same shapes, so within an aligned 8x8 cell the codec's motion
is constant. Per-frame fields are rasterised, filled and composed on that grid and only expanded to
pixels at the end (motion.py composes them back to the keyframe).

`BlockCells` is one frame's rasterisation, made once and shared: the scheduler reads its intra
coverage (schedule.py), the flow accumulator its filled field (motion.py).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from arseg_cli.video.records import BlockMotion, DecodedFrame

#: Side of the square cells the block vectors are rasterised onto, pixels.
CELL_PX = 8

#: What uncovered cells get: the mean of the nearest covered cells (default), or zero motion.
FillRule = Literal["neighbours", "zero"]


def grid_shape(frame_hw: tuple[int, int], cell: int = CELL_PX) -> tuple[int, int]:
    """Cells per column and per row covering an H x W frame (partial cells at the right/bottom)."""
    height, width = frame_hw
    return -(-int(height) // cell), -(-int(width) // cell)


def rasterise_blocks(
    motion: BlockMotion | None, frame_hw: tuple[int, int], cell: int = CELL_PX
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Past-reference block vectors painted onto the cell grid.

    Returns (grid, covered, reference): grid (2, gh, gw) float32 backward offsets in pixels, covered
    (gh, gw) bool, reference (gh, gw) int64 the `ref_offset` of the block painted on each covered cell
    (0 elsewhere), or None when the blocks do not name their reference frames (FFmpeg's vectors).
    Only vectors to a past reference (source < 0) are used: a future reference cannot be composed back
    to an earlier keyframe, so future-only blocks stay uncovered (docs/MOTION.md), and so do B-frame
    partitions whose past vector is an export artefact (`_usable_past`). Blocks partly outside the
    frame keep their inside cells; blocks smaller than a cell set the whole cell (the last one written
    wins, its vector and its reference alike).
    """
    gh, gw = grid_shape(frame_hw, cell)
    if motion is None or len(motion) == 0:
        return np.zeros((2, gh, gw), np.float32), np.zeros((gh, gw), bool), None
    past = _usable_past(motion)
    values = motion.offset_px[past].T.astype(np.float32)
    if motion.ref_offset is not None:
        # Painted with the vectors, in the same pass; reference offsets are small integers, exact in float32.
        values = np.vstack([values, motion.ref_offset[past].astype(np.float32)])
    painted, covered = _paint(motion, past, values, (gh, gw), cell)
    reference = None if motion.ref_offset is None else painted[2].astype(np.int64)
    return painted[:2], covered, reference


def _paint(
    motion: BlockMotion, keep: np.ndarray, values: np.ndarray, grid_hw: tuple[int, int], cell: int
) -> tuple[np.ndarray, np.ndarray]:
    """Paint `values` (c, k) of the k blocks selected by `keep` (n,) bool onto a (gh, gw) cell grid.
    Returns (grid (c, gh, gw) of values' dtype, covered (gh, gw) bool)."""
    gh, gw = grid_hw
    grid = np.zeros((values.shape[0], gh, gw), values.dtype)
    covered = np.zeros((gh, gw), bool)
    size = motion.size_wh[keep].astype(np.int64)
    # dst is the block centre; FFmpeg's block sizes are even, so the top-left corner is exact.
    corner = motion.dst_xy[keep].astype(np.int64) - size // 2
    first = corner // cell
    span = -(-(corner + size) // cell) - first  # cells touched along x and y, >= 1
    # Loops over the cells a block spans (at most 2 x 2 for H.264; HEVC's 64-wide units span more),
    # each step vectorised over all blocks.
    for row in range(int(span[:, 1].max(initial=0))):
        for col in range(int(span[:, 0].max(initial=0))):
            cx = first[:, 0] + col
            cy = first[:, 1] + row
            inside = (col < span[:, 0]) & (row < span[:, 1]) & (cx >= 0) & (cx < gw) & (cy >= 0) & (cy < gh)
            grid[:, cy[inside], cx[inside]] = values[:, inside]
            covered[cy[inside], cx[inside]] = True
    return grid, covered


def _usable_past(motion: BlockMotion) -> np.ndarray:
    """(n,) bool: the blocks whose past vector is worth using.

    In B-frames FFmpeg exports a partitioned macroblock's (16x8, 8x16, 8x8) vectors for a direction
    if any of its partitions uses it; a partition predicted from the future only then also shows a
    past vector of exactly (0, 0) (measured on libx264 B-frames: every such zero had a non-zero future
    twin at the same block; docs/MOTION.md). Those zeros are dropped; real zero motion keeps a zero
    future twin and stays.
    """
    past = motion.source < 0
    future = motion.source > 0
    if not future.any():
        return past
    # One integer per block position and size (coordinates < 2**16, sizes < 2**8).
    block = motion.dst_xy.astype(np.int64) @ np.array([1 << 32, 1 << 16])
    block += motion.size_wh.astype(np.int64) @ np.array([1 << 8, 1])
    zero = ~motion.offset_px.any(axis=1)
    spurious = past & zero & np.isin(block, block[future & ~zero])
    return past & ~spurious


def fill_uncovered(grid: np.ndarray, covered: np.ndarray, rule: FillRule = "neighbours") -> np.ndarray:
    """Give every uncovered cell (intra blocks, future-only blocks, no block at all) a vector.

    Rule: grow the covered region one ring of cells at a time, each new cell taking the mean of its
    already-known 4-neighbours; with nothing covered the field is zero. On the synthetic test clips
    this lowers the end-point error against zero-filling (figures in docs/MOTION.md): intra blocks
    sit mostly where content enters at the border or is uncovered behind a moving object, where the
    surrounding motion is the better guess. `rule="zero"` gives them zero motion instead (kept to
    measure the choice). grid (2, gh, gw) float32; returns a new array.
    """
    if covered.all():
        return grid.copy()
    if rule == "zero" or not covered.any():
        return np.where(covered, grid, 0.0).astype(np.float32)
    values = np.where(covered, grid, 0.0).astype(np.float32)
    known = covered.copy()
    while not known.all():
        padded = np.pad(values, ((0, 0), (1, 1), (1, 1)))
        weight = np.pad(known.astype(np.float32), 1)
        total = padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
        count = weight[:-2, 1:-1] + weight[2:, 1:-1] + weight[1:-1, :-2] + weight[1:-1, 2:]
        grow = ~known & (count > 0)
        values[:, grow] = total[:, grow] / count[grow]
        known |= grow
    return values


def cells_to_pixels(grid: np.ndarray, frame_hw: tuple[int, int], cell: int = CELL_PX) -> np.ndarray:
    """Expand a (2, gh, gw) cell field to (2, H, W) float32 pixels, each cell filling its cell x cell
    pixels (cropped at the right and bottom when H or W is not a multiple of the cell)."""
    height, width = frame_hw
    pixels = np.repeat(np.repeat(grid, cell, axis=1), cell, axis=2)
    if pixels.shape[1:] != (height, width):
        pixels = np.ascontiguousarray(pixels[:, :height, :width])
    return pixels


def motion_cells(
    motion: BlockMotion | None, frame_hw: tuple[int, int], cell: int = CELL_PX, fill: FillRule = "neighbours"
) -> np.ndarray | None:
    """The frame's own backward field on the cell grid (2, gh, gw) float32, pixels, uncovered cells
    filled (see `fill_uncovered`); None when the frame has no past vector at all (intra frame,
    missing side data)."""
    return BlockCells(motion, frame_hw, cell).field(fill)


def dense_flow(
    motion: BlockMotion | None, frame_hw: tuple[int, int], *, fill: FillRule = "neighbours"
) -> np.ndarray:
    """Dense backward flow (2, H, W) float32, pixels, of one frame to its past reference.

    Each past-reference block's vector fills its pixels; pixels no past vector covers (intra and
    future-only blocks) take the mean of the nearest covered cells (`fill_uncovered`); a frame
    without any past vector gets zeros. For streams without B-frames and with one reference, the
    reference is the previous frame.
    """
    cells = motion_cells(motion, frame_hw, fill=fill)
    if cells is None:
        return np.zeros((2, *frame_hw), np.float32)
    return cells_to_pixels(cells, frame_hw)


class BlockCells:
    """One frame's past-reference block vectors on the cell grid, rasterised on first use and kept,
    so that every consumer of the frame's motion shares one rasterisation (`rasterise_blocks`): the
    vectors, the cells they cover and, where the blocks name them (HEVC), their reference frames."""

    __slots__ = ("_raster", "cell", "frame_hw", "motion")

    def __init__(self, motion: BlockMotion | None, frame_hw: tuple[int, int], cell: int = CELL_PX) -> None:
        self.motion, self.frame_hw, self.cell = motion, frame_hw, cell
        self._raster: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None

    @classmethod
    def of(cls, frame: DecodedFrame, cell: int = CELL_PX) -> BlockCells:
        return cls(frame.motion, (int(frame.rgb.shape[0]), int(frame.rgb.shape[1])), cell)

    def raster(self) -> tuple[np.ndarray, np.ndarray]:
        """(grid, covered) of `rasterise_blocks`; callers must not modify them."""
        grid, covered, _ = self._rasterised()
        return grid, covered

    def references(self) -> np.ndarray | None:
        """(gh, gw) int64 `ref_offset` of the block on each covered cell (0 elsewhere), None when the
        blocks do not name their references; callers must not modify it."""
        return self._rasterised()[2]

    def _rasterised(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if self._raster is None:
            self._raster = rasterise_blocks(self.motion, self.frame_hw, self.cell)
        return self._raster

    def intra_fraction(self) -> float:
        """Share (0..1) of the cells no usable past vector covers; 1.0 without any vector."""
        covered = self.raster()[1]
        return 1.0 - float(np.mean(covered)) if covered.size else 1.0

    def field(self, fill: FillRule = "neighbours") -> np.ndarray | None:
        """The frame's own backward field (2, gh, gw) float32, uncovered cells filled (a new array, as
        `motion_cells`); None when no cell is covered."""
        grid, covered = self.raster()
        if not covered.any():
            return None
        return fill_uncovered(grid, covered, fill)


__all__ = [
    "CELL_PX",
    "BlockCells",
    "FillRule",
    "cells_to_pixels",
    "dense_flow",
    "fill_uncovered",
    "grid_shape",
    "motion_cells",
    "rasterise_blocks",
]
