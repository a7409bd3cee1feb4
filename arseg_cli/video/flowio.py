"""Flow files: Middlebury `.flo`, NumPy `.npy` and colour-wheel PNGs, one per frame (`arseg motion`).

Arrays are arseg's flow layout: (2, H, W) float32, pixels, channel 0 = dx (u), channel 1 = dy (v).
The format functions turn arrays into bytes and back; `FlowFileWriter` puts them in a directory (one
atomic file per frame, named by the zero-padded frame index) and `export_motion` runs the whole
stage for the CLI: decode -> per-frame or to-keyframe flow (motion.py) -> files.

`.flo` (Middlebury, Baker et al. 2011): the float 202021.25 (bytes "PIEH"), int32 width, int32
height, then H*W interleaved (u, v) float32 pairs, row by row, all little-endian.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from arseg_cli.errors import InputError, OptionsError
from arseg_cli.atomic_files import atomic_path, os_errors_as_output_errors, prepare_output_dir
from arseg_cli.scale_interval import check_keyframe_interval
from arseg_cli.video.decode import PartialDecodeError, VideoReader
from arseg_cli.video.motion import flows_to_key, flows_to_reference
from arseg_cli.video.probe import MotionRequest, Source
from arseg_cli.video.records import DecodedFrame, FlowToKey

FlowFormat = Literal["flo", "npy"]
FLOW_FORMATS: tuple[FlowFormat, ...] = ("flo", "npy")
#: Name of the per-run index written beside the flow files.
INDEX_NAME = "motion.json"

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


def flow_bytes(flow: np.ndarray, fmt: FlowFormat) -> bytes:
    """A (2, H, W) flow as the bytes of a `.flo` or `.npy` file."""
    return flo_bytes(flow) if _check_format(fmt) == "flo" else npy_bytes(flow)


def _check_format(fmt: str) -> FlowFormat:
    if fmt not in FLOW_FORMATS:
        raise OptionsError(f"unknown flow format {fmt!r}; choose one of {', '.join(FLOW_FORMATS)}")
    return fmt  # type: ignore[return-value]


class FlowFileWriter:
    """One flow file per frame in `directory`: `000123.flo` (or `.npy`), and `000123.png` colour-wheel
    pictures with `png`. Names are the frame index, zero-padded to `digits`; each file is written
    atomically. The directory must be new or empty unless `force` (then namesakes are replaced and
    other files left alone, see outputs.prepare_output_dir). `close()` writes the index (INDEX_NAME):
    each frame's picture type, the frame its flow points into, and whether the chain was exact.
    """

    def __init__(
        self, directory: str | Path, *, fmt: FlowFormat = "flo", png: bool = False, force: bool = False, digits: int = 6
    ) -> None:
        self.fmt: FlowFormat = _check_format(fmt)
        self.directory = prepare_output_dir(directory, force)
        self.png = png
        self.force = force
        self.digits = digits
        self.entries: list[dict[str, object]] = []

    def path_for(self, index: int, suffix: str) -> Path:
        return self.directory / f"{index:0{self.digits}d}.{suffix}"

    def write(self, record: FlowToKey, pict_type: str = "?") -> None:
        """Write one frame's flow (and its picture)."""
        self._put(self.path_for(record.index, self.fmt), flow_bytes(record.flow_px, self.fmt))
        if self.png:
            self._put(self.path_for(record.index, "png"), png_bytes(flow_to_rgb(record.flow_px)))
        self.entries.append(
            {"index": record.index, "pict_type": pict_type, "reference": record.key_index, "exact": record.exact}
        )

    def close(self, settings: dict[str, object]) -> Path:
        """Write the index with the run's `settings`; returns its path."""
        header = json.dumps({**settings, "format": self.fmt}, indent=1)
        frames = ",\n".join(f"  {json.dumps(entry)}" for entry in self.entries)  # one line per frame
        text = f'{header[:-2]},\n "frames": [\n{frames}\n ]\n}}\n'
        path = self.directory / INDEX_NAME
        self._put(path, text.encode())
        return path

    def _put(self, final: Path, data: bytes) -> None:
        with os_errors_as_output_errors(final), atomic_path(final, force=self.force) as temp:
            temp.write_bytes(data)


@dataclass(frozen=True, slots=True)
class MotionExport:
    """What `export_motion` writes.

    keyframe_interval: L, flow accumulated to a keyframe chosen every L frames (and at every intra frame, see
               motion.flows_to_key); None: each frame's own flow to its reference (the previous frame).
    fmt/png: file format, and whether colour-wheel pictures are written too.
    motion: where the vectors come from (decode.decode_frames' `motion`).
    """

    keyframe_interval: int | None = None
    fmt: FlowFormat = "flo"
    png: bool = False
    motion: MotionRequest = "auto"

    def __post_init__(self) -> None:
        if self.keyframe_interval is not None:
            check_keyframe_interval(self.keyframe_interval)
        _check_format(self.fmt)
        if self.motion == "none":
            raise OptionsError("motion 'none' gives no flow; use auto, bitstream or reencode")


@dataclass(frozen=True, slots=True)
class MotionExportResult:
    """What was written: `frames` flow files in `directory`, `keyframes` of them zero (keyframes or
    intra frames), `exact` of them from exact chains; `motion` is where the vectors came from."""

    directory: Path
    frames: int
    keyframes: int
    exact: int
    motion: str


def export_motion(
    source: Source,
    directory: str | Path,
    settings: MotionExport,
    *,
    force: bool = False,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> MotionExportResult:
    """Decode `source` (a path or '-') and write one flow file per frame into `directory`.

    The input is opened and checked before the directory is touched. `on_frame(done, total_or_None)`
    is called after each frame. A damaged input keeps the files of the frames that decoded and
    raises PartialDecodeError afterwards; an interrupted run leaves whole files only.
    """
    with VideoReader(source, motion=settings.motion) as reader:
        created = not Path(directory).exists()
        writer = FlowFileWriter(directory, fmt=settings.fmt, png=settings.png, force=force)
        index_settings: dict[str, object] = {
            "input": reader.info.name,
            "mode": "to-key" if settings.keyframe_interval is not None else "previous",
            "to_key": settings.keyframe_interval,
            "motion": reader.plan.source,
        }
        methods: set[str] = set()
        try:
            for decoded, record in _flows(reader, settings.keyframe_interval):
                writer.write(record, decoded.pict_type)
                if decoded.motion is not None:
                    methods.add(decoded.motion.method)
                    index_settings["motion"] = "reencode" if "x264-reencode" in methods else "bitstream"
                if on_frame is not None:
                    on_frame(len(writer.entries), reader.info.frame_count)
        except PartialDecodeError as error:
            writer.close(index_settings)
            raise PartialDecodeError(f"{error}; their flows are in {writer.directory}", error.frames_decoded) from None
        except BaseException:
            if created and not writer.entries:  # nothing decoded: leave no empty directory behind
                with contextlib.suppress(OSError):
                    writer.directory.rmdir()
            raise
        writer.close(index_settings)
    entries = writer.entries
    return MotionExportResult(
        directory=writer.directory,
        frames=len(entries),
        keyframes=sum(e["reference"] == e["index"] for e in entries),
        exact=sum(bool(e["exact"]) for e in entries),
        motion=str(index_settings["motion"]),
    )


def _flows(frames: Iterable[DecodedFrame], keyframe_interval: int | None) -> Iterator[tuple[DecodedFrame, FlowToKey]]:
    return flows_to_key(frames, keyframe_interval) if keyframe_interval is not None else flows_to_reference(frames)
