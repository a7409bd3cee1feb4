"""ONNX: export an AR-Seg model to two graphs, check them with onnxruntime, run them (the [onnx] extra).

`export_onnx(model, dir)` writes keyframe.onnx and nonkeyframe.onnx (export.py; metadata.py says what
travels inside them); `OnnxARSeg(dir)` runs them behind ARSeg's per-frame calls (runtime.py);
`check_parity` compares them with PyTorch on decoded frames (check.py). docs/ONNX.md.
Importing this package needs only torch; the extra is imported when a function needs it.
"""

from arseg_cli.onnx._extra import OnnxExtraMissingError
from arseg_cli.onnx.check import ParityReport, check_parity, parity_inputs
from arseg_cli.onnx.export import DEFAULT_OPSET, ExportedGraphs, export_onnx
from arseg_cli.onnx.runtime import OnnxARSeg

__all__ = [
    "DEFAULT_OPSET",
    "ExportedGraphs",
    "OnnxARSeg",
    "OnnxExtraMissingError",
    "ParityReport",
    "check_parity",
    "export_onnx",
    "parity_inputs",
]
