"""The dense backward flow of each frame composed back to the keyframe, and the keyframe rules of the stream.

Conventions (see records.py): flow is backward, (2, H, W) float32 in pixels, channel 0 = dx,
channel 1 = dy; pixel p of the current frame comes from p + flow(p) in the reference frame.

Each frame's own field comes from its block vectors on the 8 px cell grid (block_cells.py);
composition traces each cell centre back to the keyframe (`FlowAccumulator`), exact for whole-frame
pans of any sub-pixel size. docs/MOTION.md gives the measurements behind these choices and the policy
for B-frames and several references.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from arseg_cli.scale_interval import check_keyframe_interval
from arseg_cli.video._chain import Chain, StoredHop
from arseg_cli.video.block_cells import (
    CELL_PX,
    BlockCells,
    FillRule,
    cells_to_pixels,
    fill_uncovered,
    grid_shape,
    motion_cells,
)
from arseg_cli.video.records import DecodedFrame, FlowToKey

#: Picture types a later frame may predict from, as far as arseg assumes (B-frames are taken as
#: non-reference pictures; x264's B-pyramid breaks that assumption, see docs/MOTION.md).
_ANCHOR_TYPES = frozenset({"I", "P", "S", "SI", "SP", "?"})


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

    def push(self, frame: DecodedFrame, *, is_key: bool, cells: BlockCells | None = None) -> FlowToKey:
        """Flow of `frame` to the current keyframe (itself when `is_key`; forced for the first frame
        and when the frame size changes). cells: the frame's block cells when already rasterised (for
        the scheduler), on this accumulator's cell size."""
        frame_hw = (int(frame.rgb.shape[0]), int(frame.rgb.shape[1]))
        if is_key or frame_hw != self._frame_hw:
            return self._reset(frame, frame_hw)
        if cells is None:
            cells = BlockCells(frame.motion, frame_hw, self.cell)
        elif cells.cell != self.cell or cells.frame_hw != frame_hw:
            raise ValueError(f"cells of {cells.cell} px for {cells.frame_hw}, the accumulator works on {self.cell} px for {frame_hw}")
        referenced = self._referenced_hop(frame, cells)
        if referenced is not None:
            hop, reference, exact = referenced
        else:
            hop = cells.field(self.fill)
            reference = np.full(grid_shape(frame_hw, self.cell), self._anchor_index, np.int64)
            exact = hop is not None and self._anchor_exact and _single_hop(frame, self._anchor_index)
        x0, y0 = self._centres
        x, y = (x0, y0) if hop is None else (x0 + hop[0], y0 + hop[1])
        traced = self._chain.trace(x0, y0, x, y, reference)
        anchor = _is_anchor(frame)
        if referenced is not None or anchor:
            # No vectors: zero motion assumed; the frame is kept only as a pass-through to its reference.
            field = hop if hop is not None else np.zeros_like(traced)
            self._chain.add(frame.index, StoredHop(field, reference, traced, exact), keep=(self._anchor_index,))
            self._traced += hop is not None
        if anchor:
            self._anchor_index, self._anchor_exact = frame.index, exact
        if self._traced >= self.max_trace_hops:
            self._chain.rebase(frame.index)
            self._traced = 0
        return FlowToKey(frame.index, self._key_index, cells_to_pixels(traced, frame_hw, self.cell), exact)

    def _referenced_hop(self, frame: DecodedFrame, cells: BlockCells) -> tuple[np.ndarray, np.ndarray, bool] | None:
        """(field, reference, exact) of a frame whose blocks name their reference frames (HEVC), None for
        other frames or when no block points into a frame of the chain.

        Blocks pointing before the keyframe (or to a frame not kept) are not used: their cells are filled
        like intra blocks, and the frame is not exact. Filled cells take the frame's most used reference
        (the nearest on a tie). Exact: every block points into the chain, to a frame whose flow is exact.
        The cells' vectors and references come from the frame's one rasterisation (`cells`): a cell
        shared by several blocks (HEVC's 8x4 and AMP units) holds the last one's, usable or not.
        """
        motion = frame.motion
        offsets = cells.references()
        if motion is None or motion.ref_offset is None or offsets is None:
            return None
        kept = np.fromiter(self._chain.frames, np.int64)
        grid, covered = cells.raster()
        reference = frame.index + offsets
        usable_cells = covered & np.isin(reference, kept)
        if not usable_cells.any():
            return None
        target = frame.index + motion.ref_offset.astype(np.int64)
        usable = (motion.source < 0) & np.isin(target, kept)
        field = fill_uncovered(grid, usable_cells, self.fill)
        reference = np.where(usable_cells, reference, _most_used(target[usable]))
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
    if keyframe_interval is not None:
        check_keyframe_interval(keyframe_interval)
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
