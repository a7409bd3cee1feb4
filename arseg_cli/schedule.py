"""Which frames are keyframes (HR) and which are non-keyframes (LR + CReFF with the flow to the keyframe).

Policies (docs/SEGMENT.md):
- `fixed`:    a keyframe every L frames (frames 0, L, 2L, ... of the frames segmented), whatever the stream.
- `iframe`:   a keyframe at each I-frame of the stream (a frame the codec coded without past motion:
              no flow chain leads back through it), and never more than L frames apart: the count
              restarts at every keyframe, so with `arseg encode --keyint L` (or `ffmpeg -g L`) keyframes
              are exactly the stream's I-frames.
- `adaptive`: `iframe`, plus a keyframe where the motion is unreliable: the share of the frame's area
              that no usable past motion vector covers (intra-coded blocks: what the encoder could not
              predict, as at a scene cut or a large disocclusion) is above `intra_threshold`.
              The paper's "future work". The default: on SynthStreet clips with a spliced cut it keyframes
              the cut and costs nothing without one (measurement in docs/SEGMENT.md).
`L = 1` makes every frame a keyframe (per-frame HR).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from arseg_cli.choices import DEFAULT_POLICY, KeyframePolicy
from arseg_cli.errors import OptionsError
from arseg_cli.scale_interval import check_keyframe_interval
from arseg_cli.video.block_cells import BlockCells
from arseg_cli.video.motion import iframe_keyframe_reason, is_stream_iframe
from arseg_cli.video.records import DecodedFrame

Policy = KeyframePolicy
POLICIES: tuple[KeyframePolicy, ...] = tuple(KeyframePolicy)
#: Share of the frame's area without a usable past vector above which `adaptive` starts a keyframe.
DEFAULT_INTRA_THRESHOLD = 0.5


class FrameKind(StrEnum):
    KEY = "key"  # HR network on the frame; its feature is kept for the following non-keyframes
    NONKEY = "nonkey"  # LR network at scale s, CReFF fusing the keyframe feature warped along the flow


@dataclass(frozen=True, slots=True)
class Decision:
    """The scheduler's verdict on one frame.

    kind:     KEY or NONKEY.
    reason:   why a keyframe ('first', 'interval', 'iframe', 'intra', 'resize'); '' for a non-keyframe.
    distance: frames since the keyframe (0 for a keyframe).
    """

    kind: FrameKind
    reason: str
    distance: int

    @property
    def is_key(self) -> bool:
        return self.kind is FrameKind.KEY


def intra_fraction(frame: DecodedFrame) -> float:
    """Share (0..1) of the frame's area, on the 8-px motion grid, that no usable past vector covers.

    1.0 for a frame without motion vectors (an intra frame, or missing side data).
    """
    return BlockCells.of(frame).intra_fraction()


class Scheduler:
    """Decides KEY or NONKEY for each frame, in display order (`decide`, one call per frame)."""

    def __init__(
        self, policy: KeyframePolicy | str = DEFAULT_POLICY, keyframe_interval: int = 12, *, intra_threshold: float = DEFAULT_INTRA_THRESHOLD
    ) -> None:
        policy = KeyframePolicy.parse(policy, "keyframe policy")
        check_keyframe_interval(keyframe_interval)
        if not 0.0 < intra_threshold <= 1.0:
            raise OptionsError(f"the intra threshold must be in (0, 1], got {intra_threshold}")
        self.policy: KeyframePolicy = policy  # type: ignore[assignment]
        self.keyframe_interval = keyframe_interval
        self.intra_threshold = intra_threshold
        self._since_key: int | None = None  # frames since the last keyframe
        self._key_hw: tuple[int, int] | None = None  # frame size of the last keyframe
        self.keyframes = 0

    def decide(self, frame: DecodedFrame, cells: BlockCells | None = None) -> Decision:
        """The frame's decision. cells: its block cells (the motion stage's, rasterised at most once
        for scheduler and flow alike); made here when not given and needed."""
        reason = self._key_reason(frame, cells)
        if reason:
            self._since_key = 0
            self._key_hw = _size(frame)
            self.keyframes += 1
            return Decision(FrameKind.KEY, reason, 0)
        assert self._since_key is not None
        self._since_key += 1
        return Decision(FrameKind.NONKEY, "", self._since_key)

    def _key_reason(self, frame: DecodedFrame, cells: BlockCells | None) -> str:
        if self._since_key is not None and _size(frame) != self._key_hw:
            return "resize"  # a stream whose resolution changes: the keyframe feature no longer fits
        reason = iframe_keyframe_reason(frame, self._since_key, self.keyframe_interval)
        if self.policy == "fixed" and reason == "iframe":
            return ""
        if reason or self.policy != "adaptive":
            return reason
        intra = (cells if cells is not None else BlockCells.of(frame)).intra_fraction()
        return "intra" if intra > self.intra_threshold else ""


def _size(frame: DecodedFrame) -> tuple[int, int]:
    return (int(frame.rgb.shape[0]), int(frame.rgb.shape[1]))


__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "Decision",
    "FrameKind",
    "Policy",
    "Scheduler",
    "intra_fraction",
    "is_stream_iframe",
]
