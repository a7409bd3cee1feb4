"""Flow fields to and from bytes: Middlebury `.flo`, NumPy `.npy`, and colour-wheel PNG pictures.

Arrays are arseg's flow layout: (2, H, W) float32, pixels, channel 0 = dx (u), channel 1 = dy (v).
Functions here turn arrays into bytes and back; where the bytes go (atomically, into which file) is
the caller's business, so one atomic writer serves every format.

`.flo` (Middlebury, Baker et al. 2011): the float 202021.25 (bytes "PIEH"), int32 width, int32
height, then H*W interleaved (u, v) float32 pairs, row by row, all little-endian.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from arseg_cli.errors import InputError

FLO_MAGIC = 202021.25
_FLO_HEADER = np.dtype([("magic", "<f4"), ("width", "<i4"), ("height", "<i4")])

#: Hue ramps of the Middlebury colour wheel, in order around the circle: (steps, from, to), colours
#: as RGB 0..255. The step counts are the published ones (Baker et al.), chosen so that roughly
#: perceptually equal angles get equal numbers of hues.
_WHEEL_RAMPS = (
    (15, (255, 0, 0), (255, 255, 0)),  # red -> yellow
    (6, (255, 255, 0), (0, 255, 0)),  # yellow -> green
    (4, (0, 255, 0), (0, 255, 255)),  # green -> cyan
    (11, (0, 255, 255), (0, 0, 255)),  # cyan -> blue
    (13, (0, 0, 255), (255, 0, 255)),  # blue -> magenta
    (6, (255, 0, 255), (255, 0, 0)),  # magenta -> red
)


def _check_flow(flow: np.ndarray) -> np.ndarray:
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must be (2, H, W), got shape {flow.shape}")
    return np.asarray(flow, np.float32)


def flo_bytes(flow: np.ndarray) -> bytes:
    """A (2, H, W) flow as the bytes of a Middlebury `.flo` file (exact: float32 values kept)."""
    flow = _check_flow(flow)
    header = np.array([(FLO_MAGIC, flow.shape[2], flow.shape[1])], _FLO_HEADER)
    body = np.ascontiguousarray(flow.transpose(1, 2, 0), dtype="<f4")  # H, W, (u, v) interleaved
    return header.tobytes() + body.tobytes()


def flow_from_flo(data: bytes, name: str = "flow") -> np.ndarray:
    """Parse `.flo` bytes into a (2, H, W) float32 flow; InputError if they are not a valid `.flo`."""
    if len(data) < _FLO_HEADER.itemsize:
        raise InputError(f"{name}: too short to be a .flo file ({len(data)} bytes)")
    header = np.frombuffer(data, _FLO_HEADER, count=1)[0]
    if header["magic"] != np.float32(FLO_MAGIC):
        raise InputError(f"{name}: not a .flo file (bad magic number)")
    width, height = int(header["width"]), int(header["height"])
    expected = _FLO_HEADER.itemsize + 8 * width * height
    if width < 1 or height < 1 or len(data) != expected:
        raise InputError(f"{name}: .flo header says {width}x{height} but the file has {len(data)} bytes")
    body = np.frombuffer(data, "<f4", offset=_FLO_HEADER.itemsize).reshape(height, width, 2)
    return np.ascontiguousarray(body.transpose(2, 0, 1), dtype=np.float32)


def npy_bytes(flow: np.ndarray) -> bytes:
    """A (2, H, W) flow as the bytes of a NumPy `.npy` file, float32."""
    buffer = io.BytesIO()
    np.save(buffer, _check_flow(flow), allow_pickle=False)
    return buffer.getvalue()


def read_flow(path: str | Path) -> np.ndarray:
    """Read a `.flo` or `.npy` flow file into (2, H, W) float32 (never unpickles)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    if path.suffix.lower() != ".npy":
        return flow_from_flo(data, str(path))
    try:
        flow = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        raise InputError(f"{path}: not a valid .npy file ({error})") from None
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise InputError(f"{path}: expected a (2, H, W) array, got shape {flow.shape}")
    return flow.astype(np.float32, copy=False)


def _colour_wheel() -> np.ndarray:
    """The Middlebury wheel: (55, 3) float32 RGB in 0..1, hue index 0 = red, going round the circle."""
    hues = []
    for steps, start, end in _WHEEL_RAMPS:
        t = np.arange(steps, dtype=np.float32)[:, None] / steps
        hues.append((1 - t) * np.asarray(start, np.float32) + t * np.asarray(end, np.float32))
    return np.concatenate(hues) / 255.0


_WHEEL = _colour_wheel()


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code a flow the Middlebury way: (H, W, 3) uint8 RGB.

    Hue gives the direction (interpolated between the 55 wheel colours; a vector pointing right,
    +x, is red), saturation the length relative to `max_magnitude` (default: the largest finite
    length in this field): zero motion is white, full length the pure wheel colour, longer vectors are
    darkened to 75%. Non-finite vectors are black. Remember arseg's flow is backward: the colour
    shows where each pixel's content comes from.
    """
    flow = _check_flow(flow)
    u, v = flow[0], flow[1]
    valid = np.isfinite(u) & np.isfinite(v)
    u = np.where(valid, u, 0.0)
    v = np.where(valid, v, 0.0)
    radius = np.hypot(u, v)
    scale = float(radius.max(initial=0.0)) if max_magnitude is None else float(max_magnitude)
    radius = radius / scale if scale > 0 else np.zeros_like(radius)
    # Angle measured so that (-1, 0) lands on hue 0 (red), going round the wheel counter-clockwise.
    position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (len(_WHEEL) - 1)
    lower = np.floor(position).astype(np.intp)
    upper = (lower + 1) % len(_WHEEL)
    weight = (position - lower)[..., None]
    colour = (1 - weight) * _WHEEL[lower] + weight * _WHEEL[upper]
    inside = (radius <= 1)[..., None]
    colour = np.where(inside, 1 - radius[..., None] * (1 - colour), colour * 0.75)
    colour = np.where(valid[..., None], colour, 0.0)
    return np.clip(np.rint(colour * 255), 0, 255).astype(np.uint8)


def png_bytes(rgb: np.ndarray, compress_level: int = 1) -> bytes:
    """An (H, W, 3) uint8 image as PNG bytes (compression level 1: fast, the pictures are for looking)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()
