"""The street's plan: a gently curving road with lanes, markings, curbs, sidewalks and verges.

Positions across the street are measured by the signed lateral offset `X - center(Z)` (metres, +
to the right when looking along +Z). For the gentle curves used here (slope <= ~0.3) this differs
from the perpendicular distance by a few per cent, which only makes a curved road slightly narrower.
Traffic keeps right: lanes right of the centre line run towards +Z.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from arseg_cli.synth.classes import Label


class Ground(IntEnum):
    """Kinds of ground surface; each has its own colour and label."""

    ROAD = 0
    MARK_WHITE = 1
    MARK_YELLOW = 2
    CURB = 3
    SIDEWALK = 4
    SIDEWALK_SEAM = 5
    VERGE = 6


GROUND_LABELS = np.array(
    [Label.ROAD, Label.ROAD, Label.ROAD, Label.SIDEWALK, Label.SIDEWALK, Label.SIDEWALK, Label.VOID], np.uint8
)

_LINE_W = 0.15  # painted line width, metres


@dataclass(frozen=True, slots=True)
class Street:
    """The plan of one clip's street.

    lanes_each_way: driving lanes per direction; lane_width, parking_width (0: no parking lane),
    curb_width, sidewalk_width: metres. The centre line is X = center(Z).
    crosswalks_z: Z (metres) of the near edge of each zebra crossing, each `crosswalk_depth` long.
    """

    lanes_each_way: int
    lane_width: float
    parking_width: float
    curb_width: float
    sidewalk_width: float
    curve_amplitude: float
    curve_period: float
    curve_phase: float
    dash_period: float
    dash_length: float
    tile_size: float
    crosswalks_z: tuple[float, ...] = field(default=())
    crosswalk_depth: float = 4.0

    @property
    def road_half_width(self) -> float:
        return self.lanes_each_way * self.lane_width + self.parking_width

    @property
    def sidewalk_inner(self) -> float:
        """Lateral offset where the sidewalk (after the curb) begins."""
        return self.road_half_width + self.curb_width

    @property
    def sidewalk_outer(self) -> float:
        return self.sidewalk_inner + self.sidewalk_width

    def center(self, z: np.ndarray | float) -> np.ndarray:
        """X of the centre line at `z` (metres); center(0) = 0."""
        w = 2 * np.pi / self.curve_period
        return self.curve_amplitude * (np.sin(w * np.asarray(z) + self.curve_phase) - np.sin(self.curve_phase))

    def slope(self, z: np.ndarray | float) -> np.ndarray:
        """dX/dZ of the centre line at `z`."""
        w = 2 * np.pi / self.curve_period
        return self.curve_amplitude * w * np.cos(w * np.asarray(z) + self.curve_phase)

    def lane_offset(self, lane: int) -> float:
        """Lateral offset of the middle of driving lane `lane` (0 = nearest the centre, >= 0: +Z
        direction; negative lanes -1, -2, ...: the opposite direction)."""
        side = 1.0 if lane >= 0 else -1.0
        index = lane if lane >= 0 else -lane - 1
        return side * (index + 0.5) * self.lane_width

    def bands(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ground across the street as bands of the lateral offset.

        Returns (bounds (n,) float32 sorted, kind (n+1,) int64 Ground per band, dashed (n+1,) bool):
        band i covers bounds[i-1] <= offset < bounds[i]; dashed bands are painted only on
        `dash_length` of every `dash_period` metres of Z.
        """
        half = self.road_half_width
        lines: list[tuple[float, Ground, bool]] = [(0.0, Ground.MARK_YELLOW, self.lanes_each_way == 1)]
        for k in range(1, self.lanes_each_way):
            lines += [(k * self.lane_width, Ground.MARK_WHITE, True), (-k * self.lane_width, Ground.MARK_WHITE, True)]
        # The edge line separates the lanes from the parking lane, or runs just inside the curb.
        edge = self.lanes_each_way * self.lane_width if self.parking_width > 0 else half - 0.3
        lines += [(edge, Ground.MARK_WHITE, False), (-edge, Ground.MARK_WHITE, False)]
        lines.sort(key=lambda line: line[0])
        bounds: list[float] = [-self.sidewalk_outer, -self.sidewalk_inner, -half]
        kinds: list[Ground] = [Ground.VERGE, Ground.SIDEWALK, Ground.CURB]
        dashed: list[bool] = [False, False, False]
        for position, kind, dash in lines:
            bounds += [position - _LINE_W / 2, position + _LINE_W / 2]
            kinds += [Ground.ROAD, kind]
            dashed += [False, dash]
        bounds += [half, self.sidewalk_inner, self.sidewalk_outer]
        kinds += [Ground.ROAD, Ground.CURB, Ground.SIDEWALK, Ground.VERGE]
        dashed += [False, False, False, False]
        return np.asarray(bounds, np.float32), np.asarray(kinds, np.int64), np.asarray(dashed, bool)


def random_street(rng: np.random.Generator) -> Street:
    """A random street: one or two lanes each way, maybe parking lanes, a straight or gently curving road."""
    lanes = int(rng.choice([1, 1, 2]))
    period = float(rng.uniform(250.0, 500.0))
    # Slope amplitude * 2 pi / period stays <= 0.3: gentle curves (see the module docstring).
    amplitude = float(rng.uniform(0.1, 0.3)) * period / (2 * np.pi) if rng.random() < 0.7 else 0.0
    return Street(
        lanes_each_way=lanes,
        lane_width=float(rng.uniform(3.0, 3.7)),
        parking_width=float(rng.uniform(2.0, 2.5)) if rng.random() < 0.35 else 0.0,
        curb_width=0.25,
        sidewalk_width=float(rng.uniform(2.0, 5.0)),
        curve_amplitude=amplitude,
        curve_period=period,
        curve_phase=float(rng.uniform(0, 2 * np.pi)),
        dash_period=float(rng.uniform(8.0, 12.0)),
        dash_length=float(rng.uniform(2.5, 4.0)),
        tile_size=float(rng.uniform(0.3, 0.6)),
    )
