"""Turns skin recipes into lit, textured quads: single panels, crossed pairs, boxes.

A skin (albedo and silhouette) is described by a `Recipe`: a painter and its own random seed, drawn
when the scene is built. It is painted, lit and mip-mapped only when the quad is first drawn
(scene.Surface), and the same recipe always paints the same skin, whenever that happens. Shading is
baked in (lighting.py), so a quad's colours never change during the clip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from arseg_cli.synth.lighting import Look
from arseg_cli.synth.scene import STATIC, Quad, Surface
from arseg_cli.synth.textures import MipTexture


@dataclass(frozen=True, slots=True)
class Skin:
    """What a quad looks like: albedo (rows, cols, 3) float32 in [0, 1] and an optional silhouette."""

    albedo: np.ndarray
    alpha: np.ndarray | None = None


#: paint(rng, rows, cols) -> Skin of rows x cols texels.
Painter = Callable[[np.random.Generator, int, int], Skin]


@dataclass(frozen=True, slots=True)
class Recipe:
    """A skin of rows x cols texels to paint later with `paint`, from a generator seeded with `seed`."""

    paint: Painter
    rows: int
    cols: int
    seed: int

    def skin(self) -> Skin:
        return self.paint(np.random.default_rng(self.seed), self.rows, self.cols)


def recipe(rng: np.random.Generator, paint: Painter, width_m: float, height_m: float, texels_per_m: float) -> Recipe:
    """A recipe for a width_m x height_m skin at `texels_per_m` (at least 1 x 1 texel); its seed comes from `rng`."""
    rows, cols = max(1, round(height_m * texels_per_m)), max(1, round(width_m * texels_per_m))
    return Recipe(paint, rows, cols, int(rng.integers(2**63)))


def bake(look: Look, skin: Skin, light: np.ndarray) -> MipTexture:
    """Light `skin` with `light` ((3,) linear RGB) and mip-map it.

    Texels outside the silhouette take the mean visible colour, so coarse mip levels do not bleed
    the background colour of the painter into the object's edges.
    """
    albedo = skin.albedo
    if skin.alpha is not None and skin.alpha.any() and not skin.alpha.all():
        albedo = albedo.copy()
        albedo[~skin.alpha] = albedo[skin.alpha].mean(axis=0)
    return MipTexture.from_image(look.shade(albedo, light))


def face_light(look: Look, direction: tuple[float, float], facing: int) -> np.ndarray:
    """The light on a vertical quad running along `direction`: a two-sided one (`facing` 0) is lit
    as if turned towards the sun; a one-sided one (scene.Quad.facing) only when its outside is."""
    normal_x, normal_z = -direction[1], direction[0]
    if facing:
        return look.face_light(facing * normal_x, facing * normal_z, two_sided=False)
    return look.face_light(normal_x, normal_z)


def _surface(look: Look, skin: Recipe, light: np.ndarray) -> Surface:
    def make() -> tuple[MipTexture, np.ndarray | None]:
        painted = skin.skin()
        return bake(look, painted, light), painted.alpha

    return Surface(skin.rows, skin.cols, make)


def panel(
    look: Look,
    skin: Recipe,
    at: tuple[float, float],
    direction: tuple[float, float],
    width: float,
    y0: float,
    y1: float,
    label: int,
    *,
    centred: bool = False,
    mover: int = STATIC,
    facing: int = 0,
    light: np.ndarray | None = None,
) -> Quad:
    """A quad whose bottom edge runs `width` metres along `direction`, starting at `at` (X, Z), or
    centred on it with `centred`. `facing`: see scene.Quad. Lit by `light` (default: `face_light`)."""
    ax, az = direction
    x0, z0 = (at[0] - ax * width / 2, at[1] - az * width / 2) if centred else at
    surface = _surface(look, skin, face_light(look, direction, facing) if light is None else light)
    return Quad(
        x0=float(x0), z0=float(z0), ax=float(ax), az=float(az), width=float(width), y0=float(y0), y1=float(y1),
        surface=surface, label=int(label), mover=int(mover), facing=facing,
    )  # fmt: skip


def crossed(
    look: Look,
    along: Recipe,
    across: Recipe,
    centre: tuple[float, float],
    heading: tuple[float, float],
    length: float,
    breadth: float,
    y0: float,
    y1: float,
    label: int,
    mover: int = STATIC,
) -> list[Quad]:
    """Two quads crossing at `centre`: one `length` long along `heading`, one `breadth` wide across it.

    They stand for one rounded object (a trunk, a crown, a person), so both get its mean light.
    """
    side = (heading[1], -heading[0])
    light = look.round_light()
    return [
        panel(look, along, centre, heading, length, y0, y1, label, centred=True, mover=mover, light=light),
        panel(look, across, centre, side, breadth, y0, y1, label, centred=True, mover=mover, light=light),
    ]


def box(
    look: Look,
    side_skins: tuple[Recipe, Recipe],
    end_skins: tuple[Recipe, Recipe],
    centre: tuple[float, float],
    heading: tuple[float, float],
    length: float,
    breadth: float,
    y0: float,
    y1: float,
    label: int,
    mover: int = STATIC,
) -> list[Quad]:
    """A box of four faces: two sides `length` long along `heading`, front and back `breadth` wide.

    end_skins: (front, back); the front faces +heading. Each face is seen only from outside.
    """
    hx, hz = heading
    sx, sz = hz, -hx  # to the right of the heading
    cx, cz = centre
    quads = []
    for sign, skin in zip((1, -1), side_skins):
        mid = (cx + sign * sx * breadth / 2, cz + sign * sz * breadth / 2)
        # A side's left-hand normal points to the box's left, so the right side (+1) faces -1.
        quads.append(panel(look, skin, mid, heading, length, y0, y1, label, centred=True, mover=mover, facing=-sign))
    for sign, skin in zip((1, -1), end_skins):
        mid = (cx + sign * hx * length / 2, cz + sign * hz * length / 2)
        quads.append(panel(look, skin, mid, (sx, sz), breadth, y0, y1, label, centred=True, mover=mover, facing=sign))
    return quads
