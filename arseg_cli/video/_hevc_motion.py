"""HEVC motion vectors read by arseg's own bitstream parser (video/hevc) and attached to FFmpeg's frames.

FFmpeg decodes the pixels; the parser reads the same demuxed packets, in decoding order, and returns
each picture's prediction units. Two things tie a parsed picture to a decoded frame:
- Which frame: before a packet goes to the decoder its pts is replaced by the packet's position in
  decoding order. FFmpeg gives each frame the pts of the packet it was decoded from (through the
  reordering), so a frame's pts names its picture; the packet's own pts is then put back on the frame.
  This works the same for MP4, Matroska, MPEG-TS and raw Annex B streams (files or pipes), which have
  no timestamps at all.
- Where its references were shown: within a coded video sequence frames come out in POC order, so
  the POC of every frame shown since the sequence began gives its display index; a reference's
  display offset (BlockMotion.ref_offset) follows. A POC not above the previous frame's starts a new
  sequence.
The parser's one-line errors (HevcUnsupported: a feature it does not read; HevcStreamError: damaged
data) end the parsing; `failure` then says why, and the caller falls back (decode.py).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

import av
import numpy as np

from arseg_cli.video.records import BlockMotion

if TYPE_CHECKING:
    from arseg_cli.video.hevc.parser import PictureMotion

# Pictures parsed but not (yet) seen decoded, e.g. ones the decoder drops: the oldest go beyond this.
_MAX_PENDING = 64


def _parser_module() -> ModuleType | None:
    try:
        return importlib.import_module("arseg_cli.video.hevc.parser")
    except ImportError:
        return None


def parser_problem() -> str | None:
    """Why arseg cannot read HEVC motion vectors here (one line), or None when its parser is usable."""
    module = _parser_module()
    if module is None:
        return "arseg's HEVC motion-vector parser is not installed"
    if not module.available():
        return "arseg's HEVC motion-vector parser is not built (reinstall arseg with a C compiler: pip install -e .)"
    return None


def parser_errors() -> tuple[type[Exception], ...]:
    """The parser's one-line error types (HevcUnsupported, HevcStreamError)."""
    module = _parser_module()
    return (module.HevcUnsupported, module.HevcStreamError) if module is not None else ()


def unreadable_reason(error: Exception) -> str:
    """The one-line reason the re-encode notice gives when the parser refuses a stream."""
    return f"hevc stream: arseg's HEVC parser cannot read its motion vectors ({error})"


def has_inter_units(picture: PictureMotion) -> bool:
    """Whether a parsed picture has any prediction unit that is not intra."""
    from arseg_cli.video.hevc.parser import FLAG_INTRA

    return bool(((picture.pus["flags"] & FLAG_INTRA) == 0).any())


class HevcStreamMotion:
    """Feeds every packet of an HEVC stream to the parser (`feed`, before decoding it) and gives each
    decoded frame its picture's BlockMotion (`receive`, on every frame in output order, then `motion`).

    Raises the parser's errors when it refuses the stream's headers (`extradata`); later errors end
    the parsing and are kept in `failure` (one line)."""

    def __init__(self, extradata: bytes | None) -> None:
        from arseg_cli.video.hevc.blocks import picture_blocks
        from arseg_cli.video.hevc.parser import HevcMotionParser

        self._errors = parser_errors()
        self._to_blocks = picture_blocks
        self._parser = HevcMotionParser(extradata or None)
        self.failure: str | None = None
        self._parsing = True
        self._fed = 0
        self._pending: dict[int, tuple[int | None, PictureMotion | None]] = {}  # tag -> (packet pts, picture)
        self._shown: dict[int, int] = {}  # POC -> display index, current coded video sequence
        self._last_poc: int | None = None
        self._received = 0
        self._current: tuple[av.VideoFrame, BlockMotion | None] | None = None

    def feed(self, packet: av.Packet) -> PictureMotion | None:
        """Parse one demuxed packet and tag it so that its frame can be told (module docstring).
        Returns its picture (None: no picture in it, or the parsing has failed)."""
        picture = None
        if self._parsing and self.failure is None and packet.size:
            try:
                picture = self._parser.parse_packet(bytes(packet))
            except self._errors as error:
                self.failure = unreadable_reason(error)
        tag = self._fed
        self._fed += 1
        self._pending[tag] = (packet.pts, picture)
        packet.pts = tag
        if len(self._pending) > _MAX_PENDING:
            del self._pending[min(self._pending)]
        return picture

    def stop_parsing(self) -> None:
        """The motion is no longer wanted (the caller switched to the re-encode): packets are only tagged."""
        self._parsing = False

    def receive(self, frame: av.VideoFrame) -> None:
        """Take a decoded frame (in output order): put its packet's pts back and find its motion."""
        index = self._received
        self._received += 1
        pts, picture = self._pending.pop(frame.pts, (None, None)) if frame.pts is not None else (None, None)
        frame.pts = pts
        motion = None
        if picture is not None:
            poc = int(picture.poc)
            if self._last_poc is not None and poc <= self._last_poc:
                self._shown.clear()  # a new coded video sequence
            motion = self._blocks(picture, poc, index, (frame.height, frame.width))
            self._shown[poc] = index
            self._last_poc = poc
        self._current = (frame, motion)

    def motion(self, frame: av.VideoFrame) -> BlockMotion | None:
        """The motion of the frame last given to `receive` (None for another frame)."""
        if self._current is None or self._current[0] is not frame:
            return None
        return self._current[1]

    def _blocks(self, picture: PictureMotion, poc: int, index: int, frame_hw: tuple[int, int]) -> BlockMotion | None:
        ref_pocs = np.unique(picture.pus["ref_poc"])
        offsets = {int(ref): self._shown[int(ref)] - index for ref in ref_pocs if int(ref) in self._shown}
        offsets |= {int(ref): int(ref) - poc for ref in ref_pocs if int(ref) > poc}  # future: only the sign matters
        motion = self._to_blocks(picture, offsets)
        if motion is not None and motion.frame_hw != frame_hw:
            return None
        return motion
