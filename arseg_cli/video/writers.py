"""Writers for segmentation results: label PNGs, colour and overlay videos, lossless label video, raw bytes.

Every writer streams (one frame in, written out, memory flat), has `write(...)` per frame and
`close()`, and is a context manager. Labels are always (H, W) uint8 class ids; 255 (ignore) and any
id outside the palette is drawn black.

Atomicity and interruption: files are written under a temporary name beside the final
one (arseg_cli.atomic_files) and renamed when complete, and an existing output needs `force`.
When the code *using* a writer fails or is interrupted (Ctrl-C, a corrupt input mid-stream), leaving
the `with` block still finalises the output: the frames written so far form a valid, playable file
under the final name. When the writer itself fails (disk full), the temporary is deleted and the
final name is left as it was. A video with no frames is never written. Label PNGs are atomic one by
one, so every PNG present is complete. Ctrl-C arriving *inside* a write or while a video is being
finished is held until that step is done (a packet lost between encoder and muxer would break every
frame after it), then raised as usual; `frames_written` already counts that frame.

Timing: videos take each frame's `pts` in units of `time_base` (pass the input stream's values to
keep variable timing) and optionally its `duration`; without them frames are 1/fps apart. The last
frame lasts `duration` or 1/fps, so the output's duration equals the input's. Times are kept as
given, a non-zero start included, except that a negative start is moved to 0 (_sink.Timeline).

Sizes: H.264 in yuv420p needs even width and height (its frame cropping works in 2-pixel steps for
4:2:0, so an odd size cannot be signalled): colour and overlay videos of odd-sized input are padded
by one replicated row/column on the bottom/right. Label PNGs, the lossless label video and raw
output keep the exact size.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
from av.video.reformatter import Colorspace, VideoReformatter
from PIL import Image

from arseg_cli.errors import InputError, OptionsError
from arseg_cli.atomic_files import AtomicFile, atomic_path, is_stdout, prepare_output_dir
from arseg_cli.palettes import Palette
from arseg_cli.video._sink import Target, VideoSink, Writer, stream_name
from arseg_cli.video.x264 import X264_PRESETS, x264_params

# Colour videos are converted and tagged as BT.709, limited range, so players and decoders
# (PyAV uses the tags) agree on the colours; an untagged stream is read as BT.601 or BT.709
# depending on the player.
_BT709 = 1  # AVCOL_SPC/PRI/TRC_BT709
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


def _check_labels(labels: np.ndarray) -> np.ndarray:
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels must be (H, W) uint8 class ids, got {labels.shape} {labels.dtype}")
    return labels


def _size_changed(output: str, before: tuple[int, ...], after: tuple[int, ...]) -> InputError:
    """The frame size changed mid-stream: an input problem for outputs of one size (an InputError is a ValueError)."""
    return InputError(
        f"the frame size changes from {before[0]}x{before[1]} to {after[0]}x{after[1]}: the frames of {output} "
        "must all be one size (label PNGs take any)"
    )


def colorize(labels: np.ndarray, palette: Palette) -> np.ndarray:
    """(H, W) uint8 class ids -> (H, W, 3) uint8 RGB palette colours (ids outside the palette: black)."""
    return np.take(palette.lut(), _check_labels(labels), axis=0)  # ~4x faster than lut[labels]


def blend(rgb: np.ndarray, labels: np.ndarray, palette: Palette, opacity: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 image blended with the palette colours of (H, W) uint8 `labels`.

    out = (1 - opacity) * rgb + opacity * colour, with opacity in 1/256 steps and rounding to nearest
    (in-place integer maths with premultiplied colours is ~2x faster than float here). Pixels whose
    id is outside the palette (255 = ignore) keep the image.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    if rgb.shape != (*labels.shape, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"image must be {(*labels.shape, 3)} uint8 to match the labels, got {rgb.shape} {rgb.dtype}")
    alpha = np.zeros(256, np.uint16)
    alpha[: palette.num_classes] = round(opacity * 256)
    premultiplied = palette.lut().astype(np.uint16) * alpha[:, None]
    mixed = rgb.astype(np.uint16)
    mixed *= (256 - np.take(alpha, _check_labels(labels)))[..., None]
    mixed += np.take(premultiplied, labels, axis=0)
    mixed += 128
    mixed >>= 8
    return mixed.astype(np.uint8)


class LabelPngWriter(Writer):
    """One palette-mode ("P") PNG per frame in `directory`: pixel values are class ids, and the
    stored 256-entry palette makes viewers show class colours. Names are the zero-padded frame
    index, `digits` wide (000123.png); wider indices just get longer names.

    Pillow's compress_level=1 is ~3x faster than its default 6 for ~20% larger label files
    (benchmarks/bench_writers.py). Each file is written atomically.
    """

    def __init__(
        self, directory: str | Path, palette: Palette, *, force: bool = False, digits: int = 6, compress_level: int = 1
    ) -> None:
        self.directory = prepare_output_dir(directory, force)
        self.force = force
        self.digits = digits
        self.compress_level = compress_level
        self._palette = palette.lut().tobytes()
        self.frames_written = 0

    def path_for(self, index: int) -> Path:
        return self.directory / f"{index:0{self.digits}d}.png"

    def write(self, labels: np.ndarray, index: int | None = None) -> Path:
        """Write (H, W) uint8 ids as frame `index` (default: the number of frames written so far)."""
        image = Image.fromarray(_check_labels(labels))
        image.putpalette(self._palette)  # mode L -> P, pixel values unchanged
        final = self.path_for(self.frames_written if index is None else index)
        with self._writing(final):
            with atomic_path(final, force=self.force) as temp:
                image.save(temp, format="PNG", compress_level=self.compress_level)
            self.frames_written += 1  # counted before a deferred Ctrl-C is raised
        return final




class _H264Sink(VideoSink):
    """RGB frames -> H.264 yuv420p (BT.709, limited range), odd sizes padded to even."""

    def __init__(
        self,
        target: Target,
        palette: Palette,
        fps: float | Fraction,
        *,
        time_base: Fraction | None = None,
        force: bool = False,
        crf: float = 18,
        preset: str = "veryfast",
        format: str | None = None,
    ) -> None:
        if preset not in X264_PRESETS:
            raise OptionsError(f"unknown x264 preset {preset!r}: use one of {', '.join(X264_PRESETS)}")
        if not 0 <= crf <= 51:
            raise OptionsError(f"crf must be between 0 and 51, got {crf:g}")
        super().__init__(target, fps=fps, time_base=time_base, force=force, format=format, stream_format="mp4")
        self.palette = palette
        self._options = {"crf": f"{crf:g}", "preset": preset}
        self._reformatter = VideoReformatter()
        self.size: tuple[int, int] | None = None

    def _write_rgb(self, rgb: np.ndarray, pts: int | None, duration: int | None) -> None:
        height, width = rgb.shape[:2]
        if self._stream is None:
            keyint = max(1, round(2 * self.fps))  # a keyframe every ~2 s keeps seeking cheap
            # Without mbtree the same labels always give the same bytes (a resumed run equals a whole one).
            options = {**self._options, "x264-params": x264_params(keyint, mbtree=False)}
            stream = self._open("libx264", "yuv420p", width + width % 2, height + height % 2, options)
            stream.thread_type = "FRAME"  # one slice per frame, output independent of the core count
            context = stream.codec_context
            context.colorspace = context.color_primaries = context.color_trc = _BT709
            context.color_range = _LIMITED_RANGE
            self.size = (width, height)
        elif (width, height) != self.size:
            raise _size_changed(self._name, self.size, (width, height))
        if width % 2 or height % 2:
            rgb = np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = self._reformatter.reformat(frame, format="yuv420p", dst_colorspace=Colorspace.ITU709)
        frame.colorspace, frame.color_range = _BT709, _LIMITED_RANGE
        self._encode(frame, pts, duration)


class ColorVideoWriter(_H264Sink):
    """Colour mask video: each frame's class ids drawn in palette colours, H.264 yuv420p.

    `target`: a path (container from the extension, .mp4 usual), '-' for stdout or a binary file
    object (then `format`, default 'mp4', written fragmented so no seeking is needed).
    `fps` is the nominal rate; `time_base` the unit of `pts`/`duration` (default 1/fps); `crf` and
    `preset` are libx264's quality and speed settings. Colours survive only approximately (4:2:0
    chroma and lossy coding: within 3 per channel on flat areas); use LabelVideoWriter for ids.
    The same labels always give the same file: x264's mbtree is off for that (the sample's colour video
    is ~40% larger than with it, its overlay ~20%).
    """

    def write(self, labels: np.ndarray, pts: int | None = None, duration: int | None = None) -> None:
        """Write (H, W) uint8 ids; `pts`, `duration` in units of `time_base` (default: 1/fps steps)."""
        self._write_rgb(colorize(labels, self.palette), pts, duration)


class OverlayVideoWriter(_H264Sink):
    """Overlay video: the input frame blended with the palette colours at `opacity` (see `blend`).

    `options`: the keyword options of ColorVideoWriter (time_base, force, crf, preset, format).
    """

    def __init__(
        self, target: Target, palette: Palette, fps: float | Fraction, *, opacity: float = 0.5, **options: Any
    ) -> None:
        if not 0.0 <= opacity <= 1.0:
            raise InputError(f"opacity must be between 0 and 1, got {opacity}")
        super().__init__(target, palette, fps, **options)
        self.opacity = opacity

    def write(
        self, labels: np.ndarray, rgb: np.ndarray, pts: int | None = None, duration: int | None = None
    ) -> None:
        """Write (H, W) uint8 ids over the (H, W, 3) uint8 RGB input frame they belong to."""
        self._write_rgb(blend(rgb, labels, self.palette, self.opacity), pts, duration)


LOSSLESS_CODECS = ("ffv1", "png")


class LabelVideoWriter(VideoSink):
    """Lossless label video: class ids as 8-bit grey frames, FFV1 in .mkv (default) or PNG in .mov.

    Decodes back to identical ids (`read_label_video`), at the exact input size. FFV1 is smaller and
    faster; PNG is more widely readable. FFmpeg muxes PNG into MOV/AVI/NUT but not Matroska, and
    FFV1 not into MOV. Matroska stores times in milliseconds.
    """

    def __init__(
        self,
        target: Target,
        fps: float | Fraction,
        *,
        codec: str = "ffv1",
        time_base: Fraction | None = None,
        force: bool = False,
        format: str | None = None,
    ) -> None:
        if codec not in LOSSLESS_CODECS:
            raise InputError(f"lossless codec must be one of {', '.join(LOSSLESS_CODECS)}, got {codec!r}")
        stream_format = "matroska" if codec == "ffv1" else "mov"  # Matroska has no PNG mapping in FFmpeg
        super().__init__(target, fps=fps, time_base=time_base, force=force, format=format, stream_format=stream_format)
        self.codec = codec
        self.size: tuple[int, int] | None = None

    def write(self, labels: np.ndarray, pts: int | None = None, duration: int | None = None) -> None:
        """Write (H, W) uint8 ids; `pts`, `duration` in units of `time_base` (default: 1/fps steps)."""
        height, width = _check_labels(labels).shape
        if self._stream is None:
            options = {"level": "3", "slices": "4", "threads": "auto"} if self.codec == "ffv1" else {}
            self._open(self.codec, "gray", width, height, options)
            self.size = (width, height)
        elif (width, height) != self.size:
            raise _size_changed(self._name, self.size, (width, height))
        self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(labels), format="gray"), pts, duration)


def read_label_video(source: str | Path | IO[bytes]) -> Iterator[np.ndarray]:
    """Yield the (H, W) uint8 class ids of each frame of a lossless label video, in order."""
    try:
        container = av.open(source if not isinstance(source, Path) else str(source))
    except (av.FFmpegError, OSError) as error:
        raise InputError(f"cannot open label video {source}: {error}") from None
    with container:
        for frame in container.decode(video=0):
            if frame.format.name != "gray":
                raise InputError(f"{source} is not a label video (pixel format {frame.format.name}, expected gray)")
            yield frame.to_ndarray()


class RawLabelWriter(Writer):
    """Raw labels: each frame as H*W uint8 bytes, row-major, no header and no separator.

    For pipelines (`arseg segment in.mp4 -o - | ffmpeg -f rawvideo -pix_fmt gray -s WxH -i - ...`):
    the reader must know W and H, so every frame must have the first frame's size. `target`: '-'
    (stdout, flushed but not closed), a binary file object, or a path (written atomically; an
    interrupted run keeps the whole frames written so far).
    """

    def __init__(self, target: Target = "-", *, force: bool = False) -> None:
        self._owned: IO[bytes] | None = None
        if isinstance(target, (str, Path)) and is_stdout(target):
            self._out: IO[bytes] = sys.stdout.buffer
        elif isinstance(target, (str, Path)):
            self._atomic = AtomicFile(target, force=force)
            self._out = self._owned = open(self._atomic.temp, "wb")  # noqa: SIM115 - closed in close()
        else:
            self._out = target
        self._name = stream_name(target)
        self.shape: tuple[int, int] | None = None
        self.frames_written = 0

    def write(self, labels: np.ndarray) -> None:
        """Append one frame's (H, W) uint8 ids."""
        if self.shape is None:
            self.shape = _check_labels(labels).shape  # type: ignore[assignment]
        elif _check_labels(labels).shape != self.shape:
            raise _size_changed(self._name, self.shape[::-1], labels.shape[::-1])
        with self._writing(self._name):
            self._out.write(np.ascontiguousarray(labels).tobytes())
            self.frames_written += 1

    def _finish(self) -> None:
        if self._owned is not None:
            self._owned.close()  # a file arseg opened; stdout and callers' streams stay open
        else:
            self._out.flush()

    def _release(self) -> None:
        if self._owned is not None:
            self._owned.close()


__all__ = [
    "LOSSLESS_CODECS",
    "X264_PRESETS",
    "ColorVideoWriter",
    "LabelPngWriter",
    "LabelVideoWriter",
    "OverlayVideoWriter",
    "RawLabelWriter",
    "blend",
    "colorize",
    "read_label_video",
]
