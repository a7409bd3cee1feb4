"""Block motion vectors -> dense backward flow, and its composition back to the keyframe.

Conventions (see records.py): flow is backward, (2, H, W) float32 in pixels, channel 0 = dx,
channel 1 = dy; pixel p of the current frame comes from p + flow(p) in the reference frame.

Why an 8 px cell grid: FFmpeg reports H.264 partitions as 16x16, 16x8, 8x16 or 8x8 (smaller ones
collapsed to 8x8), and MPEG-1/2/4 use the same shapes, so within an aligned 8x8 cell the codec's motion
is constant. Per-frame fields are rasterised, filled and composed on that grid and only expanded to
pixels at the end; composition traces each cell centre back to the keyframe (`FlowAccumulator`),
exact for whole-frame pans of any sub-pixel size. docs/MOTION.md gives the measurements behind
these choices and the policy for B-frames and several references.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np

from arseg_cli.video._chain import Chain, StoredHop
from arseg_cli.video.records import BlockMotion, DecodedFrame, FlowToKey

#: Side of the square cells the block vectors are rasterised onto, pixels.
CELL_PX = 8

#: Picture types a later frame may predict from, as far as arseg assumes (B-frames are taken as
#: non-reference pictures; x264's B-pyramid breaks that assumption, see docs/MOTION.md).
_ANCHOR_TYPES = frozenset({"I", "P", "S", "SI", "SP", "?"})

#: What uncovered cells get: the mean of the nearest covered cells (default), or zero motion.
FillRule = Literal["neighbours", "zero"]


def grid_shape(frame_hw: tuple[int, int], cell: int = CELL_PX) -> tuple[int, int]:
    """Cells per column and per row covering an H x W frame (partial cells at the right/bottom)."""
    height, width = frame_hw
    return -(-int(height) // cell), -(-int(width) // cell)


def rasterise_blocks(
    motion: BlockMotion | None, frame_hw: tuple[int, int], cell: int = CELL_PX
) -> tuple[np.ndarray, np.ndarray]:
    """Past-reference block vectors painted onto the cell grid.

    Returns (grid, covered): grid (2, gh, gw) float32 backward offsets in pixels, covered (gh, gw)
    bool. Only vectors to a past reference (source < 0) are used: a future reference cannot be
    composed back to an earlier keyframe, so future-only blocks stay uncovered (docs/MOTION.md),
    and so do B-frame partitions whose past vector is an export artefact (`_usable_past`).
    Blocks partly outside the frame keep their inside cells; blocks smaller than a cell set the
    whole cell (the last one written wins).
    """
    if motion is None or len(motion) == 0:
        gh, gw = grid_shape(frame_hw, cell)
        return np.zeros((2, gh, gw), np.float32), np.zeros((gh, gw), bool)
    past = _usable_past(motion)
    return paint_blocks(motion, past, motion.offset_px[past].T, frame_hw, cell)


def paint_blocks(
    motion: BlockMotion, keep: np.ndarray, values: np.ndarray, frame_hw: tuple[int, int], cell: int = CELL_PX
) -> tuple[np.ndarray, np.ndarray]:
    """Paint `values` (c, k) of the k blocks selected by `keep` (n,) bool onto the cell grid, as
    `rasterise_blocks` does. Returns (grid (c, gh, gw) of values' dtype, covered (gh, gw) bool)."""
    gh, gw = grid_shape(frame_hw, cell)
    grid = np.zeros((values.shape[0], gh, gw), values.dtype)
    covered = np.zeros((gh, gw), bool)
    size = motion.size_wh[keep].astype(np.int64)
    # dst is the block centre; FFmpeg's block sizes are even, so the top-left corner is exact.
    corner = motion.dst_xy[keep].astype(np.int64) - size // 2
    first = corner // cell
    span = -(-(corner + size) // cell) - first  # cells touched along x and y, >= 1
    # Loops over the (at most 2 x 2) cells a block spans, each step vectorised over all blocks.
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
    grid, covered = rasterise_blocks(motion, frame_hw, cell)
    if not covered.any():
        return None
    return fill_uncovered(grid, covered, fill)


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


def has_past_motion(frame: DecodedFrame) -> bool:
    """Whether the frame carries at least one vector to a past reference (else its hop is unknown)."""
    return frame.motion is not None and bool(np.any(frame.motion.source < 0))


def is_stream_iframe(frame: DecodedFrame) -> bool:
    """The codec coded this frame without past motion (an I/IDR frame, not a future-only B-frame)."""
    return frame.pict_type == "I" or (not has_past_motion(frame) and frame.pict_type != "B")


def iframe_keyframe_reason(frame: DecodedFrame, since_key: int | None, keyframe_interval: int | None) -> str:
    """The keyframe rule of `arseg segment --keyframe-policy iframe` and `arseg motion --to-key L`: why
    `frame` starts a keyframe, or '' when it does not.

    'first': no keyframe yet (`since_key` None); 'interval': `keyframe_interval` frames since the last
    keyframe (`since_key` counts frames after it: 0 at the keyframe itself); 'iframe': the codec coded it
    without past motion, so no flow chain leads back through it. The count restarts at every keyframe,
    so keyframes are the stream's I-frames when those come every L frames (`arseg encode --keyint L`).
    `keyframe_interval` None: no interval rule.
    """
    if since_key is None:
        return "first"
    if keyframe_interval is not None and since_key + 1 >= keyframe_interval:
        return "interval"
    return "iframe" if is_stream_iframe(frame) else ""


def _reencoded(frame: DecodedFrame) -> bool:
    """Motion from arseg's libx264 re-encode: every frame is predicted from the one right before it,
    whatever picture type the source stream gave it."""
    return frame.motion is not None and frame.motion.method == "x264-reencode"


def _is_anchor(frame: DecodedFrame) -> bool:
    """Whether later frames are taken to predict from this one (see `FlowAccumulator`)."""
    return frame.pict_type in _ANCHOR_TYPES or _reencoded(frame)


def _single_hop(frame: DecodedFrame, reference_index: int) -> bool:
    """Whether the frame's past vectors certainly point to `reference_index`, the frame right before it."""
    return (frame.pict_type == "P" or _reencoded(frame)) and reference_index == frame.index - 1


class FlowAccumulator:
    """Composes per-frame backward fields into flow to the most recent keyframe.

    Call `push(frame, is_key=...)` once per frame in display order; the keyframe decision is the
    caller's (arseg_cli.schedule, or `flows_to_key` for a fixed cadence). A keyframe gets zero flow.
    Any other frame composes its own vectors with those of its assumed reference, the latest earlier
    I/P frame ("anchor"; the previous frame when the stream has no B-frames), and so on back to the
    keyframe: flow_to_key(p) = hop(p) + flow_to_key_ref(p + hop(p)).

    How: each cell centre is traced back hop by hop through the stored per-anchor cell fields, at
    its exact sub-pixel position. The fields are constant per cell, so looking up the cell holding a
    point gives the exact per-pixel composition at the cell centre: no rounding per hop and no
    smoothing across motion boundaries (bilinear re-sampling of an accumulated field blurs an object
    edge a little more at every hop; docs/MOTION.md). Cost grows with the distance to the keyframe, so
    after `max_trace_hops` anchors the accumulated field is stored and later frames sample it
    bilinearly at their traced position (the one approximation, once per `max_trace_hops` frames).
    Positions outside the frame use the nearest border cell: entering content moves like the border.

    Policy where the bitstream is ambiguous (docs/MOTION.md):
    - B-frames: only past vectors are used, taken to point to the latest I/P frame (exact without
      B-pyramid and with one reference); future-only blocks are filled from their neighbours.
      B-frames never serve as a reference for later frames.
    - Several references: FFmpeg does not say which past frame a vector points to; it is taken as
      the assumed reference above, which is wrong for blocks that point further back. Where the
      blocks name their reference (`BlockMotion.ref_offset`: HEVC read by arseg itself), each cell
      is traced into the frame its own vector points to, so several references, and B-frames'
      vectors to earlier B-frames, compose exactly; every such frame is kept in the chain.
    - Motion from the libx264 re-encode (decode.py's fallback): every frame, whatever its picture
      type in the source, is predicted from the frame right before it, so the chain is exact.
    - A non-key frame without past vectors (an I-frame the caller did not make a key, a B-frame
      predicted only from the future, missing side data): zero motion over that hop is assumed, so
      it inherits its reference's field.
    `FlowToKey.exact` is True only when every hop was a P-frame (or a re-encoded frame) predicted
    from the frame right before it, from a keyframe that is not a B-frame; several references in a
    stream's own vectors cannot be detected (decode.py's 'auto' re-encodes such streams). With named
    references, a frame is exact when every block points into an exact frame of the chain (the
    keyframe included), whatever the distance; intra blocks are filled as always.
    """

    def __init__(self, cell: int = CELL_PX, max_trace_hops: int = 16, fill: FillRule = "neighbours") -> None:
        if max_trace_hops < 1:
            raise ValueError(f"max_trace_hops must be >= 1, got {max_trace_hops}")
        self.cell = cell
        self.max_trace_hops = max_trace_hops
        self.fill: FillRule = fill
        self._frame_hw: tuple[int, int] | None = None
        self._key_index = -1
        self._anchor_index = -1
        self._anchor_exact = False
        self._centres: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.float32), np.zeros(0, np.float32))
        self._chain = Chain.empty(cell)
        self._traced = 0  # frames with vectors stored since the chain's base

    def push(self, frame: DecodedFrame, *, is_key: bool) -> FlowToKey:
        """Flow of `frame` to the current keyframe (itself when `is_key`; forced for the first frame
        and when the frame size changes)."""
        frame_hw = (int(frame.rgb.shape[0]), int(frame.rgb.shape[1]))
        if is_key or frame_hw != self._frame_hw:
            return self._reset(frame, frame_hw)
        referenced = self._referenced_hop(frame, frame_hw)
        if referenced is not None:
            hop, reference, exact = referenced
        else:
            hop = motion_cells(frame.motion, frame_hw, self.cell, self.fill)
            reference = np.full(grid_shape(frame_hw, self.cell), self._anchor_index, np.int64)
            exact = hop is not None and self._anchor_exact and _single_hop(frame, self._anchor_index)
        x0, y0 = self._centres
        x, y = (x0, y0) if hop is None else (x0 + hop[0], y0 + hop[1])
        cells = self._chain.trace(x0, y0, x, y, reference)
        anchor = _is_anchor(frame)
        if referenced is not None or anchor:
            # No vectors: zero motion assumed; the frame is kept only as a pass-through to its reference.
            field = hop if hop is not None else np.zeros_like(cells)
            self._chain.add(frame.index, StoredHop(field, reference, cells, exact), keep=(self._anchor_index,))
            self._traced += hop is not None
        if anchor:
            self._anchor_index, self._anchor_exact = frame.index, exact
        if self._traced >= self.max_trace_hops:
            self._chain.rebase(frame.index)
            self._traced = 0
        return FlowToKey(frame.index, self._key_index, cells_to_pixels(cells, frame_hw, self.cell), exact)

    def _referenced_hop(
        self, frame: DecodedFrame, frame_hw: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, bool] | None:
        """(field, reference, exact) of a frame whose blocks name their reference frames (HEVC), None for
        other frames or when no block points into a frame of the chain.

        Blocks pointing before the keyframe (or to a frame not kept) are not used: they are filled like
        intra blocks, and the frame is not exact. Filled cells take the frame's most used reference (the
        nearest on a tie). Exact: every block points into the chain, to a frame whose flow is exact.
        """
        motion = frame.motion
        if motion is None or motion.ref_offset is None or len(motion) == 0:
            return None
        target = frame.index + motion.ref_offset.astype(np.int64)
        usable = (motion.source < 0) & np.isin(target, np.fromiter(self._chain.frames, np.int64))
        if not usable.any():
            return None
        values = np.vstack([motion.offset_px[usable].T, target[usable]]).astype(np.float64)
        grid, covered = paint_blocks(motion, usable, values, frame_hw, self.cell)
        field = fill_uncovered(grid[:2].astype(np.float32), covered, self.fill)
        reference = np.where(covered, grid[2], _most_used(target[usable])).astype(np.int64)
        exact = bool(usable.all()) and all(self._chain.frames[int(t)].exact for t in np.unique(target))
        return field, reference, exact

    def _reset(self, frame: DecodedFrame, frame_hw: tuple[int, int]) -> FlowToKey:
        shape = grid_shape(frame_hw, self.cell)
        if frame_hw != self._frame_hw:
            rows, cols = np.indices(shape, dtype=np.float32)
            centre = (self.cell - 1) / 2
            self._centres = (cols * self.cell + centre, rows * self.cell + centre)
            self._frame_hw = frame_hw
        self._key_index = self._anchor_index = frame.index
        self._anchor_exact = _is_anchor(frame)
        zeros = np.zeros((2, *shape), np.float32)
        key = StoredHop(zeros, np.full(shape, frame.index, np.int64), zeros, True)
        self._chain = Chain(key, frame.index, self.cell)
        self._traced = 0
        return FlowToKey(frame.index, frame.index, np.zeros((2, *frame_hw), np.float32), True)


def flows_to_key(
    frames: Iterable[DecodedFrame], keyframe_interval: int | None = None
) -> Iterator[tuple[DecodedFrame, FlowToKey]]:
    """Each frame with its flow to the keyframe, keyframes chosen by `iframe_keyframe_reason` (the
    rule of `arseg segment --keyframe-policy iframe`): the first frame, each I-frame, and a frame
    `keyframe_interval` frames after the last keyframe, so that no frame is ever L or more frames from
    its keyframe. `keyframe_interval=None`: keyframes only at the first frame and at I-frames.
    """
    if keyframe_interval is not None and keyframe_interval < 1:
        raise ValueError(f"keyframe_interval must be >= 1, got {keyframe_interval}")
    accumulator = FlowAccumulator()
    since_key: int | None = None  # frames since the last keyframe (0 at the keyframe)
    for frame in frames:
        is_key = bool(iframe_keyframe_reason(frame, since_key, keyframe_interval))
        since_key = 0 if is_key or since_key is None else since_key + 1
        yield frame, accumulator.push(frame, is_key=is_key)


def flows_to_reference(frames: Iterable[DecodedFrame]) -> Iterator[tuple[DecodedFrame, FlowToKey]]:
    """Each frame with its own backward field to its reference frame (no accumulation).

    The reference is the frame right before it for streams with one reference and no B-frames, and
    for motion from the libx264 re-encode; otherwise it is the assumed one of `FlowAccumulator` (the
    latest earlier I/P frame). `FlowToKey.key_index` names that frame. Frames without a past vector
    (intra frames, the first frame) get zero flow and their own index. Where blocks name their
    reference (HEVC), `key_index` is the frame most of them point to, and `exact` says whether all do
    (several references mix frames in one field: use flows_to_key to compose them).
    """
    anchor: int | None = None
    anchor_hw: tuple[int, int] | None = None
    for frame in frames:
        frame_hw = (int(frame.rgb.shape[0]), int(frame.rgb.shape[1]))
        cells = motion_cells(frame.motion, frame_hw) if anchor is not None and anchor_hw == frame_hw else None
        if cells is None:
            record = FlowToKey(frame.index, frame.index, np.zeros((2, *frame_hw), np.float32), True)
        else:
            assert anchor is not None
            reference, exact = _named_reference(frame) or (anchor, _single_hop(frame, anchor))
            record = FlowToKey(frame.index, reference, cells_to_pixels(cells, frame_hw), exact)
        if _is_anchor(frame):
            anchor, anchor_hw = frame.index, frame_hw
        yield frame, record


def _named_reference(frame: DecodedFrame) -> tuple[int, bool] | None:
    """(the frame most past blocks point to, whether all blocks do) for motion that names its references."""
    motion = frame.motion
    if motion is None or motion.ref_offset is None or not (motion.source < 0).any():
        return None
    targets = frame.index + motion.ref_offset[motion.source < 0].astype(np.int64)
    return _most_used(targets), bool((targets == targets[0]).all()) and not (motion.source > 0).any()


def _most_used(indices: np.ndarray) -> int:
    """The most frequent of some frame indices; the latest on a tie."""
    values, counts = np.unique(indices, return_counts=True)
    return int(values[::-1][int(np.argmax(counts[::-1]))])
