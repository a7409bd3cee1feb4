"""What one segment run is asked to do (`SegmentRequest`), and the rules its options obey: defaults,
ranges, and which options exclude or need each other. `arseg segment` parses its options into one;
Python callers build one and hand it to `arseg_cli.run`:

    from arseg_cli import SegmentRequest, run
    report = run(SegmentRequest(["street.mp4"], output="masks", video="colour.mp4"))

A request that breaks a rule raises OptionsError (OutOfRangeError for a value out of its range) when it
is made, before any file is read or written. The rules that need the machine (CUDA for `half`) are
checked by `run`. Imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from arseg_cli.choices import DEFAULT_POLICY, Backend, Device, KeyframePolicy, OnError
from arseg_cli.errors import OptionsError, OutOfRangeError
from arseg_cli.scale_interval import check_keyframe_interval, check_scale
from arseg_cli.video.limits import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from arseg_cli.palettes import Palette
    from arseg_cli.pipeline import Settings
    from arseg_cli.scaleout.jobs import JobOptions
    from arseg_cli.scaleout.ray_pool import WorkerSpec
    from arseg_cli.scaleout.shards import Shard


@dataclass(frozen=True)
class SegmentRequest:
    """One segment run: its inputs, outputs and options (names as the CLI's, docs/SEGMENT.md).

    inputs:   video files, directories (their videos), globs, `@list.txt` manifests, or '-' (stdin).
    output:   directory of label PNGs (several inputs: `output/<stem>/`), or '-': raw uint8 labels on
              standard output. video / overlay / lossless: colour mask, overlay and lossless label
              video files (with several inputs, base names inside `output/<stem>/`).
    weights:  arseg `.safetensors`, an official release directory, or official `hr=FILE` / `ar=FILE`
              / `lr=FILE`; empty: the default weights. arch: the architecture of official files.
    scale, keyframe_interval: the LR scale s in (0, 1] and keyframe interval L >= 1 (None: the
              weights'); s = 1 or L = 1 is per-frame HR (arseg_cli.scale_interval).
    policy:   keyframe policy; device: where the model runs; half: float16 (CUDA only).
    backend:  torch, or onnxruntime on the graphs in the directory `onnx` (`arseg export-onnx`).
    low_latency: frame by frame instead of whole keyframe groups; compile_attention: CReFF's
              attention through torch.compile (CPU only); cuda_graphs: replay the non-keyframe step
              from CUDA graphs (PyTorch on CUDA; elsewhere it runs eagerly, with a warning).
    palette:  a Palette, or a palette name / JSON file; None: the weights' classes and colours.
    opacity:  overlay opacity; start / end: the display indices to segment, [start, end).
    max_pixels: the largest frame decoded (0: FFmpeg's own limit).
    force:    replace existing outputs; resume: continue a stopped run into the same output directory.
    on_error: one input of several that cannot be segmented: go on with the others, or stop.
    ray / shard: scale-out (docs/SCALEOUT.md): a Ray address ('auto', 'local', HOST:PORT), or the
              K-th of N shards ('K/N'); workers, cpus_per_worker, gpus_per_worker size Ray's workers.
    """

    inputs: Sequence[str]
    output: str | None = None
    video: str | None = None
    overlay: str | None = None
    lossless: str | None = None
    weights: Sequence[str] = ()
    arch: str | None = None
    scale: float | None = None
    keyframe_interval: int | None = None
    policy: KeyframePolicy = DEFAULT_POLICY
    device: Device = Device.AUTO
    backend: Backend = Backend.TORCH
    onnx: str | None = None
    half: bool = False
    low_latency: bool = False
    compile_attention: bool = False
    cuda_graphs: bool = False
    palette: Palette | str | None = None
    opacity: float = 0.5
    start: int | None = None
    end: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    force: bool = False
    resume: bool = False
    on_error: OnError = OnError.CONTINUE
    ray: str | None = None
    shard: Shard | str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        for name in ("inputs", "weights"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(str(item) for item in value))
        for name, kind, what in (("policy", KeyframePolicy, "keyframe policy"), ("device", Device, "device"),
                                 ("backend", Backend, "backend"), ("on_error", OnError, "error policy")):  # fmt: skip
            object.__setattr__(self, name, kind.parse(getattr(self, name), what))
        self._check_values()
        self._check_outputs()
        if self.scaleout:
            self._check_scaleout()
        self._check_backend()

    @property
    def scaleout(self) -> bool:
        """Whether the run goes to arseg_cli.scaleout (Ray or a shard) rather than this process alone."""
        return self.ray is not None or self.shard is not None

    def _check_values(self) -> None:
        if not self.inputs:
            raise OptionsError("no input: give at least one video file, directory, glob, @list or '-'")
        if self.scale is not None:
            check_scale(self.scale)
        if self.keyframe_interval is not None:
            check_keyframe_interval(self.keyframe_interval)
        if not 0.0 <= self.opacity <= 1.0:
            raise OutOfRangeError(f"`opacity` must be in [0, 1], got {self.opacity}")
        if self.start is not None and self.start < 0:
            raise OutOfRangeError(f"`start` must be >= 0, got {self.start}")
        if self.end is not None and self.end < 1:
            raise OutOfRangeError(f"`end` must be >= 1, got {self.end}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise OptionsError(f"`end` ({self.end}) must be greater than `start` ({self.start})")
        if self.max_pixels < 0:
            raise OutOfRangeError(f"`max_pixels` must be >= 0 (0: no limit), got {self.max_pixels}")

    def _check_outputs(self) -> None:
        if self.resume and (self.output is None or self.output == "-"):
            raise OptionsError("`resume` continues from the label PNGs of the stopped run: give their directory as `output`")
        if self.resume and "-" in self.inputs:
            raise OptionsError("`resume` needs the input as a file: standard input cannot be read again")

    def _check_scaleout(self) -> None:
        from arseg_cli.scaleout.shards import Shard

        check_scaleout_paths(self.inputs, self.output)
        if self.backend is not Backend.TORCH:
            raise OptionsError("`ray` and `shard` run `backend` torch; `backend` onnxruntime runs in one process")
        if self.compile_attention and self.ray is not None:
            raise OptionsError("`compile_attention` is for one process; Ray workers run the uncompiled attention")
        if self.gpus_per_worker > 0 and self.ray is None:
            raise OptionsError("`gpus_per_worker` is for `ray` runs")
        if self.workers is not None and self.workers < 1:
            raise OutOfRangeError(f"`workers` must be >= 1, got {self.workers}")
        if self.cpus_per_worker < 0 or self.gpus_per_worker < 0:
            raise OutOfRangeError("`cpus_per_worker` and `gpus_per_worker` must be >= 0")
        if isinstance(self.shard, str):
            Shard.parse(self.shard)

    def _check_backend(self) -> None:
        """The ONNX graphs carry their own weights and run in float32: refuse options that would be ignored."""
        if self.backend is Backend.TORCH:
            if self.onnx is not None:
                raise OptionsError("`onnx` is for `backend` onnxruntime (the directory of the exported graphs)")
            return
        if self.onnx is None:
            raise OptionsError("`backend` onnxruntime needs `onnx`, the directory `arseg export-onnx` wrote")
        if self.weights or self.arch:
            raise OptionsError("`backend` onnxruntime runs the weights inside the graphs: drop `weights`/`arch`")
        if self.half:
            raise OptionsError("`half` is for the torch backend; the ONNX graphs are float32")
        if self.compile_attention:
            raise OptionsError("`compile_attention` is for the torch backend; onnxruntime runs the exported graphs as they are")
        if self.cuda_graphs:
            raise OptionsError("`cuda_graphs` is for the torch backend; onnxruntime runs the exported graphs as they are")

    def settings(self) -> Settings:
        """How frames are segmented (arseg_cli.pipeline.Settings)."""
        from arseg_cli.pipeline import Settings

        return Settings(scale=self.scale, keyframe_interval=self.keyframe_interval, policy=self.policy, half=self.half,
                        low_latency=self.low_latency, cuda_graphs=self.cuda_graphs)  # fmt: skip

    def load_palette(self) -> Palette | None:
        """The palette asked for, None for the weights' own."""
        from arseg_cli.palettes import load_palette

        return load_palette(self.palette) if isinstance(self.palette, str) else self.palette

    def job_options(self, compile_attention: bool) -> JobOptions:
        """How each video of a scale-out run is segmented (arseg_cli.scaleout.JobOptions)."""
        from arseg_cli.scaleout.jobs import JobOptions

        return JobOptions(settings=self.settings(), palette=self.load_palette(), opacity=self.opacity, start=self.start,
                          end=self.end, max_pixels=self.max_pixels, force=self.force,
                          compile_attention=compile_attention)  # fmt: skip

    def worker_spec(self) -> WorkerSpec:
        from arseg_cli.scaleout.ray_pool import WorkerSpec

        return WorkerSpec(workers=self.workers, cpus=self.cpus_per_worker, gpus=self.gpus_per_worker, device=self.device.value)

    def chosen_shard(self) -> Shard | None:
        """The shard this run takes (None: all inputs)."""
        from arseg_cli.scaleout.shards import Shard

        return Shard.parse(self.shard) if isinstance(self.shard, str) else self.shard


def check_scaleout_paths(inputs: Sequence[str], output: str | None) -> None:
    """Scale-out runs (Ray, shards) read input files and write each input's outputs under a directory."""
    if output is None or output == "-":
        raise OptionsError("`ray` and `shard` write each input's outputs under `output` (DIR/<stem>/): give a directory")
    if "-" in inputs:
        raise OptionsError("`ray` and `shard` read input files: not standard input")


__all__ = ["SegmentRequest", "check_scaleout_paths"]
