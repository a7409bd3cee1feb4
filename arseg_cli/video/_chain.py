"""The frames of one keyframe's motion chain, and tracing points back through them (motion.FlowAccumulator).

Each stored frame has a piecewise-constant cell field (its hop), the display index of the frame each
cell's vector points into, and its own accumulated flow to the keyframe. A point is traced back from
frame to frame: the cell holding it in its current frame gives both its displacement and the frame it
moves into next, so blocks of one frame may point to different frames (HEVC with several references)
and each still composes exactly. Frames are visited from the newest down; since every reference is
an earlier frame, one pass moves every point all the way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Stored frames older than this (display frames behind the newest) are dropped, unless they are the
#: base or the anchor; a block pointing further back is not composed (no codec arseg reads refers
#: that far: HEVC's decoded picture buffer holds at most 16 pictures).
KEEP_FRAMES = 32


@dataclass(frozen=True, slots=True)
class StoredHop:
    """One frame of the chain.

    field:     (2, gh, gw) float32, the frame's own backward offsets per cell, pixels.
    reference: (gh, gw) int64, display index of the frame each cell's vector points into.
    to_key:    (2, gh, gw) float32, the frame's accumulated flow to the keyframe at the cell centres.
    exact:     the frame's flow to the keyframe is exact (motion.FlowAccumulator's rules).
    """

    field: np.ndarray
    reference: np.ndarray
    to_key: np.ndarray
    exact: bool


class Chain:
    """Stored frames since the keyframe, and the base: the frame at or below which points are not
    traced further but read its `to_key` bilinearly (the keyframe itself, until `rebase`)."""

    def __init__(self, key: StoredHop, key_index: int, cell: int) -> None:
        self.cell = cell
        self.key_index = key_index
        self.base_index = key_index
        self.frames: dict[int, StoredHop] = {key_index: key}

    @classmethod
    def empty(cls, cell: int) -> Chain:
        """A placeholder before the first keyframe."""
        zeros = np.zeros((2, 0, 0), np.float32)
        return cls(StoredHop(zeros, np.zeros((0, 0), np.int64), zeros, True), -1, cell)

    def add(self, index: int, hop: StoredHop, *, keep: tuple[int, ...] = ()) -> None:
        """Store frame `index`; drop frames more than KEEP_FRAMES behind it (except the base and `keep`)."""
        self.frames[index] = hop
        for old in [i for i in self.frames if i < index - KEEP_FRAMES and i != self.base_index and i not in keep]:
            del self.frames[old]

    def rebase(self, index: int) -> None:
        """Trace no further back than frame `index` from now on: points reaching it read its `to_key`."""
        self.base_index = index

    def traced_since_base(self) -> int:
        return sum(1 for index in self.frames if index > self.base_index)

    def trace(self, x0: np.ndarray, y0: np.ndarray, x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Flow to the keyframe (2, *x0.shape) float32 of points that started at (x0, y0) and now sit at
        (x, y) in frames `at` (display indices, all stored): each is moved through the stored frames
        after the base down to the base, then the `to_key` of the frame it reached is added."""
        at = at.copy()
        for index in sorted((i for i in self.frames if i > self.base_index), reverse=True):
            here = at == index
            if not here.any():
                continue
            stored = self.frames[index]
            if here.all():  # the usual case (one reference): whole arrays, no masking
                cells = cell_index(x, y, stored.field.shape[1:], self.cell)
                x, y = x + stored.field[0].reshape(-1).take(cells), y + stored.field[1].reshape(-1).take(cells)
                at = stored.reference.reshape(-1).take(cells).reshape(at.shape)
                continue
            cells = cell_index(x[here], y[here], stored.field.shape[1:], self.cell)
            x, y = x.copy(), y.copy()
            x[here] += stored.field[0].reshape(-1).take(cells)
            y[here] += stored.field[1].reshape(-1).take(cells)
            at[here] = stored.reference.reshape(-1).take(cells)
        flow = np.stack([x - x0, y - y0])
        for index in np.unique(at):
            if index == self.key_index:
                continue
            here = at == index
            if here.all():
                flow += sample_bilinear(self.frames[int(index)].to_key, x, y, self.cell)
            else:
                flow[:, here] += sample_bilinear(self.frames[int(index)].to_key, x[here], y[here], self.cell)
        return flow


def cell_index(x: np.ndarray, y: np.ndarray, grid_hw: tuple[int, int], cell: int) -> np.ndarray:
    """Flat index of the cell holding each point (pixel coordinates), clamped to the border cells.

    Cell i spans pixels cell*i .. cell*i + cell - 1, i.e. the interval [cell*i - 0.5, cell*(i+1) - 0.5).
    """
    gh, gw = grid_hw
    cx = np.clip(((x + 0.5) * (1.0 / cell)).astype(np.intp), 0, gw - 1)
    cy = np.clip(((y + 0.5) * (1.0 / cell)).astype(np.intp), 0, gh - 1)
    return cy * gw + cx


def sample_bilinear(field: np.ndarray, x: np.ndarray, y: np.ndarray, cell: int) -> np.ndarray:
    """A field given at cell centres (2, gh, gw), sampled bilinearly at points in pixel coordinates
    (clamped to the outermost centres). Returns (2, *x.shape) float32."""
    gh, gw = field.shape[1:]
    gx = np.clip((x - (cell - 1) / 2) / cell, 0, gw - 1)
    gy = np.clip((y - (cell - 1) / 2) / cell, 0, gh - 1)
    x0 = np.minimum(gx.astype(np.intp), max(gw - 2, 0))
    y0 = np.minimum(gy.astype(np.intp), max(gh - 2, 0))
    x1 = np.minimum(x0 + 1, gw - 1)
    y1 = np.minimum(y0 + 1, gh - 1)
    fx = gx - x0
    fy = gy - y0
    top = field[:, y0, x0] * (1 - fx) + field[:, y0, x1] * fx
    bottom = field[:, y1, x0] * (1 - fx) + field[:, y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)
