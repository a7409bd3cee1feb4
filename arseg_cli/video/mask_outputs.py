"""The mask outputs of one segmentation run, written together: one call per frame feeds them all.

`arseg segment` asks for a set of outputs by kind (`output_plan.OutputKind`); each lands under a fixed
name in one output directory (`output_plan.output_paths`) or at an explicit path, or, for raw labels
alone, on standard output when the directory is '-'. The writers themselves, and their atomicity and interruption policy, are in writers.py.

A frame goes to all outputs or to none: Ctrl-C during `write` is delivered once the frame is in
every output, so an interrupted run leaves all outputs with the same frames.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from arseg_cli.errors import InputError, OptionsError
from arseg_cli.output_plan import OutputKind, output_paths, parse_kinds
from arseg_cli.palettes import Palette
from arseg_cli.video._sink import Writer, interrupts_deferred
from arseg_cli.video.writers import (
    LOSSLESS_CODECS,
    ColorVideoWriter,
    LabelPngWriter,
    LabelVideoWriter,
    OverlayVideoWriter,
    RawLabelWriter,
)
from arseg_cli.video.x264 import as_fraction


@dataclass(frozen=True, slots=True)
class Timing:
    """The input video's timing, which the video outputs keep.

    fps:       nominal frame rate, frames per second (exact fraction, e.g. 30000/1001).
    time_base: unit of the per-frame `pts` and `duration` given to `MaskOutputs.write`, seconds;
               None means 1/fps (pts are frame numbers).
    """

    fps: Fraction
    time_base: Fraction | None = None

    @classmethod
    def of(cls, fps: float | Fraction | None, time_base: Fraction | None = None) -> Timing:
        """Timing from a stream's nominal rate and time base; InputError when the rate is unknown."""
        if not fps or fps <= 0:
            raise InputError(f"the input's frame rate is unknown ({fps}); video outputs need one")
        return cls(as_fraction(fps), Fraction(time_base) if time_base else None)


class MaskOutputs:
    """Writes each frame's labels to every requested output; a context manager.

    `directory`: output directory (created if missing) or '-' (raw labels only, to stdout).
    `kinds`: the outputs (OutputKind or their names). `palette`: class colours for PNGs and videos.
    `timing`: the input's frame rate and time base. `opacity`: overlay blend, 0..1.
    `force`: replace existing outputs of the same names (others are never touched).
    `lossless_codec`: 'ffv1' (.mkv) or 'png' (.mov). `paths`: explicit targets per kind (a directory for
    PNGs, files for videos, '-' for raw) instead of the fixed names under `directory`; `kinds` must name
    the same kinds. `crf`, `preset`: libx264 settings of the
    colour and overlay videos.

    Every output is checked before any frame is written: an existing output without `force`
    raises OutputExistsError and leaves nothing behind.
    """

    def __init__(
        self,
        directory: str | Path,
        kinds: str | Iterable[OutputKind | str],
        palette: Palette,
        timing: Timing,
        *,
        opacity: float = 0.5,
        force: bool = False,
        lossless_codec: str = "ffv1",
        crf: float = 18,
        preset: str = "veryfast",
        paths: Mapping[OutputKind, str | Path] | None = None,
    ) -> None:
        # Option errors first, before any output (or the directory) is created.
        if lossless_codec not in LOSSLESS_CODECS:
            raise OptionsError(f"lossless codec must be one of {', '.join(LOSSLESS_CODECS)}, got {lossless_codec!r}")
        if not 0.0 <= opacity <= 1.0:
            raise OptionsError(f"opacity must be between 0 and 1, got {opacity}")
        self.kinds = parse_kinds(kinds)
        self.paths = output_paths(directory, self.kinds, lossless_codec) if paths is None else dict(paths)
        self.frames_written = 0
        self._writers: dict[OutputKind, Any] = {}
        video = {"time_base": timing.time_base, "force": force, "crf": crf, "preset": preset}
        makers = {
            OutputKind.COLOUR: lambda p: ColorVideoWriter(p, palette, timing.fps, **video),
            OutputKind.OVERLAY: lambda p: OverlayVideoWriter(p, palette, timing.fps, opacity=opacity, **video),
            OutputKind.LOSSLESS: lambda p: LabelVideoWriter(
                p, timing.fps, codec=lossless_codec, time_base=timing.time_base, force=force
            ),
            OutputKind.RAW: lambda p: RawLabelWriter(p, force=force),
            # Last: it creates a directory, which should not happen when another output is refused.
            OutputKind.PNG: lambda p: LabelPngWriter(p, palette, force=force),
        }
        try:
            for kind, make in makers.items():
                if kind in self.paths:
                    self._writers[kind] = make(self.paths[kind])
        except BaseException:
            self.abort()
            raise

    @property
    def needs_rgb(self) -> bool:
        """True when the input frame must be passed to `write` (for the overlay)."""
        return OutputKind.OVERLAY in self._writers

    def write(
        self,
        labels: np.ndarray,
        rgb: np.ndarray | None = None,
        *,
        index: int | None = None,
        pts: int | None = None,
        duration: int | None = None,
        skip: Collection[OutputKind] = (),
    ) -> None:
        """Write one frame to every output (but those in `skip`).

        labels:   (H, W) uint8 class ids (255 = ignore).
        rgb:      (H, W, 3) uint8 input frame; required when the overlay is requested.
        index:    frame index naming the PNG (default: frames written so far).
        pts:      presentation time in `timing.time_base` units (None: 1/fps after the previous frame).
        duration: how long the frame shows, same units (None: 1/fps); matters for the last frame.
        """
        if self.needs_rgb and rgb is None:
            raise ValueError("the overlay output needs the input frame (rgb)")
        with interrupts_deferred():
            for kind, writer in self._writers.items():
                if kind in skip:
                    continue
                if kind is OutputKind.PNG:
                    writer.write(labels, index)
                elif kind is OutputKind.RAW:
                    writer.write(labels)
                elif kind is OutputKind.OVERLAY:
                    writer.write(labels, rgb, pts=pts, duration=duration)
                else:
                    writer.write(labels, pts=pts, duration=duration)
            self.frames_written += 1

    def close(self) -> None:
        """Finish every output (each keeps the frames written so far); raise the first failure after trying all."""
        self._end(Writer.close)

    def abort(self) -> None:
        """Remove every output under construction; final names are left as they were."""
        self._end(Writer.abort)

    def _end(self, end: Any) -> None:
        first: BaseException | None = None
        for writer in self._writers.values():
            try:
                end(writer)  # a writer whose own write failed throws its output away (Writer.close)
            except BaseException as error:  # noqa: BLE001 - re-raised below, after the others are done
                first = first or error
        if first is not None:
            raise first

    def __enter__(self) -> MaskOutputs:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["MaskOutputs", "OutputKind", "Timing", "output_paths", "parse_kinds"]
