"""arseg: efficient semantic segmentation of compressed videos by altering resolutions (AR-Seg).

The Python entry point of `arseg segment` (docs/PYTHON.md):

    from arseg_cli import SegmentRequest, run
    report = run(SegmentRequest(["street.mp4"], output="masks"))

The names below load on first use, so that `import arseg_cli` (and `arseg --version`) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from arseg_cli.choices import Backend, Device, KeyframePolicy, MotionMethod, OnError
    from arseg_cli.errors import ArsegError
    from arseg_cli.request import SegmentRequest
    from arseg_cli.segment_run import SegmentReport, run

_LAZY = {
    "SegmentRequest": "arseg_cli.request",
    "SegmentReport": "arseg_cli.segment_run",
    "run": "arseg_cli.segment_run",
    "ArsegError": "arseg_cli.errors",
    "Backend": "arseg_cli.choices",
    "Device": "arseg_cli.choices",
    "KeyframePolicy": "arseg_cli.choices",
    "MotionMethod": "arseg_cli.choices",
    "OnError": "arseg_cli.choices",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'arseg_cli' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["ArsegError", "Backend", "Device", "KeyframePolicy", "MotionMethod", "OnError", "SegmentReport",
           "SegmentRequest", "__version__", "run"]  # fmt: skip
