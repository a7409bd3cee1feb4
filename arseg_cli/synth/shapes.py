"""Silhouettes: which texels of a quad belong to the object (bool masks, row 0 at the top).

Each function takes the texture size in texels and returns a (rows, cols) bool mask drawn in
normalised coordinates: u in [0, 1] left to right, v in [0, 1] top to bottom (texel centres).
They make the thin parts that are hard to segment: legs, spokes-less wheel rims, fence bars.
"""

from __future__ import annotations

import numpy as np


def grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(v, u) texel-centre coordinates in [0, 1], shaped (rows, 1) and (1, cols) for broadcasting."""
    v = ((np.arange(rows, dtype=np.float32) + 0.5) / rows)[:, None]
    u = ((np.arange(cols, dtype=np.float32) + 0.5) / cols)[None, :]
    return v, u


def _ellipse(v: np.ndarray, u: np.ndarray, cv: float, cu: float, rv: float, ru: float) -> np.ndarray:
    return ((v - cv) / rv) ** 2 + ((u - cu) / ru) ** 2 <= 1.0


def _box(v: np.ndarray, u: np.ndarray, v0: float, v1: float, u0: float, u1: float) -> np.ndarray:
    return (v >= v0) & (v < v1) & (u >= u0) & (u < u1)


def _segment(v: np.ndarray, u: np.ndarray, p: tuple[float, float], q: tuple[float, float], half: float,
             aspect: float) -> np.ndarray:
    """Texels within `half` (in v units) of the segment p-q; points are (v, u); `aspect` = width/height in metres."""
    pv, pu = p
    qv, qu = q
    du, dv = (qu - pu) * aspect, qv - pv
    length2 = max(du * du + dv * dv, 1e-9)
    t = np.clip(((u - pu) * aspect * du + (v - pv) * dv) / length2, 0.0, 1.0)
    ev, eu = v - (pv + t * dv), (u - pu) * aspect - t * du
    return ev * ev + eu * eu <= half * half


def crown(rows: int, cols: int, noise: np.ndarray) -> np.ndarray:
    """A tree crown: a ragged ellipse with a few holes; `noise` is (rows, cols) float in [0, 1]."""
    v, u = grid(rows, cols)
    radius = ((v - 0.5) / 0.5) ** 2 + ((u - 0.5) / 0.5) ** 2
    return (radius + 0.6 * (noise - 0.5) < 0.85) & (noise > 0.18)


def pedestrian_front(rows: int, cols: int, aspect: float, arms_out: float = 0.0) -> np.ndarray:
    """A person seen from the front or back: head, torso, arms, two legs with a gap between them."""
    v, u = grid(rows, cols)
    head = _ellipse(v, u, 0.065, 0.5, 0.065, 0.065 / aspect)
    neck = _box(v, u, 0.1, 0.16, 0.45, 0.55)
    torso = _box(v, u, 0.15, 0.52, 0.25, 0.75)
    arms = _box(v, u, 0.16, 0.5, 0.12 - arms_out, 0.25) | _box(v, u, 0.16, 0.5, 0.75, 0.88 + arms_out)
    legs = _box(v, u, 0.5, 1.0, 0.29, 0.48) | _box(v, u, 0.5, 1.0, 0.52, 0.71)
    return head | neck | torso | arms | legs


def pedestrian_side(rows: int, cols: int, aspect: float, stride: float) -> np.ndarray:
    """A person seen from the side, legs apart by `stride` (0 standing .. 1 full step)."""
    v, u = grid(rows, cols)
    head = _ellipse(v, u, 0.065, 0.5, 0.065, 0.065 / aspect)
    torso = _box(v, u, 0.12, 0.52, 0.36, 0.64)
    reach = 0.3 * stride
    legs = _segment(v, u, (0.5, 0.5), (0.98, 0.5 - reach), 0.045, aspect)
    legs |= _segment(v, u, (0.5, 0.5), (0.98, 0.5 + reach), 0.045, aspect)
    arm = _segment(v, u, (0.17, 0.5), (0.48, 0.5 + 0.6 * reach), 0.03, aspect)
    return head | torso | legs | arm


def bicyclist_side(rows: int, cols: int, aspect: float) -> np.ndarray:
    """Bicycle and rider from the side: two wheel rims (hollow), frame, rider leaning forward."""
    v, u = grid(rows, cols)
    wheel_r = 0.2  # of the height
    rims = np.zeros(np.broadcast_shapes(v.shape, u.shape), bool)
    for cu in (0.2, 0.8):
        dist = np.sqrt((v - (1 - wheel_r)) ** 2 + ((u - cu) * aspect) ** 2)
        rims |= (dist <= wheel_r) & (dist >= wheel_r - 0.03)
    frame = _segment(v, u, (1 - wheel_r, 0.2), (0.62, 0.45), 0.015, aspect)
    frame |= _segment(v, u, (0.62, 0.45), (1 - wheel_r, 0.55), 0.015, aspect)
    frame |= _segment(v, u, (0.62, 0.45), (0.6, 0.75), 0.015, aspect)
    frame |= _segment(v, u, (0.6, 0.75), (1 - wheel_r, 0.8), 0.015, aspect)
    rider = _segment(v, u, (0.58, 0.42), (0.25, 0.58), 0.07, aspect)  # back
    rider |= _ellipse(v, u, 0.17, 0.64, 0.065, 0.065 / aspect)
    rider |= _segment(v, u, (0.28, 0.58), (0.55, 0.74), 0.025, aspect)  # arm to the handlebar
    rider |= _segment(v, u, (0.58, 0.42), (0.8, 0.5), 0.04, aspect)  # leg down to the pedal
    return rims | frame | rider


def bicyclist_back(rows: int, cols: int, aspect: float) -> np.ndarray:
    """Bicycle and rider from behind: a thin wheel, handlebar, the rider's back, head and legs."""
    v, u = grid(rows, cols)
    wheel = _box(v, u, 0.6, 1.0, 0.47, 0.53)
    bar = _box(v, u, 0.5, 0.53, 0.15, 0.85)
    back = _ellipse(v, u, 0.4, 0.5, 0.2, 0.3)
    head = _ellipse(v, u, 0.13, 0.5, 0.08, 0.08 / aspect)
    legs = _box(v, u, 0.55, 0.85, 0.33, 0.43) | _box(v, u, 0.55, 0.85, 0.57, 0.67)
    return wheel | bar | back | head | legs


def car_side(rows: int, cols: int, aspect: float, ground_gap: float) -> np.ndarray:
    """A car's side: body, cabin with sloping pillars, wheels, and the gap to the road between them."""
    v, u = grid(rows, cols)
    body = _box(v, u, 0.45, 1.0 - ground_gap, 0.0, 1.0)
    slope = (v - 0.05) / 0.4  # 0 at the roof, 1 at the belt line
    cabin = (v >= 0.05) & (v < 0.45) & (u >= 0.28 - 0.1 * slope) & (u < 0.75 + 0.12 * slope)
    wheel_r = 0.2
    wheels = _ellipse(v, u, 1 - wheel_r, 0.18, wheel_r, wheel_r / aspect)
    wheels |= _ellipse(v, u, 1 - wheel_r, 0.82, wheel_r, wheel_r / aspect)
    return body | cabin | wheels


def car_end(rows: int, cols: int, ground_gap: float) -> np.ndarray:
    """A car's front or back: full-width body, a narrower cabin on top, two tyres below."""
    v, u = grid(rows, cols)
    body = _box(v, u, 0.45, 1.0 - ground_gap, 0.0, 1.0)
    inset = 0.08 + 0.1 * (0.45 - v) / 0.4
    cabin = (v >= 0.05) & (v < 0.45) & (u >= inset) & (u < 1 - inset)
    tyres = _box(v, u, 1.0 - ground_gap, 1.0, 0.06, 0.22) | _box(v, u, 1.0 - ground_gap, 1.0, 0.78, 0.94)
    return body | cabin | tyres


def lattice(rows: int, cols: int, bar_every: int, bar_width: int, rail_rows: tuple[int, ...]) -> np.ndarray:
    """A fence: vertical bars every `bar_every` texels, `bar_width` wide, and horizontal rails at `rail_rows`."""
    mask = np.zeros((rows, cols), bool)
    mask[:, (np.arange(cols) % bar_every) < bar_width] = True
    for row in rail_rows:
        mask[max(row, 0) : row + bar_width] = True
    return mask


def sign_plate(rows: int, cols: int, kind: str) -> np.ndarray:
    """A traffic sign's outline: 'circle', 'triangle', 'diamond', 'octagon' or 'rectangle'."""
    v, u = grid(rows, cols)
    if kind == "circle":
        return _ellipse(v, u, 0.5, 0.5, 0.5, 0.5)
    if kind == "triangle":
        return (v >= 0.1) & (np.abs(u - 0.5) <= 0.5 * (v - 0.1) / 0.9)
    if kind == "diamond":
        return np.abs(u - 0.5) + np.abs(v - 0.5) <= 0.5
    if kind == "octagon":
        return (np.abs(u - 0.5) <= 0.5) & (np.abs(v - 0.5) <= 0.5) & (np.abs(u - 0.5) + np.abs(v - 0.5) <= 0.7)
    return np.ones((rows, cols), bool)
