"""Where segmentation masks go: the output kinds and their file names, one video's targets
(`OutputTargets`), and the plan of one `arseg segment` call (its inputs and each one's targets).

Inputs: files, '-' (standard input), directories (the video files directly inside, by extension, in
name order), glob patterns (matches in name order) and manifests `@list.txt` (one path a line, relative
to the manifest's directory; blank lines and `#` comments skipped). Duplicates are segmented once.

Outputs: one input writes its label PNGs straight into `-o DIR` (or raw labels to stdout with `-o -`)
and its videos to the files given. Several inputs each get `DIR/<stem>/`: label PNGs in
`DIR/<stem>/labels/`, and the videos under the base names given (`--video colour.mp4` ->
`DIR/<stem>/colour.mp4`). Equal stems are told apart in input order: `clip`, `clip-2`, `clip-3`, ...
(standard input's stem is `stdin`). Every target is checked before any work starts.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from arseg_cli.atomic_files import check_writable, is_stdout
from arseg_cli.errors import InputNotFoundError, OptionsError, OutputExistsError

#: Extensions taken as videos when a directory is given.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".h264", ".264", ".hevc", ".265"}
)
_GLOB_CHARS = frozenset("*?[")


class OutputKind(StrEnum):
    """What can be written; the value is the name the CLI uses."""

    PNG = "png"  # DIR/labels/000000.png ...: palette-mode label PNGs named by frame index
    COLOUR = "colour"  # DIR/colour.mp4: class colours, H.264
    OVERLAY = "overlay"  # DIR/overlay.mp4: input blended with the class colours, H.264
    LOSSLESS = "lossless"  # DIR/labels.mkv (FFV1) or DIR/labels.mov (PNG codec): exact ids
    RAW = "raw"  # DIR/labels.raw, or standard output when DIR is '-': H*W uint8 bytes per frame


_BY_NAME = {kind.value: kind for kind in OutputKind} | {"labels": OutputKind.PNG, "color": OutputKind.COLOUR}


def parse_kinds(names: str | Iterable[OutputKind | str]) -> frozenset[OutputKind]:
    """Output kinds from their names, given one by one or comma-separated ('png,colour'); 'labels' =
    'png', 'color' = 'colour'. OptionsError if a name is unknown or none is given."""
    if isinstance(names, str):
        names = [names]
    kinds = set()
    for name in (part.strip() for entry in names for part in str(entry).split(",") if part.strip()):
        kind = _BY_NAME.get(name.lower())
        if kind is None:
            raise OptionsError(f"unknown output {name!r}: choose from {', '.join(OutputKind)}")
        kinds.add(kind)
    if not kinds:
        raise OptionsError(f"no output requested: choose from {', '.join(OutputKind)}")
    return frozenset(kinds)


def output_paths(
    directory: str | Path, kinds: Iterable[OutputKind], lossless_codec: str = "ffv1"
) -> dict[OutputKind, Path | str]:
    """Where each kind is written: a path under `directory` ('-' for raw labels on standard output)."""
    if is_stdout(directory):
        if set(kinds) != {OutputKind.RAW}:
            raise OptionsError("only raw labels can go to standard output ('-'); give a directory for the others")
        return {OutputKind.RAW: "-"}
    directory = Path(directory)
    names = {
        OutputKind.PNG: "labels",
        OutputKind.COLOUR: "colour.mp4",
        OutputKind.OVERLAY: "overlay.mp4",
        OutputKind.LOSSLESS: "labels.mov" if lossless_codec == "png" else "labels.mkv",
        OutputKind.RAW: "labels.raw",
    }
    return {kind: directory / names[kind] for kind in OutputKind if kind in set(kinds)}


@dataclass(frozen=True)
class OutputTargets:
    """Where one video's masks go: a directory of label PNGs, colour / overlay / lossless label video
    files, raw labels ('-' for standard output, or a file). At least one must be set."""

    png_dir: str | None = None
    colour: str | None = None
    overlay: str | None = None
    lossless: str | None = None
    raw: str | None = None

    def paths(self) -> dict[OutputKind, str]:
        chosen = {
            OutputKind.PNG: self.png_dir,
            OutputKind.COLOUR: self.colour,
            OutputKind.OVERLAY: self.overlay,
            OutputKind.LOSSLESS: self.lossless,
            OutputKind.RAW: self.raw,
        }
        return {kind: path for kind, path in chosen.items() if path is not None}


@dataclass(frozen=True, slots=True)
class Run:
    """One input and its targets. label: the name shown in progress and messages."""

    source: str
    label: str
    targets: OutputTargets


def expand_inputs(inputs: list[str]) -> list[str]:
    """Input arguments -> the video paths (or '-') to segment, in order, without duplicates."""
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if item == "-" or path.is_file():
            matches = [item]
        elif item.startswith("@") and len(item) > 1:
            matches = read_manifest(item[1:])
        elif path.is_dir():
            matches = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
            if not matches:
                raise InputNotFoundError(f"{item}: the directory holds no video files ({', '.join(sorted(VIDEO_EXTENSIONS))})")
        elif _GLOB_CHARS & set(item):
            matches = sorted(p for p in glob.glob(item) if Path(p).is_file())
            if not matches:
                raise InputNotFoundError(f"{item}: no file matches")
        else:
            raise InputNotFoundError(f"{item}: no such file")
        found.extend(m for m in matches if m not in found)
    return found


def read_manifest(manifest: str) -> list[str]:
    """The video paths listed in `manifest`, one a line, each an existing file."""
    path = Path(manifest)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputNotFoundError(f"@{manifest}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputNotFoundError(f"@{manifest}: cannot read the list: {error}") from None
    found = []
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        listed = Path(entry) if Path(entry).is_absolute() else path.parent / entry
        if not listed.is_file():
            raise InputNotFoundError(f"@{manifest}, line {number}: {entry}: no such file")
        found.append(str(listed))
    if not found:
        raise InputNotFoundError(f"@{manifest}: the list names no file")
    return found


def unique_stems(sources: list[str]) -> list[str]:
    """A distinct sub-directory name per source: its stem, then `-2`, `-3`, ... for repeats, in order."""
    names: list[str] = []
    for source in sources:
        stem = "stdin" if source == "-" else Path(source).stem
        name, count = stem, 1
        while name in names:
            count += 1
            name = f"{stem}-{count}"
        names.append(name)
    return names


def _refuse_shared_stems(sources: list[str]) -> None:
    """Shards name outputs over the input list each of them sees, which may grow between them: a
    `-2` suffix could then go to different inputs in different shards. So sharded inputs need
    distinct stems (OptionsError naming the first two that share one)."""
    seen: dict[str, str] = {}
    for source in sources:
        stem = Path(source).stem
        if stem in seen:
            raise OptionsError(f"{seen[stem]} and {source} share the name {stem!r}: sharded runs need inputs of distinct names")
        seen[stem] = source


def plan_runs(
    inputs: list[str],
    output: str | None,
    *,
    video: str | None = None,
    overlay: str | None = None,
    lossless: str | None = None,
    force: bool = False,
    subdirs: bool = False,
    keep: Callable[[str], bool] | None = None,
) -> list[Run]:
    """The runs of one call (module docstring); OptionsError for impossible combinations,
    OutputExistsError for an existing target without `force`. subdirs: `DIR/<stem>/` even for one input
    (scale-out runs, whose shards may hold one input each). keep: run only the inputs it accepts (a
    shard); names are still given over all inputs, and only the kept runs' targets are checked."""
    sources = expand_inputs(inputs)
    if output is None and video is None and overlay is None and lossless is None:
        raise OptionsError("no output: give `output` (a directory for label PNGs, or '-' for raw labels), `video`, `overlay` or `lossless`")
    if len(sources) == 1 and not subdirs:
        runs = [Run(sources[0], _label(sources[0]), _single_targets(output, video, overlay, lossless))]
    else:
        if output is None or is_stdout(output):
            raise OptionsError(f"{len(sources)} inputs: give `output` a directory (each input gets DIR/<stem>/); '-' takes one input")
        runs = []
        for source, stem in zip(sources, unique_stems(sources)):
            folder = Path(output) / stem
            targets = OutputTargets(
                png_dir=str(folder / "labels"),
                colour=_inside(folder, video),
                overlay=_inside(folder, overlay),
                lossless=_inside(folder, lossless),
            )
            runs.append(Run(source, _label(source), targets))
    if keep is not None:
        _refuse_shared_stems(sources)
        runs = [run for run in runs if keep(run.source)]
    _check_targets(runs, force)
    return runs


def _single_targets(output: str | None, video: str | None, overlay: str | None, lossless: str | None) -> OutputTargets:
    if output is not None and is_stdout(output):
        return OutputTargets(raw="-", colour=video, overlay=overlay, lossless=lossless)
    return OutputTargets(png_dir=output, colour=video, overlay=overlay, lossless=lossless)


def _inside(folder: Path, name: str | None) -> str | None:
    return None if name is None else str(folder / Path(name).name)


def _label(source: str) -> str:
    return "<stdin>" if source == "-" else Path(source).name


def _check_targets(runs: list[Run], force: bool) -> None:
    files: list[str] = []
    for run in runs:
        targets = run.targets
        for path in (targets.colour, targets.overlay, targets.lossless):
            if path is None:
                continue
            if is_stdout(path):
                raise OptionsError("only raw labels can go to standard output: give `video`, `overlay` and `lossless` files")
            if path in files:
                raise OptionsError(f"{path} is named as two outputs")
            files.append(path)
            if targets.png_dir is not None and Path(targets.png_dir).resolve() in Path(path).resolve().parents:
                raise OptionsError(f"{path}: put video outputs outside the label PNG directory {targets.png_dir}")
            check_writable(path, force)
        png = targets.png_dir
        if png is not None and Path(png).is_dir() and any(Path(png).iterdir()) and not force:
            raise OutputExistsError(f"{png} exists and is not empty; use `force` to write into it")


__all__ = [
    "VIDEO_EXTENSIONS",
    "OutputKind",
    "OutputTargets",
    "Run",
    "expand_inputs",
    "output_paths",
    "parse_kinds",
    "plan_runs",
    "read_manifest",
    "unique_stems",
]
