"""What a SynthStreet scene is made of: textured vertical quads, their motion, the ground and the sky.

Every object is built from vertical rectangles ("quads") standing on or above the ground: a facade
is one quad, a car a box of four, a tree or a pedestrian two crossed quads (so it keeps a body when
seen from any side). A quad has one label and moves rigidly with its object ("mover"), by pure
translation, which is what makes the ground-truth flow exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from arseg_cli.synth.lighting import Look
from arseg_cli.synth.street import Street
from arseg_cli.synth.textures import MipTexture

STATIC = 0  # mover id of everything that does not move


class Surface:
    """A quad's texture and silhouette, made on first use: most quads of a clip are never seen
    (hidden behind buildings or beyond the far plane), and painting is most of a scene's cost.

    `make()` returns (MipTexture of rows x cols texels, (rows, cols) bool silhouette or None); it must
    be deterministic (it draws from its own seeded generator), so when it runs does not matter.
    """

    __slots__ = ("rows", "cols", "_make", "_made")

    def __init__(self, rows: int, cols: int, make: Callable[[], tuple[MipTexture, np.ndarray | None]]) -> None:
        self.rows, self.cols = rows, cols
        self._make = make
        self._made: tuple[MipTexture, np.ndarray | None] | None = None

    def get(self) -> tuple[MipTexture, np.ndarray | None]:
        if self._made is None:
            texture, alpha = self._make()
            if (texture.height, texture.width) != (self.rows, self.cols):
                raise ValueError(f"painted {texture.height}x{texture.width} texels, expected {self.rows}x{self.cols}")
            self._made = texture, alpha
        return self._made


@dataclass(frozen=True, slots=True)
class Quad:
    """A textured vertical rectangle.

    Its bottom edge runs from (x0, z0) (world metres, at frame 0) along the horizontal unit vector
    (ax, az) for `width` metres; it spans heights y0..y1. Texture column 0 is at the (x0, z0) end,
    texture row 0 at the top (y1). `surface` gives the texture (display colours with the clip's
    light baked in) and the silhouette that cuts it out (None: the whole rectangle).
    `facing`: 0 for a quad seen from both sides; +1 (-1) for the face of a solid object that is seen
    only from the side its left-hand (right-hand) normal (-az, ax) (resp. (az, -ax)) points to.
    """

    x0: float
    z0: float
    ax: float
    az: float
    width: float
    y0: float
    y1: float
    surface: Surface
    label: int
    mover: int = STATIC
    facing: int = 0

    @property
    def texture(self) -> MipTexture:
        return self.surface.get()[0]

    @property
    def alpha(self) -> np.ndarray | None:
        return self.surface.get()[1]

    @property
    def texels_per_m_u(self) -> float:
        return self.surface.cols / self.width

    @property
    def texels_per_m_v(self) -> float:
        return self.surface.rows / (self.y1 - self.y0)


@dataclass(frozen=True, slots=True)
class GroundSurface:
    """The ground's look: a luminance texture tiled over the world and a colour per kind and luminance.

    lum:   one-channel MipTexture (uint8 luminance) tiling the plane, `texels_per_m` texels per metre.
    lut:   (len(Ground) * 256, 3) uint8: the display colour of kind k at luminance l is lut[k * 256 + l].
    """

    lum: MipTexture
    texels_per_m: float
    lut: np.ndarray


@dataclass(frozen=True, slots=True)
class SkyDome:
    """The sky as a panorama: rows = tan(elevation) from 0 to `tan_max`, columns = azimuth 0..2 pi.

    image: (rows, cols, 3) uint8 display colours.
    """

    image: np.ndarray
    tan_max: float


@dataclass(frozen=True, slots=True)
class Scene:
    """A whole clip's world.

    mover_xz: (movers, frames, 2) float64, each mover's (X, Z) displacement from its frame-0 position
              (metres); mover 0 (STATIC) is all zeros.
    """

    street: Street
    look: Look
    quads: tuple[Quad, ...]
    mover_xz: np.ndarray
    ground: GroundSurface
    sky: SkyDome

    @property
    def frames(self) -> int:
        return int(self.mover_xz.shape[1])
