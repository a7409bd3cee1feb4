"""Static scenery along the street: buildings, street lamps, signs, traffic lights, trees, fences,
clutter and parked cars.

Everything is placed by (Z along the street, signed lateral offset) and turned into world
coordinates on the street's curve. The density of each kind varies from clip to clip, and thin
things (lamp posts, sign posts, railings) and small ones (signs) are frequent on purpose: they are
where a low-resolution segmentation fails.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from arseg_cli.synth import paint, shapes
from arseg_cli.synth.assemble import Recipe, Skin, box, crossed, panel, recipe
from arseg_cli.synth.classes import Label
from arseg_cli.synth.lighting import Look
from arseg_cli.synth.scene import STATIC, Quad
from arseg_cli.synth.street import Street
from arseg_cli.synth.textures import NoiseBank

FACADE_TEXELS_PER_M = 16.0
THING_TEXELS_PER_M = 40.0
#: car_factory(centre (X, Z), heading (hx, hz), mover) -> the quads of a car (actors.ActorBuilder.car_quads).
CarFactory = Callable[[tuple[float, float], tuple[float, float], int], list[Quad]]
POLE_GREYS = np.array([[0.45, 0.45, 0.47], [0.2, 0.22, 0.2], [0.55, 0.5, 0.42], [0.15, 0.2, 0.15]], np.float32)


def street_point(street: Street, z: float, lateral: float) -> tuple[float, float]:
    """World (X, Z) of the point `lateral` metres right of the centre line at `z`."""
    return float(street.center(z)) + lateral, z


def heading_at(street: Street, z: float) -> tuple[float, float]:
    """Unit vector (hx, hz) along the street at `z`."""
    slope = float(street.slope(z))
    norm = float(np.hypot(slope, 1.0))
    return slope / norm, 1.0 / norm


def _rough(rng: np.random.Generator, rows: int, cols: int, *, bank: NoiseBank, colour: np.ndarray) -> Skin:
    return Skin(paint.rough(rng, bank, rows, cols, colour))


def _facade(rng: np.random.Generator, rows: int, cols: int, *, bank: NoiseBank, texels_per_m: float) -> Skin:
    return Skin(paint.facade(rng, bank, rows, cols, texels_per_m))


def _side_wall(rng: np.random.Generator, rows: int, cols: int, *, bank: NoiseBank) -> Skin:
    return Skin(paint.side_wall(rng, bank, rows, cols))


def _fence(
    rng: np.random.Generator, rows: int, cols: int, *, bank: NoiseBank, colour: np.ndarray, bar_every: int,
    bar_width: int, rails: tuple[float, ...],
) -> Skin:
    """Bars every `bar_every` texels, `bar_width` wide, and rails at fractions `rails` of the height."""
    rail_rows = tuple(min(round(r * rows), rows - bar_width) for r in rails)
    alpha = shapes.lattice(rows, cols, bar_every=bar_every, bar_width=bar_width, rail_rows=rail_rows)
    return Skin(paint.rough(rng, bank, rows, cols, colour, 0.3), alpha)


def _sign(rng: np.random.Generator, rows: int, cols: int, *, kind: str) -> Skin:
    return Skin(paint.sign_face(rng, rows, cols), shapes.sign_plate(rows, cols, kind))


def _traffic_light(rng: np.random.Generator, rows: int, cols: int, *, bank: NoiseBank, lit: int) -> Skin:
    housing = paint.rough(rng, bank, rows, cols, np.array([0.1, 0.1, 0.1], np.float32), 0.2)
    v = (np.arange(rows) + 0.5) / rows
    for i, colour in enumerate(([1.0, 0.15, 0.1], [1.0, 0.75, 0.1], [0.2, 1.0, 0.4])):
        band = np.abs(v - (i + 0.5) / 3) < 0.1
        housing[band, cols // 4 : 3 * cols // 4] = np.array(colour) * (1.0 if i == lit else 0.25)
    return Skin(housing)


def _crown(rng: np.random.Generator, rows: int, cols: int, *, bank: NoiseBank, green: np.ndarray) -> Skin:
    albedo, noise = paint.foliage(rng, bank, rows, cols, green)
    return Skin(albedo, shapes.crown(rows, cols, noise))


def _poster(rng: np.random.Generator, rows: int, cols: int) -> Skin:
    return Skin(paint.poster(rng, rows, cols))


class SceneryBuilder:
    """Collects the quads of the static scenery between z_from and z_to (metres along the street)."""

    def __init__(
        self, rng: np.random.Generator, bank: NoiseBank, look: Look, street: Street, detail: float = 1.0
    ) -> None:
        """`detail` scales texture resolution (1: for about 480-pixel-wide frames; less for small frames)."""
        self.rng, self.bank, self.look, self.street = rng, bank, look, street
        self.facade_k = FACADE_TEXELS_PER_M * detail
        self.thing_k = THING_TEXELS_PER_M * detail
        self.quads: list[Quad] = []

    def _rough(self, width: float, height: float, colour: np.ndarray) -> Recipe:
        return recipe(self.rng, partial(_rough, bank=self.bank, colour=colour), width, height, self.thing_k)

    def buildings(self, side: int, z_from: float, z_to: float) -> None:
        """A row of building blocks: front facade, two side walls; sometimes set back, sometimes an alley."""
        rng, street = self.rng, self.street
        z = z_from - rng.uniform(0, 20)
        while z < z_to:
            length = rng.uniform(8, 30)
            if rng.random() < 0.15:
                z += rng.uniform(3, 12)  # an alley: the verge and what is behind show through
                continue
            setback = 0.0 if rng.random() < 0.6 else rng.uniform(1.0, 6.0)
            height = rng.uniform(4, 12) if rng.random() < 0.35 else rng.uniform(10, 32)
            depth = rng.uniform(8, 16)
            lateral = side * (street.sidewalk_outer + setback)
            a = np.array(street_point(street, z, lateral))
            b = np.array(street_point(street, z + length, lateral))
            chord = float(np.linalg.norm(b - a))
            direction = tuple((b - a) / chord)
            outward = (side * direction[1], -side * direction[0])
            front = recipe(rng, partial(_facade, bank=self.bank, texels_per_m=self.facade_k), chord, height,
                           self.facade_k)
            # Faces are seen only from outside the block (scene.Quad.facing): the front from the street.
            self.quads.append(panel(self.look, front, tuple(a), direction, chord, 0.0, height, Label.BUILDING,
                                    facing=side))
            wall = recipe(rng, partial(_side_wall, bank=self.bank), depth, height, self.facade_k / 2)
            for corner, facing in ((a, -side), (b, side)):
                self.quads.append(panel(self.look, wall, tuple(corner), outward, depth, 0.0, height, Label.BUILDING,
                                        facing=facing))
            if setback > 1.5 and rng.random() < 0.6:
                self.fence(side * (street.sidewalk_outer + 0.2), z, z + length)
            z += length + (0 if rng.random() < 0.7 else rng.uniform(0.5, 3))

    def fence(self, lateral: float, z0: float, z1: float) -> None:
        """A fence or railing from z0 to z1: thin bars and rails (metal) or vertical boards (wood)."""
        rng = self.rng
        height = rng.uniform(0.9, 1.6)
        a, b = np.array(street_point(self.street, z0, lateral)), np.array(street_point(self.street, z1, lateral))
        length = float(np.linalg.norm(b - a))
        if length < 0.5:
            return
        k = self.thing_k
        if rng.random() < 0.6:
            colour = POLE_GREYS[rng.integers(len(POLE_GREYS))]
            spacing, bar, rails = rng.uniform(0.1, 0.25), 2, (0.0, 0.5 if rng.random() < 0.5 else 0.85, 0.95)
        else:
            colour = np.array([0.5, 0.36, 0.22], np.float32)
            spacing, bar, rails = 0.15, max(3, round(0.11 * k)), (0.2, 0.75)
        style = partial(_fence, bank=self.bank, colour=colour, bar_every=max(bar + 1, round(spacing * k)),
                        bar_width=bar, rails=rails)
        skin = recipe(rng, style, length, height, k)
        self.quads.append(panel(self.look, skin, tuple(a), tuple((b - a) / length), length, 0.0, height, Label.FENCE))

    def lamp(self, side: int, z: float) -> None:
        """A street lamp: a thin mast (crossed quads) with an arm over the road and a lamp head."""
        rng, street = self.rng, self.street
        lateral = side * (street.sidewalk_inner + rng.uniform(0.3, 0.7))
        centre = street_point(street, z, lateral)
        heading = heading_at(street, z)
        height, width = rng.uniform(5.5, 9.5), rng.uniform(0.12, 0.25)
        colour = POLE_GREYS[rng.integers(len(POLE_GREYS))]
        mast = self._rough(width, height, colour)
        self.quads += crossed(self.look, mast, mast, centre, heading, width, width, 0.0, height, Label.POLE)
        reach = rng.uniform(0.8, 2.2)
        across = (-side * heading[1], side * heading[0])  # towards the road
        arm = self._rough(reach, 0.1, colour)
        self.quads.append(panel(self.look, arm, centre, across, reach, height - 0.25, height - 0.15, Label.POLE))
        head_at = (centre[0] + across[0] * reach, centre[1] + across[1] * reach)
        head = self._rough(0.6, 0.18, colour * 0.8)
        self.quads.append(panel(self.look, head, head_at, across, 0.6, height - 0.35, height - 0.12, Label.POLE,
                                centred=True))

    def sign(self, side: int, z: float) -> None:
        """A sign post (pole) with one or two small plates (sign) facing the traffic."""
        rng, street = self.rng, self.street
        lateral = side * (street.sidewalk_inner + rng.uniform(0.2, 0.6))
        centre = street_point(street, z, lateral)
        heading = heading_at(street, z)
        across = (heading[1], -heading[0])
        post_w, post_h = rng.uniform(0.05, 0.09), rng.uniform(2.2, 3.4)
        post = self._rough(post_w, post_h, np.array([0.55, 0.55, 0.57], np.float32))
        self.quads += crossed(self.look, post, post, centre, heading, post_w, post_w, 0.0, post_h, Label.POLE)
        top = post_h
        for _ in range(1 if rng.random() < 0.7 else 2):
            size = rng.uniform(0.4, 0.9)
            kind = str(rng.choice(["circle", "triangle", "diamond", "octagon", "rectangle"]))
            tall = size * (rng.uniform(1.0, 1.6) if kind == "rectangle" else 1.0)
            skin = recipe(rng, partial(_sign, kind=kind), size, tall, 2 * self.thing_k)
            # Slightly in front of the post (towards the oncoming traffic) so it is not inside it.
            plate = (centre[0] - side * heading[0] * 0.05, centre[1] - side * heading[1] * 0.05)
            self.quads.append(panel(self.look, skin, plate, across, size, top - tall, top, Label.SIGN, centred=True))
            top -= tall + 0.05

    def traffic_light(self, side: int, z: float) -> None:
        """A traffic light: a pole with a dark three-lamp housing (sign class, as in CamVid)."""
        rng, street = self.rng, self.street
        centre = street_point(street, z, side * (street.sidewalk_inner + 0.4))
        heading = heading_at(street, z)
        across = (heading[1], -heading[0])
        height = rng.uniform(2.8, 4.2)
        post = self._rough(0.14, height, np.array([0.25, 0.27, 0.25], np.float32))
        self.quads += crossed(self.look, post, post, centre, heading, 0.14, 0.14, 0.0, height, Label.POLE)
        housing = recipe(rng, partial(_traffic_light, bank=self.bank, lit=int(rng.integers(3))), 0.35, 1.0,
                         2 * self.thing_k)
        front = (centre[0] - side * heading[0] * 0.12, centre[1] - side * heading[1] * 0.12)
        self.quads.append(panel(self.look, housing, front, across, 0.35, height, height + 1.0, Label.SIGN,
                                centred=True))

    def tree(self, side: int, z: float, lateral: float) -> None:
        """A tree: a trunk and a ragged crown of leaves, each two crossed quads (tree class)."""
        rng, street = self.rng, self.street
        centre = street_point(street, z, side * lateral)
        heading = heading_at(street, z)
        trunk_h, trunk_w = rng.uniform(1.8, 3.5), rng.uniform(0.18, 0.4)
        bark = self._rough(trunk_w, trunk_h, np.array([0.3, 0.22, 0.15], np.float32))
        self.quads += crossed(self.look, bark, bark, centre, heading, trunk_w, trunk_w, 0.0, trunk_h + 0.5, Label.TREE)
        width, height = rng.uniform(2.5, 6.5), rng.uniform(3.0, 7.0)
        leaves = partial(_crown, bank=self.bank, green=paint.leaf_colour(rng))
        crowns = [recipe(rng, leaves, width, height, self.thing_k / 2) for _ in range(2)]
        # Crossed at 45 degrees to the street, so that neither plane is seen edge-on from the road.
        diagonal = (np.sqrt(0.5) * (heading[0] + heading[1]), np.sqrt(0.5) * (heading[1] - heading[0]))
        self.quads += crossed(self.look, crowns[0], crowns[1], centre, diagonal, width, width, trunk_h,
                              trunk_h + height, Label.TREE)

    def clutter(self, side: int, z: float) -> None:
        """Void things on the sidewalk: a bin, a box, an advertising board."""
        rng, street = self.rng, self.street
        lateral = side * rng.uniform(street.sidewalk_inner + 0.3, street.sidewalk_outer - 0.2)
        centre = street_point(street, z, lateral)
        heading = heading_at(street, z)
        width, depth, height = rng.uniform(0.4, 1.4), rng.uniform(0.3, 0.8), rng.uniform(0.6, 2.2)
        sides = [recipe(rng, _poster, depth, height, self.thing_k / 2) for _ in range(2)]
        ends = [recipe(rng, _poster, width, height, self.thing_k / 2) for _ in range(2)]
        self.quads += box(self.look, (sides[0], sides[1]), (ends[0], ends[1]), centre, heading, depth, width, 0.0,
                          height, Label.VOID)

    def parked_cars(self, side: int, z_from: float, z_to: float, car_factory: CarFactory) -> None:
        """Cars parked nose to tail in the parking lane, with gaps."""
        rng, street = self.rng, self.street
        if street.parking_width <= 0:
            return
        lateral = side * (street.road_half_width - street.parking_width / 2)
        occupancy = rng.uniform(0.2, 0.8)
        z = z_from + rng.uniform(0, 10)
        while z < z_to:
            if rng.random() < occupancy:
                heading = heading_at(street, z)
                self.quads += car_factory(street_point(street, z, lateral), heading, STATIC)
            z += rng.uniform(5.5, 8.0)

    def populate(self, z_from: float, z_to: float, car_factory: CarFactory) -> list[Quad]:
        """All the static scenery of both sides between z_from and z_to."""
        rng, street = self.rng, self.street
        lamp_every = rng.uniform(18, 40)
        sign_rate, tree_rate, clutter_rate = rng.uniform(0.01, 0.06), rng.uniform(0.0, 0.12), rng.uniform(0.01, 0.06)
        railing = rng.random() < 0.25
        for side in (-1, 1):
            self.buildings(side, z_from, z_to)
            self.parked_cars(side, z_from, z_to, car_factory)
            for z in np.arange(z_from + rng.uniform(0, lamp_every), z_to, lamp_every):
                self.lamp(side, float(z))
            for z in self._poisson(z_from, z_to, sign_rate):
                self.sign(side, z)
            for z in self._poisson(z_from, z_to, tree_rate):
                on_sidewalk = rng.random() < 0.7
                lateral = street.sidewalk_inner + 0.9 if on_sidewalk else street.sidewalk_outer + rng.uniform(1, 3)
                self.tree(side, z, lateral)
            for z in self._poisson(z_from, z_to, clutter_rate):
                self.clutter(side, z)
            if railing:  # pedestrian railings along the curb, in pieces
                for z in self._poisson(z_from, z_to, 0.02):
                    self.fence(side * (street.sidewalk_inner + 0.15), z, z + rng.uniform(5, 25))
        for z in street.crosswalks_z:
            for side in (-1, 1):
                self.traffic_light(side, z - side * 2.0)
        return self.quads

    def _poisson(self, z_from: float, z_to: float, rate_per_m: float) -> list[float]:
        count = self.rng.poisson(rate_per_m * (z_to - z_from))
        return sorted(float(z) for z in self.rng.uniform(z_from, z_to, count))
