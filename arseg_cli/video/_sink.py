"""Plumbing shared by the writers in writers.py: failure policy, timestamps, one PyAV video stream.

Not for use outside arseg_cli.video; the policy itself is described in writers.py's docstring.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import av

from arseg_cli.errors import OutputError
from arseg_cli.atomic_files import AtomicFile, is_stdout, os_errors_as_output_errors
from arseg_cli.video.x264 import as_fraction

Target = str | Path | IO[bytes]

_FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


def stream_name(target: Target) -> str:
    """How messages name an output: its path, or the stream's name."""
    if isinstance(target, (str, Path)):
        return "standard output" if is_stdout(target) else str(target)
    return str(getattr(target, "name", "the output stream"))


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back until the enclosed block is done, then deliver it as it would have been.

    A KeyboardInterrupt between an encoder handing out packets and the muxer writing them would
    drop a reference frame and corrupt the rest of the video; deferring it to the end of the frame
    keeps every written frame decodable. On leaving, the previous handler is restored and a signal
    that arrived meanwhile is raised again, so it has exactly its usual effect (KeyboardInterrupt,
    a custom handler, or nothing when ignored). Only the main thread can handle signals, and a
    handler not installed from Python cannot be restored: in both cases this does nothing.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)


class Writer:
    """Closing, aborting and the failure policy shared by all writers (writers.py's docstring).

    Subclasses write to `_atomic.temp` (or a stream, `_atomic` None) and implement `_finish` (flush,
    trailer) and `_release` (free resources after a failure).
    """

    _failed = False
    _closed = False
    _atomic: AtomicFile | None = None
    _name = ""

    def _has_output(self) -> bool:
        return True

    def _finish(self) -> None:
        """Complete the output (flush the encoder, write the trailer)."""

    def _release(self) -> None:
        """Free resources without completing the output."""

    def close(self) -> None:
        """Complete the output and rename it into place; idempotent.

        After a failed write (or, for videos, without any frame) there is nothing valid to keep:
        the temporary is removed instead.
        """
        if self._closed:
            return
        if self._failed or not self._has_output():
            self.abort()
            return
        try:
            # Ctrl-C while finishing (a second one, after the one that ended the loop) must not
            # throw the finished video away: it is delivered once the file is in place.
            with self._writing(self._name):
                self._finish()
                if self._atomic is not None:
                    self._atomic.commit()
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Give up: remove the temporary output, keep the final name as it was."""
        self._closed = True
        try:
            self._release()
        except Exception:  # noqa: BLE001 - the output is being thrown away anyway
            pass
        if self._atomic is not None:
            self._atomic.discard()

    @contextmanager
    def _writing(self, path: object) -> Iterator[None]:
        """Run one write with Ctrl-C deferred to its end; mark the writer failed if the write fails."""
        with interrupts_deferred():
            try:
                with os_errors_as_output_errors(str(path)):
                    yield
            except Exception:
                self._failed = True  # before a deferred Ctrl-C replaces the error: the output is broken
                raise

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._failed:
            self.abort()
        else:
            self.close()


class Timeline:
    """Presentation timestamps and durations in `time_base` units, strictly increasing.

    A stream whose first timestamp is negative (a start shifted by B-frame delay) is moved to start
    at 0: the MP4 muxer's edit list would otherwise hide the frames before 0 from players.
    """

    def __init__(self, fps: Fraction, time_base: Fraction) -> None:
        self.frame_ticks = max(1, round(1 / (fps * time_base)))
        self._next = 0
        self._last: int | None = None
        self._shift = 0

    def stamp(self, pts: int | None, duration: int | None) -> tuple[int, int]:
        if pts is not None and self._last is None and pts < 0:
            self._shift = -int(pts)
        pts = self._next if pts is None else int(pts) + self._shift
        if self._last is not None and pts <= self._last:
            raise ValueError(f"timestamps must increase: pts {pts - self._shift} after {self._last - self._shift}")
        duration = self.frame_ticks if duration is None else max(1, int(duration))
        self._last, self._next = pts, pts + duration
        return pts, duration


class VideoSink(Writer):
    """One video stream in one container, written to a temporary file renamed at close, or to a
    binary stream ('-' = stdout). The container opens on the first frame, when the size is known."""

    def __init__(
        self,
        target: Target,
        *,
        fps: float | Fraction,
        time_base: Fraction | None,
        force: bool,
        format: str | None,
        stream_format: str,
    ) -> None:
        self.fps = as_fraction(fps)
        self.time_base = Fraction(time_base) if time_base is not None else 1 / self.fps
        self._timeline = Timeline(self.fps, self.time_base)
        self._format = format
        self._name = stream_name(target)
        if isinstance(target, (str, Path)) and not is_stdout(target):
            self._atomic = AtomicFile(target, force=force)
            self._target: str | Path | IO[bytes] = self._atomic.temp
            if not self._atomic.final.suffix:
                self._format = format or stream_format
        else:
            self._target = sys.stdout.buffer if isinstance(target, (str, Path)) else target
            self._format = format or stream_format
        self._container: Any = None
        self._stream: Any = None
        self._durations: dict[int, int] = {}
        self.frames_written = 0

    @property
    def path(self) -> Path | None:
        """The final file, or None when writing to a stream."""
        return self._atomic.final if self._atomic else None

    def _open(self, codec: str, pix_fmt: str, width: int, height: int, options: dict[str, str]) -> Any:
        container_options: dict[str, str] = {}
        if self._atomic is None and (self._format or "") in ("mp4", "mov", "ipod"):
            container_options = dict(_FRAGMENTED_MP4)  # a pipe cannot be seeked back to write the index
        try:
            self._container = av.open(self._target, mode="w", format=self._format, options=container_options)
            stream = self._container.add_stream(codec, rate=self.fps)
        except (av.FFmpegError, ValueError) as error:  # unknown format, codec not allowed in it
            self._failed = True
            raise OutputError(f"cannot write {self._name}: {error}") from None
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        stream.options = options
        self._stream = stream
        return stream

    def _encode(self, frame: av.VideoFrame, pts: int | None, duration: int | None) -> None:
        frame.pts, frame.duration = self._timeline.stamp(pts, duration)
        frame.time_base = self.time_base
        self._durations[frame.pts] = frame.duration
        with self._writing(self._name):
            for packet in self._stream.encode(frame):
                self._mux(packet)
            self.frames_written += 1  # inside: a Ctrl-C deferred to the end of this write is raised after it

    def _mux(self, packet: av.Packet) -> None:
        # Encoders leave packet durations at 0; the muxer needs the last one for the total duration.
        packet.duration = self._durations.pop(packet.pts, self._timeline.frame_ticks)
        self._container.mux(packet)

    def _has_output(self) -> bool:
        return self._stream is not None  # a video without frames is not written

    def _finish(self) -> None:
        for packet in self._stream.encode(None):
            self._mux(packet)
        container, self._container = self._container, None
        container.close()

    def _release(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.close()
