"""Things that move on their own: cars in their lanes, pedestrians on the sidewalks and crossings,
bicyclists along the road's edge.

Each actor is one mover: all its quads translate together. An actor following the street moves
along the curve (its displacement per frame changes direction with the road) while its quads keep
their initial orientation; on the gentle curves used this is a small visual liberty and it keeps
every object's motion a pure translation, for which the ground-truth flow is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from arseg_cli.synth import paint, shapes
from arseg_cli.synth.assemble import Skin, box, crossed, recipe
from arseg_cli.synth.camera import CameraPath
from arseg_cli.synth.classes import Label
from arseg_cli.synth.layout import heading_at, street_point
from arseg_cli.synth.lighting import Look
from arseg_cli.synth.scene import Quad
from arseg_cli.synth.street import Street
from arseg_cli.synth.textures import NoiseBank

_TEXELS_PER_M = 40.0

Outline = Callable[[int, int], np.ndarray]  # (rows, cols) -> bool silhouette


def _car_face(
    rng: np.random.Generator, rows: int, cols: int, *, bank: NoiseBank, colour: np.ndarray, end: str, outline: Outline
) -> Skin:
    return Skin(paint.car_body(rng, bank, rows, cols, colour, end), outline(rows, cols))


def _dressed(rng: np.random.Generator, rows: int, cols: int, *, outfit: np.ndarray, outline: Outline) -> Skin:
    """A person's (or a bicyclist's) clothes in the shape `outline`."""
    return Skin(paint.person(outfit, rows, cols), outline(rows, cols))


class ActorBuilder:
    """Creates actors and their trajectories; mover ids start at 1 (0 is the static scenery)."""

    def __init__(
        self, rng: np.random.Generator, bank: NoiseBank, look: Look, street: Street, frames: int, fps: float,
        detail: float = 1.0,
    ) -> None:
        """`detail` scales texture resolution (1: for about 480-pixel-wide frames)."""
        self.rng, self.bank, self.look, self.street, self.fps = rng, bank, look, street, fps
        self.texels_per_m = _TEXELS_PER_M * detail
        self.seconds = np.arange(frames, dtype=np.float64) / fps
        self.quads: list[Quad] = []
        self.tracks: list[np.ndarray] = [np.zeros((frames, 2))]  # mover 0: static

    def _new_mover(self, track: np.ndarray) -> int:
        self.tracks.append(track)
        return len(self.tracks) - 1

    def _along_street(self, z0: float, lateral: float, speed: float) -> tuple[tuple[float, float], np.ndarray]:
        """Start point and (frames, 2) displacement of something moving at `speed` m/s along the street."""
        z = z0 + speed * self.seconds
        x = self.street.center(z) + lateral
        start = street_point(self.street, z0, lateral)
        return start, np.stack([x - start[0], z - z0], axis=1)

    def car_quads(self, centre: tuple[float, float], heading: tuple[float, float], mover: int) -> list[Quad]:
        """A car (or a van) as a box of four faces with a cabin, wheels and the gap under it."""
        rng = self.rng
        van = rng.random() < 0.12
        length = rng.uniform(4.6, 5.6) if van else rng.uniform(3.7, 4.9)
        breadth = rng.uniform(1.7, 2.0)
        height = rng.uniform(1.9, 2.4) if van else rng.uniform(1.42, 1.75)
        colour = paint.CAR_COLOURS[rng.integers(len(paint.CAR_COLOURS))]
        gap = 0.12
        face = partial(_car_face, bank=self.bank, colour=colour)
        side_outline = partial(shapes.car_side, aspect=length / height, ground_gap=gap)
        end_outline = partial(shapes.car_end, ground_gap=gap)
        sides = [recipe(rng, partial(face, end="side", outline=side_outline), length, height, self.texels_per_m)
                 for _ in range(2)]
        ends = [recipe(rng, partial(face, end=end, outline=end_outline), breadth, height, self.texels_per_m)
                for end in ("front", "back")]
        return box(self.look, (sides[0], sides[1]), (ends[0], ends[1]), centre, heading, length, breadth, 0.0, height,
                   Label.CAR, mover)

    def traffic(self, z_from: float, z_to: float, camera: CameraPath, ego_lane: int) -> None:
        """Cars in every driving lane; in the ego lane only ahead of the camera and never slower than it."""
        rng, street = self.rng, self.street
        duration = float(self.seconds[-1]) if self.seconds.size else 0.0
        ego_top_speed = float(np.max(np.diff(camera.z))) * self.fps if len(camera) > 1 else 0.0
        lanes = [lane for k in range(street.lanes_each_way) for lane in (k, -k - 1)]
        for lane in lanes:
            direction = 1.0 if lane >= 0 else -1.0
            speed = direction * rng.uniform(4.0, 15.0)
            start = z_from - abs(speed) * duration - 20
            if lane == ego_lane:
                speed = max(speed, ego_top_speed * rng.uniform(1.0, 1.2) + 0.5)
                start = float(camera.z[0]) + rng.uniform(8, 25)
            spacing = rng.uniform(12, 60)
            z = start + rng.uniform(0, spacing)
            while z < z_to + abs(speed) * duration + 20:
                begin, track = self._along_street(z, street.lane_offset(lane), speed)
                heading = heading_at(street, z)
                heading = heading if direction > 0 else (-heading[0], -heading[1])
                self.quads += self.car_quads(begin, heading, self._new_mover(track))
                z += spacing * rng.uniform(0.5, 1.5) + 6

    def pedestrian(self, centre: tuple[float, float], heading: tuple[float, float], mover: int, walking: bool) -> None:
        rng = self.rng
        height = rng.uniform(1.5, 1.95)
        breadth, length = 0.5 * height / 1.75, (0.65 if walking else 0.4) * height / 1.75
        outfit = paint.outfit(rng)
        stride = rng.uniform(0.5, 1.0) if walking else 0.1
        front_outline = partial(shapes.pedestrian_front, aspect=breadth / height)
        side_outline = partial(shapes.pedestrian_side, aspect=length / height, stride=stride)
        front = recipe(rng, partial(_dressed, outfit=outfit, outline=front_outline), breadth, height, self.texels_per_m)
        side = recipe(rng, partial(_dressed, outfit=outfit, outline=side_outline), length, height, self.texels_per_m)
        self.quads += crossed(self.look, side, front, centre, heading, length, breadth, 0.0, height, Label.PEDESTRIAN,
                              mover)

    def pedestrians(self, z_from: float, z_to: float, crossings_from_z: float) -> None:
        """People walking or standing on both sidewalks, and some crossing at zebra crossings far ahead."""
        rng, street = self.rng, self.street
        rate = rng.uniform(0.03, 0.25)
        for side in (-1, 1):
            for z in rng.uniform(z_from, z_to, rng.poisson(rate * (z_to - z_from))):
                lateral = side * rng.uniform(street.sidewalk_inner + 0.3, street.sidewalk_outer - 0.3)
                walking = rng.random() < 0.65
                speed = rng.choice([-1, 1]) * rng.uniform(0.8, 1.7) if walking else 0.0
                begin, track = self._along_street(float(z), lateral, speed)
                heading = heading_at(street, float(z))
                self.pedestrian(begin, heading, self._new_mover(track), walking)
        for z in street.crosswalks_z:
            if z < crossings_from_z:
                continue  # never where the ego car would drive through them
            for _ in range(rng.integers(0, 4)):
                start_side = rng.choice([-1, 1])
                lateral = start_side * rng.uniform(street.road_half_width, street.sidewalk_inner + 1.0)
                speed = -start_side * rng.uniform(0.9, 1.6)
                heading = heading_at(street, z)
                across = (heading[1] * -start_side, -heading[0] * -start_side)
                zc = z + rng.uniform(0.5, street.crosswalk_depth - 0.5)
                begin = street_point(street, zc, lateral)
                track = np.stack([across[0] * abs(speed) * self.seconds, across[1] * abs(speed) * self.seconds], axis=1)
                self.pedestrian(begin, across, self._new_mover(track), True)

    def bicyclists(self, z_from: float, z_to: float, camera: CameraPath, ego_lane: int) -> None:
        """Bicyclists riding with the traffic near the right edge of the driving lanes.

        When the camera drives in the outer lane, it never comes alongside a bicyclist of its own
        side: there is no room to pass in the lane, and this camera does not swerve.
        """
        rng, street = self.rng, self.street
        shares_lane = ego_lane == street.lanes_each_way - 1
        rate = rng.uniform(0.004, 0.02)
        duration = float(self.seconds[-1]) if self.seconds.size else 0.0
        for side in (-1, 1):
            speed = side * rng.uniform(3.0, 7.0)
            span = (z_from - abs(speed) * duration, z_to + abs(speed) * duration)
            for z in rng.uniform(*span, rng.poisson(rate * (span[1] - span[0]))):
                lateral = side * (street.lanes_each_way * street.lane_width - rng.uniform(0.5, 0.9))
                begin, track = self._along_street(float(z), lateral, speed)
                ahead = float(z) + track[:, 1] - camera.z
                if side > 0 and shares_lane and np.any((ahead > -3.0) & (ahead < 10.0)):
                    continue
                heading = heading_at(street, float(z))
                heading = heading if side > 0 else (-heading[0], -heading[1])
                height = rng.uniform(1.65, 1.9)
                length, breadth = 1.75, 0.6
                outfit = paint.outfit(rng)
                side_outline = partial(shapes.bicyclist_side, aspect=length / height)
                back_outline = partial(shapes.bicyclist_back, aspect=breadth / height)
                bike = recipe(rng, partial(_dressed, outfit=outfit, outline=side_outline), length, height,
                              self.texels_per_m)
                back = recipe(rng, partial(_dressed, outfit=outfit, outline=back_outline), breadth, height,
                              self.texels_per_m)
                self.quads += crossed(self.look, bike, back, begin, heading, length, breadth, 0.0, height,
                                      Label.BICYCLIST, self._new_mover(track))

    def mover_tracks(self) -> np.ndarray:
        """(movers, frames, 2) float64 displacements from frame 0, mover 0 static."""
        return np.stack(self.tracks)
