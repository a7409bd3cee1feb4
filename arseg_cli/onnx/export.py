"""Export an ARSeg model to two ONNX graphs (keyframe.onnx, nonkeyframe.onnx) with arseg's metadata.

The dynamo exporter (`torch.export` then `torch.onnx.export`): height and width stay dynamic, which the
PSP heads' adaptive pooling needs. The keyframe graph is captured with `torch.export`'s non-strict
tracer; the non-keyframe graph with the strict one: CReFF scales the flow by feature size / image size,
a ratio of two dynamic sizes, which only the strict tracer keeps symbolic (the non-strict one bakes in the
trace sizes' ratio, and the graph is then wrong at every other size).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from arseg_cli.errors import OutputError, OutputExistsError
from arseg_cli.model.arseg import ARSeg
from arseg_cli.onnx import graphs
from arseg_cli.onnx._extra import require
from arseg_cli.onnx.metadata import metadata_props

DEFAULT_OPSET = 18
MIN_OPSET = 17
FILE_NAMES = {"keyframe": "keyframe.onnx", "nonkeyframe": "nonkeyframe.onnx"}
#: The tracer per graph (module docstring): True = strict.
_STRICT = {"keyframe": False, "nonkeyframe": True}


@dataclass(frozen=True, slots=True)
class ExportedGraphs:
    """The files written: `keyframe` always, `nonkeyframe` when the model has an LR branch."""

    directory: Path
    keyframe: Path
    nonkeyframe: Path | None
    opset: int

    def files(self) -> list[Path]:
        return [p for p in (self.keyframe, self.nonkeyframe) if p is not None]


def graph_names(model: ARSeg) -> list[str]:
    """The graphs `model` exports to: the non-keyframe graph only with an LR branch."""
    return ["keyframe", "nonkeyframe"] if model.lr is not None else ["keyframe"]


def export_onnx(model: ARSeg, directory: str | Path, *, opset: int = DEFAULT_OPSET, force: bool = False) -> ExportedGraphs:
    """Write `model`'s graphs into `directory` (created if missing). The model is moved to the CPU in
    float32; the graphs are traced on an eval-mode copy (graphs.exportable). Existing files are replaced
    only with `force` (checked before any work)."""
    require()
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}, got {opset}")
    directory = Path(directory)
    names = graph_names(model)
    targets = {name: directory / FILE_NAMES[name] for name in names}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not force:
        raise OutputExistsError(f"{', '.join(existing)} already exists (use `force` to replace)")
    model = graphs.exportable(model.to(device="cpu", dtype=torch.float32))
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {directory}: {error.strerror or error}") from None
    inputs = graphs.trace_inputs(model)
    for name in names:
        _export_graph(model, name, inputs[name], targets[name], opset)
    return ExportedGraphs(directory, targets["keyframe"], targets.get("nonkeyframe"), opset)


def _export_graph(model: ARSeg, name: str, args: tuple[torch.Tensor, ...], target: Path, opset: int) -> None:
    module = graphs.graph_module(model, name)
    with _quiet_exporter(), torch.enable_grad():
        program = torch.export.export(module, args, dynamic_shapes=graphs.dynamic_shapes(name), strict=_STRICT[name])
        onnx_program = torch.onnx.export(
            program,
            dynamo=True,
            opset_version=opset,
            input_names=list(graphs.INPUTS[name]),
            output_names=list(graphs.OUTPUTS[name]),
            verbose=False,
        )
    assert onnx_program is not None
    onnx_program.model.metadata_props.update(metadata_props(model.meta, name))
    partial = target.with_name(f".{target.name}.partial")
    try:
        onnx_program.save(partial)
        os.replace(partial, target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {error.strerror or error}") from None


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter prints progress on stdout and logs warnings (e.g. that torchvision's ops are not
    registered): stdout is for data, so both are kept out of it."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
