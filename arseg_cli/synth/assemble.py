"""Turns painted albedos and silhouettes into lit, textured quads: single panels, crossed pairs, boxes.

A placement is given by a point on the ground and a heading (a unit vector (hx, hz) in the world's
horizontal plane); quads are centred on that point. Shading is baked here (lighting.py), so a quad's
colours never change during the clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arseg_cli.synth.lighting import Look
from arseg_cli.synth.scene import STATIC, Quad
from arseg_cli.synth.textures import MipTexture


@dataclass(frozen=True, slots=True)
class Skin:
    """What a quad looks like: albedo (rows, cols, 3) float32 in [0, 1] and an optional silhouette."""

    albedo: np.ndarray
    alpha: np.ndarray | None = None


def texel_size(width_m: float, height_m: float, texels_per_m: float) -> tuple[int, int]:
    """(rows, cols) of a texture covering width_m x height_m at `texels_per_m` (at least 1 x 1)."""
    return max(1, round(height_m * texels_per_m)), max(1, round(width_m * texels_per_m))


def bake(look: Look, skin: Skin, normal_x: float, normal_z: float, facing: int = 0) -> MipTexture:
    """Light `skin` as a vertical face with horizontal normal (normal_x, normal_z) and mip-map it.

    A two-sided face (`facing` 0) is lit as if it turned towards the sun; a one-sided one (+1: the
    normal points outwards, -1: the opposite) only when its outside faces the sun.

    Texels outside the silhouette take the mean visible colour, so coarse mip levels do not bleed
    the background colour of the painter into the object's edges.
    """
    albedo = skin.albedo
    if skin.alpha is not None and skin.alpha.any() and not skin.alpha.all():
        albedo = albedo.copy()
        albedo[~skin.alpha] = albedo[skin.alpha].mean(axis=0)
    if facing:
        light = look.face_light(facing * normal_x, facing * normal_z, two_sided=False)
    else:
        light = look.face_light(normal_x, normal_z)
    return MipTexture.from_image(look.shade(albedo, light))


def panel(
    look: Look,
    skin: Skin,
    start: tuple[float, float],
    direction: tuple[float, float],
    width: float,
    y0: float,
    y1: float,
    label: int,
    mover: int = STATIC,
    facing: int = 0,
) -> Quad:
    """A quad whose bottom edge starts at `start` (X, Z) and runs `width` metres along `direction`
    (`facing`: see scene.Quad)."""
    ax, az = direction
    return Quad(
        x0=float(start[0]), z0=float(start[1]), ax=float(ax), az=float(az), width=float(width),
        y0=float(y0), y1=float(y1), texture=bake(look, skin, -az, ax, facing), alpha=skin.alpha, label=int(label),
        mover=int(mover), facing=facing,
    )  # fmt: skip


def start_of(centre: tuple[float, float], direction: tuple[float, float], width: float) -> tuple[float, float]:
    """The start point of a `width` metres long edge along `direction` centred on `centre` (X, Z)."""
    return centre[0] - direction[0] * width / 2, centre[1] - direction[1] * width / 2


def crossed(
    look: Look,
    along: Skin,
    across: Skin,
    centre: tuple[float, float],
    heading: tuple[float, float],
    length: float,
    breadth: float,
    y0: float,
    y1: float,
    label: int,
    mover: int = STATIC,
) -> list[Quad]:
    """Two quads crossing at `centre`: one `length` long along `heading`, one `breadth` wide across it."""
    side = (heading[1], -heading[0])
    return [
        panel(look, along, start_of(centre, heading, length), heading, length, y0, y1, label, mover),
        panel(look, across, start_of(centre, side, breadth), side, breadth, y0, y1, label, mover),
    ]


def box(
    look: Look,
    side_skins: tuple[Skin, Skin],
    end_skins: tuple[Skin, Skin],
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
        quads.append(panel(look, skin, start_of(mid, heading, length), heading, length, y0, y1, label, mover, facing=-sign))
    for sign, skin in zip((1, -1), end_skins):
        mid = (cx + sign * hx * length / 2, cz + sign * hz * length / 2)
        quads.append(panel(look, skin, start_of(mid, (sx, sz), breadth), (sx, sz), breadth, y0, y1, label, mover, facing=sign))
    return quads
