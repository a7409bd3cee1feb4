"""The outputs of one segmentation run, opened one way for `arseg segment` and `arseg bench --video`.

`SegmentOutputs` takes one video's targets (`output_plan.OutputTargets`) and the input stream's timing
and opens every writer they ask for (`video.mask_outputs.MaskOutputs`):
- directories: the parent folder of each video file is created (label PNGs make their own);
- codec: the lossless label video is PNG in a `.mov` file, FFV1 otherwise;
- timestamps: videos (colour, overlay, lossless) keep the input's frame times, so they need its frame
  rate (InputError without one); PNGs and raw labels take any rate (the stream's, or 25). Frames are
  given their decoded pts only when the stream's time base is known, else they are 1/fps apart;
- resume: with `resume_from`, the label PNGs a stopped run wrote from that frame on (`resume.Resume`)
  are kept and not written again, and the model takes their labels instead of recomputing them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np

from arseg_cli.errors import OptionsError
from arseg_cli.output_plan import OutputKind, OutputTargets
from arseg_cli.palettes import Palette
from arseg_cli.resume import Resume
from arseg_cli.video.mask_outputs import MaskOutputs, Timing

#: Outputs whose frames carry the input's timestamps.
_TIMED = frozenset({OutputKind.COLOUR, OutputKind.OVERLAY, OutputKind.LOSSLESS})


class SegmentOutputs:
    """Every output of one run's targets, fed one segmented frame at a time; a context manager.

    fps, time_base: the input stream's nominal rate and timestamp unit (None when unknown).
    opacity: the overlay's blend; force: replace existing outputs of the same names.
    resume_from: continue a stopped run whose label PNGs start at this frame (`targets.png_dir` needed).
    """

    def __init__(
        self,
        targets: OutputTargets,
        palette: Palette,
        *,
        fps: Fraction | None,
        time_base: Fraction | None,
        opacity: float = 0.5,
        force: bool = False,
        resume_from: int | None = None,
    ) -> None:
        paths = targets.paths()
        if not paths:
            raise OptionsError("no output requested: the targets name no label PNG directory, video file or raw labels")
        if resume_from is not None and targets.png_dir is None:
            raise OptionsError("resuming continues from the label PNGs of the stopped run: give their directory")
        timing = Timing.of(fps, time_base) if paths.keys() & _TIMED else Timing(fps=Fraction(fps) if fps else Fraction(25))
        codec = "png" if str(paths.get(OutputKind.LOSSLESS, "")).lower().endswith(".mov") else "ffv1"
        for kind, path in paths.items():
            if kind is not OutputKind.PNG and path != "-":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.paths = paths
        self._with_pts = timing.time_base is not None
        self._outputs = MaskOutputs(".", list(paths), palette, timing, opacity=opacity, force=force,
                                    lossless_codec=codec, paths=paths)  # fmt: skip
        self.resume = None if resume_from is None else Resume.find(paths[OutputKind.PNG], resume_from)

    @property
    def described(self) -> dict[str, str]:
        """Output kind -> where it goes, as the run's summary reports them."""
        return {kind.value: str(path) for kind, path in self.paths.items()}

    def write(self, index: int, pts: int | None, labels: np.ndarray, rgb: np.ndarray) -> None:
        """One frame: its display index, decoded pts, (H, W) uint8 labels and (H, W, 3) uint8 input frame.
        A frame whose PNG the stopped run wrote goes to the other outputs only."""
        resumed = self.resume is not None and self.resume.has(index)
        self._outputs.write(labels, rgb if self._outputs.needs_rgb else None, index=index,
                            pts=pts if self._with_pts else None, skip=(OutputKind.PNG,) if resumed else ())  # fmt: skip

    def __enter__(self) -> SegmentOutputs:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._outputs.close()


__all__ = ["SegmentOutputs"]
