"""The optional `[onnx]` extra: import its packages, or say in one line how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from arseg_cli.errors import ArsegError

#: The packages of the extra, in the order they are imported.
EXTRA_PACKAGES = ("onnx", "onnxruntime", "onnxscript")


class OnnxExtraMissingError(ArsegError):
    """ONNX export or the onnxruntime backend was asked for without the `[onnx]` extra installed."""


def require(*names: str) -> list[ModuleType]:
    """The modules `names` (default: all of the extra), or OnnxExtraMissingError naming what is missing."""
    wanted = names or EXTRA_PACKAGES
    modules, missing = [], []
    for name in wanted:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            missing.append(name)
    if missing:
        raise OnnxExtraMissingError(
            f"ONNX support needs the [onnx] extra ({', '.join(missing)} not installed): pip install 'arseg[onnx]'"
        )
    return modules
