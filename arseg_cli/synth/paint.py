"""Albedo painters: the colours of facades, foliage, cars, clothes, signs (float32 RGB in [0, 1]).

Each painter returns a (rows, cols, 3) float32 image, row 0 at the top, texels of `texels_per_m`
per metre where the painter works in metres. Variety comes from the random generator and from noise
windows of the clip's NoiseBank; nothing here knows about light (lighting.py) or geometry (assemble.py).
"""

from __future__ import annotations

import numpy as np

from arseg_cli.synth.textures import NoiseBank

WALL_COLOURS = np.array(
    [[0.62, 0.36, 0.28], [0.72, 0.64, 0.52], [0.55, 0.55, 0.55], [0.82, 0.8, 0.74], [0.45, 0.3, 0.25],
     [0.7, 0.58, 0.4], [0.4, 0.42, 0.45], [0.78, 0.7, 0.62], [0.5, 0.55, 0.6], [0.85, 0.75, 0.55]], np.float32
)  # fmt: skip
CAR_COLOURS = np.array(
    [[0.8, 0.8, 0.82], [0.08, 0.08, 0.09], [0.45, 0.47, 0.5], [0.6, 0.05, 0.05], [0.1, 0.2, 0.5],
     [0.9, 0.9, 0.88], [0.25, 0.3, 0.25], [0.7, 0.55, 0.15], [0.35, 0.1, 0.1], [0.2, 0.35, 0.6]], np.float32
)  # fmt: skip
CLOTH_COLOURS = np.array(
    [[0.1, 0.1, 0.12], [0.2, 0.25, 0.45], [0.6, 0.1, 0.1], [0.85, 0.85, 0.8], [0.4, 0.35, 0.25],
     [0.2, 0.4, 0.25], [0.55, 0.5, 0.45], [0.9, 0.6, 0.1], [0.3, 0.3, 0.35], [0.5, 0.2, 0.45]], np.float32
)  # fmt: skip
SIGN_COLOURS = np.array(
    [[0.75, 0.1, 0.1], [0.1, 0.25, 0.7], [0.95, 0.8, 0.1], [0.1, 0.5, 0.2], [0.9, 0.9, 0.9]], np.float32
)
SKIN_COLOURS = np.array([[0.85, 0.65, 0.5], [0.6, 0.42, 0.3], [0.35, 0.24, 0.18], [0.92, 0.75, 0.62]], np.float32)


def _pick(rng: np.random.Generator, colours: np.ndarray, jitter: float = 0.06) -> np.ndarray:
    base = colours[rng.integers(len(colours))]
    return np.clip(base * rng.uniform(1 - jitter, 1 + jitter, 3).astype(np.float32), 0.0, 1.0)


def _modulate(base: np.ndarray, noise: np.ndarray, amount: float) -> np.ndarray:
    """base (3,) or (..., 3) colour times (1 + amount * (noise - 0.5)) for (rows, cols) noise."""
    return base * (1.0 + amount * (noise[..., None] - 0.5))


def facade(rng: np.random.Generator, bank: NoiseBank, rows: int, cols: int, texels_per_m: float) -> np.ndarray:
    """A building front: wall (plaster, brick or glass), storeys of windows, a ground floor, a cornice."""
    style = rng.choice(["plaster", "brick", "glass"], p=[0.45, 0.35, 0.2])
    wall = _pick(rng, WALL_COLOURS, 0.1)
    img = _modulate(wall, bank.window(rows, cols, 8.0, rng) * 0.6 + bank.window(rows, cols, 2.0, rng) * 0.4, 0.35)
    r = np.arange(rows)[:, None] / texels_per_m  # metres from the top
    c = np.arange(cols)[None, :] / texels_per_m
    if style == "brick":
        mortar = (np.mod(r, 0.075) < 0.012) | (np.mod(c + 0.12 * (np.mod(r, 0.15) < 0.075), 0.24) < 0.012)
        img = np.where(mortar[..., None], img * 1.25, img)
    storey = rng.uniform(2.8, 3.6)
    pitch = rng.uniform(2.0, 3.5)
    win_w = pitch * (rng.uniform(0.75, 0.92) if style == "glass" else rng.uniform(0.35, 0.6))
    win_h = storey * (rng.uniform(0.7, 0.85) if style == "glass" else rng.uniform(0.4, 0.55))
    height_m = rows / texels_per_m
    from_bottom = height_m - r
    floor_pos, col_pos = np.mod(from_bottom, storey), np.mod(c - rng.uniform(0, pitch), pitch)
    windows = (floor_pos > 0.9) & (floor_pos < 0.9 + win_h) & (col_pos < win_w) & (from_bottom > storey)
    windows &= r > rng.uniform(0.4, 1.2)  # a parapet at the top
    glass = np.array([0.12, 0.15, 0.2], np.float32) * rng.uniform(0.6, 1.6)
    reflection = bank.window(rows, cols, 32.0, rng)
    lit = rng.random((int(height_m // storey) + 2, int(cols / texels_per_m // pitch) + 2)) < 0.15
    lit_texel = lit[(from_bottom // storey).astype(int), (c // pitch).astype(int)]
    pane = _modulate(glass, reflection, 0.8) + 0.35 * lit_texel[..., None] * np.array([1.0, 0.85, 0.5], np.float32)
    frame = (np.abs(col_pos - win_w / 2) < 0.04) | (np.abs(floor_pos - 0.9 - win_h / 2) < 0.04)
    pane = np.where(frame[..., None], wall * 0.6, pane)
    img = np.where(windows[..., None], pane, img)
    shop = (from_bottom < storey * 0.85) & (from_bottom > 0.3) & (np.mod(c, rng.uniform(4, 8)) > 1.0)
    if rng.random() < 0.6:
        img = np.where(shop[..., None], _modulate(glass * 1.3, reflection, 0.6), img)
    cornice = (r < 0.35) | ((from_bottom > storey) & (from_bottom < storey + 0.2))
    img = np.where(cornice[..., None], wall * 0.7, img)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def side_wall(rng: np.random.Generator, bank: NoiseBank, rows: int, cols: int) -> np.ndarray:
    """A plain side or back wall of a building."""
    return np.clip(_modulate(_pick(rng, WALL_COLOURS, 0.1) * 0.9, bank.window(rows, cols, 8.0, rng), 0.3), 0, 1)


def leaf_colour(rng: np.random.Generator) -> np.ndarray:
    """(3,) float32 mean colour of a tree's leaves: greens, sometimes autumn."""
    if rng.random() < 0.15:
        return np.array([0.55, 0.35, 0.08], np.float32) * np.float32(rng.uniform(0.8, 1.1))
    return np.array([rng.uniform(0.12, 0.3), rng.uniform(0.3, 0.45), rng.uniform(0.05, 0.15)], np.float32)


def foliage(
    rng: np.random.Generator, bank: NoiseBank, rows: int, cols: int, green: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Leaves of colour `green`: dark and light clumps. Returns (albedo, the noise used, for the crown's outline)."""
    clumps = bank.window(rows, cols, 8.0, rng)
    fine = bank.window(rows, cols, 2.0, rng)
    img = _modulate(green, 0.55 * clumps + 0.45 * fine, 1.1)
    return np.clip(img, 0, 1).astype(np.float32), clumps


def rough(
    rng: np.random.Generator, bank: NoiseBank, rows: int, cols: int, colour: np.ndarray, amount: float = 0.4
) -> np.ndarray:
    """A plain material (bark, painted metal, plastic) of `colour` with some grain."""
    tint = colour * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    return np.clip(_modulate(tint, bank.window(rows, cols, 2.0, rng), amount), 0, 1).astype(np.float32)


def car_body(
    rng: np.random.Generator, bank: NoiseBank, rows: int, cols: int, paint: np.ndarray, end: str
) -> np.ndarray:
    """A car face: paint, dark windows above the belt line, dark tyres, lights and plate on the ends.

    end: 'side', 'front' or 'back'.
    """
    v, u = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
    img = np.broadcast_to(_modulate(paint, bank.window(rows, cols, 8.0, rng), 0.15), (rows, cols, 3)).copy()
    windows = (v > 0.1) & (v < 0.42) & (u > 0.05) & (u < 0.95)
    glass = np.array([0.08, 0.1, 0.12], np.float32)
    img[windows] = glass
    tyre = v > 0.8
    if end == "side":
        tyre &= (np.abs(u - 0.18) < 0.09) | (np.abs(u - 0.82) < 0.09)
        img[(v > 0.44) & (v < 0.46)] *= 0.6  # door sill line
    else:
        lamp = np.array([0.9, 0.1, 0.1] if end == "back" else [1.0, 1.0, 0.9], np.float32)
        img[(v > 0.5) & (v < 0.6) & ((u < 0.18) | (u > 0.82))] = lamp
        img[(v > 0.62) & (v < 0.72) & (np.abs(u - 0.5) < 0.13)] = [0.9, 0.9, 0.85]  # plate
        img[(v > 0.75) & (v < 0.82)] *= 0.4  # bumper
    img[tyre] = [0.05, 0.05, 0.05]
    return np.clip(img, 0, 1).astype(np.float32)


def outfit(rng: np.random.Generator) -> np.ndarray:
    """(4, 3) float32 colours of a person: hair, skin, top, bottom."""
    hair = np.array([0.1, 0.07, 0.05], np.float32) * rng.uniform(0.5, 3.0)
    return np.stack([hair, _pick(rng, SKIN_COLOURS), _pick(rng, CLOTH_COLOURS), _pick(rng, CLOTH_COLOURS)])


def person(colours: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Clothes by height bands: hair, face, a top, trousers or a skirt, dark shoes. colours: see `outfit`."""
    v = ((np.arange(rows) + 0.5) / rows)[:, None, None]
    hair, skin, top, bottom = colours
    img = np.where(v < 0.05, hair, np.where(v < 0.14, skin, np.where(v < 0.5, top, bottom)))
    img = np.where(v > 0.96, np.float32(0.06), img)
    return np.broadcast_to(img, (rows, cols, 3)).astype(np.float32)


def sign_face(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A sign's face: a coloured field, a light border and a simple dark or light symbol."""
    v = ((np.arange(rows) + 0.5) / rows)[:, None]
    u = ((np.arange(cols) + 0.5) / cols)[None, :]
    field = SIGN_COLOURS[rng.integers(len(SIGN_COLOURS))]
    img = np.broadcast_to(field, (rows, cols, 3)).copy()
    edge = np.minimum(np.minimum(u, 1 - u), np.minimum(v, 1 - v))
    img[edge < 0.08] = [0.92, 0.92, 0.92]
    symbol = (np.abs(u - 0.5) < 0.08) & (np.abs(v - 0.5) < 0.28) if rng.random() < 0.5 else (
        (np.abs(v - 0.5) < 0.08) & (np.abs(u - 0.5) < 0.3))
    img[symbol] = [0.05, 0.05, 0.05] if field.sum() > 2 else [0.95, 0.95, 0.95]
    return img.astype(np.float32)


def poster(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Colourful blocks: advertising boards, kiosks, bins, anything labelled void."""
    blocks = rng.random((4, 3, 3)).astype(np.float32)
    ri = np.minimum(np.arange(rows) * 4 // max(rows, 1), 3)
    ci = np.minimum(np.arange(cols) * 3 // max(cols, 1), 2)
    return blocks[ri[:, None], ci[None, :]]
