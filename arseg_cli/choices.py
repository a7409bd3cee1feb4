"""The named choices of arseg's options, one enum each: the library takes them (or their values as
plain strings) and the CLI offers exactly their values. Imports nothing heavy (`arseg --help` reads it).
"""

from __future__ import annotations

from enum import Enum

from arseg_cli.errors import OptionsError


class Choice(str, Enum):
    """A choice among fixed names: equal to its value as a string, and printed as it (enum.StrEnum
    needs Python 3.11)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def parse(cls, value: str | Choice, what: str) -> Choice:
        """The member named `value`; OptionsError naming `what` and the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise OptionsError(f"unknown {what} {value!r}: use one of {', '.join(m.value for m in cls)}") from None


class KeyframePolicy(Choice):
    """Which frames are keyframes (arseg_cli.schedule): every L frames; also at the stream's I-frames;
    also where the motion is unreliable."""

    FIXED = "fixed"
    IFRAME = "iframe"
    ADAPTIVE = "adaptive"


class MotionMethod(Choice):
    """Where motion vectors come from: the bitstream, a libx264 re-encode, or the bitstream when its
    vectors chain exactly, else the re-encode (arseg_cli.video.probe.plan_motion)."""

    AUTO = "auto"
    BITSTREAM = "bitstream"
    REENCODE = "reencode"


class Backend(Choice):
    """What runs the networks: PyTorch, or onnxruntime on the graphs of `arseg export-onnx`."""

    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"


class Device(Choice):
    """Where the networks run: CUDA when available (auto), the CPU, or CUDA."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class OnError(Choice):
    """What a run over several inputs does when one of them cannot be segmented: go on with the others
    (the run still fails at the end), or stop there."""

    CONTINUE = "continue"
    STOP = "stop"


DEFAULT_POLICY = KeyframePolicy.ADAPTIVE

__all__ = ["DEFAULT_POLICY", "Backend", "Choice", "Device", "KeyframePolicy", "MotionMethod", "OnError"]
