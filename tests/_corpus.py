"""A corpus of bad and unusual video inputs, made on the spot (PyAV, numpy) into a directory.

Each item is a `Case`: a maker that writes the input under a given directory and returns its path, and
what arseg must do with it (`Expect`): segment every frame (`ok`, with the frame count and size the
labels must have), or end with exit code 1 after writing the frames that decoded (`damaged`), or refuse
it in one line with exit code 1 (`error`, with words the line must contain). Never accepted: a
traceback, an internal error, another exit code or a hang.

Sizes are tiny (64 x 96, a few frames) so that the whole corpus runs in seconds with random weights.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from arseg_cli.video.synthetic import make_clip, write_clip
from test_bad_input import _silence as silence

HEIGHT, WIDTH = 64, 96
FRAMES = 6
FPS = 25


@dataclass(frozen=True)
class Expect:
    """outcome: 'ok' | 'damaged' | 'error'. frames/size_hw: the labels of an 'ok' run
    (frames None: any count >= 1). words: text the one error line must contain ('error').
    warns: text a logged warning must contain."""

    outcome: str
    frames: int | None = None
    size_hw: tuple[int, int] | None = None
    words: str = ""
    warns: str = ""


@dataclass(frozen=True)
class Case:
    make: Callable[[Path], Path]
    expect: Expect


def frames_of(count: int = FRAMES, height: int = HEIGHT, width: int = WIDTH, seed: int = 0) -> list[np.ndarray]:
    """(H, W, 3) uint8 frames of a panning texture with a moving square (exactly known motion)."""
    return make_clip(count, height, width, seed=seed).frames


def encode(
    frames: list[np.ndarray],
    path: Path,
    codec: str = "libx264",
    *,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, FPS),
    format: str | None = None,
) -> Path:
    """Encode RGB frames with any PyAV encoder; `pts` in `time_base` units (default: 0, 1, 2, ...)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format=format) as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = stream.codec_context.time_base = time_base
        stream.options = {"preset": "ultrafast", **(options or {})} if codec == "libx264" else dict(options or {})
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index if pts is None else pts[index]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def valid_clip(path: Path, frames: int = FRAMES, keyint: int = 4) -> Path:
    """The reference input: H.264, no B-frames, an I-frame every `keyint` frames."""
    return write_clip(frames_of(frames), path, keyint=keyint, preset="ultrafast", fps=FPS)


# --- not a video at all -------------------------------------------------------------------------


def _random_bytes(directory: Path) -> Path:
    path = directory / "random.mp4"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _zero_length(directory: Path) -> Path:
    path = directory / "zero.mp4"
    path.touch()
    return path


def _audio_only(directory: Path) -> Path:
    path = directory / "audio.m4a"
    with av.open(str(path), "w") as container:
        silence(container)
    return path


def _subtitle_only(directory: Path) -> Path:
    path = directory / "subtitles.srt"
    path.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,000 --> 00:00:02,000\nworld\n")
    return path


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares `width` x `height` RGB pixels, with only one short row of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _huge_declared(directory: Path) -> Path:
    path = directory / "bomb-65535.png"
    path.write_bytes(_png_declaring(65535, 65535))
    return path


def _large_declared(directory: Path) -> Path:
    """12000 x 12000 (144 Mpixel): within FFmpeg's own limit, over arseg's default --max-pixels."""
    path = directory / "bomb-12000.png"
    path.write_bytes(_png_declaring(12000, 12000))
    return path


# --- unusual but valid --------------------------------------------------------------------------


def _wrong_extension(directory: Path) -> Path:
    source = valid_clip(directory / "real.mkv")
    path = directory / "matroska.mp4"
    source.rename(path)
    return path


def _one_frame(directory: Path) -> Path:
    return valid_clip(directory / "one.mp4", frames=1)


def _two_frames(directory: Path) -> Path:
    return valid_clip(directory / "two.mp4", frames=2)


def _odd_641x273(directory: Path) -> Path:
    # H.264 4:2:0 cannot code odd sizes; 4:4:4 can.
    return encode(frames_of(2, 273, 641), directory / "odd.mkv", pix_fmt="yuv444p")


def _narrow_48x144(directory: Path) -> Path:
    return encode(frames_of(3, 144, 48), directory / "narrow.mp4")


def _yuv444(directory: Path) -> Path:
    return encode(frames_of(), directory / "yuv444.mp4", pix_fmt="yuv444p")


def _ten_bit(directory: Path) -> Path:
    return encode(frames_of(), directory / "tenbit.mkv", pix_fmt="yuv420p10le")


def _variable_frame_rate(directory: Path) -> Path:
    ticks = [0, 1, 3, 4, 9, 10]  # 1/1000 s steps of 40 ms, 80 ms, 200 ms ...
    return encode(frames_of(), directory / "vfr.mkv", pts=[t * 40 for t in ticks], time_base=Fraction(1, 1000))


def _interlaced(directory: Path) -> Path:
    options = {"x264-params": "interlaced=1:tff=1:bframes=0"}
    return encode(frames_of(), directory / "interlaced.ts", options=options, format="mpegts")


def _rotated(directory: Path) -> Path:
    """An MP4 whose track header's display matrix says: rotate by 90 degrees."""
    path = valid_clip(directory / "rotated.mp4")
    data = bytearray(path.read_bytes())
    at = data.index(b"tkhd") + 4 + 40  # box type, then version/flags, times, ids, duration, layer, volume
    one, minus_one = 0x00010000, 0xFFFF0000
    data[at : at + 36] = struct.pack(">9I", 0, one, 0, minus_one, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def _two_video_streams(directory: Path) -> Path:
    path = directory / "two-streams.mkv"
    sizes = [(HEIGHT, WIDTH), (32, 48)]
    with av.open(str(path), "w") as container:
        streams = []
        for height, width in sizes:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"preset": "ultrafast"}
            streams.append(stream)
        clips = [frames_of(FRAMES, h, w, seed=i) for i, (h, w) in enumerate(sizes)]
        for index in range(FRAMES):
            for stream, clip in zip(streams, clips):
                frame = av.VideoFrame.from_ndarray(clip[index], format="rgb24")
                frame.pts = index
                for packet in stream.encode(frame):
                    container.mux(packet)
        for stream in streams:
            for packet in stream.encode(None):
                container.mux(packet)
    return path


def _hevc(directory: Path) -> Path:
    return encode(frames_of(), directory / "hevc.mkv", "libx265", options={"x265-params": "log-level=error"})


def _av1(directory: Path) -> Path:
    return encode(frames_of(), directory / "av1.mkv", "libsvtav1", options={"preset": "12"})


def _mpeg2(directory: Path) -> Path:
    return encode(frames_of(), directory / "mpeg2.mpg", "mpeg2video", format="mpeg")


def _resolution_change(directory: Path) -> Path:
    """Raw H.264 (Annex B): 3 frames at 64 x 96, then 3 at 48 x 80 (a new sequence header and IDR)."""
    first = encode(frames_of(3), directory / "a.h264", format="h264")
    second = encode(frames_of(3, 48, 80, seed=1), directory / "b.h264", format="h264")
    path = directory / "resize.h264"
    path.write_bytes(first.read_bytes() + second.read_bytes())
    first.unlink()
    second.unlink()
    return path


def _corrupted_p_frames(directory: Path) -> Path:
    """Raw H.264 whose P-frame slices (NAL type 1) have their middle bytes overwritten with noise."""
    source = encode(frames_of(8), directory / "clean.h264", format="h264", options={"x264-params": "keyint=8"})
    data = bytearray(source.read_bytes())
    source.unlink()
    rng = np.random.default_rng(3)
    starts = [i for i in range(len(data) - 4) if data[i : i + 3] == b"\0\0\1" and data[i + 3] & 0x1F == 1]
    ends = starts[1:] + [len(data)]
    for start, end in zip(starts, ends):
        middle = (start + end) // 2
        length = max(1, (end - start) // 4)
        data[middle : middle + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    path = directory / "corrupt-p.h264"
    path.write_bytes(bytes(data))
    return path


def _unknown_codec(directory: Path) -> Path:
    """An MP4 whose sample entry names a codec FFmpeg does not know (found by the fuzzer)."""
    path = valid_clip(directory / "unknown.mp4")
    path.write_bytes(path.read_bytes().replace(b"avc1", b"zzzz"))
    return path


def _bad_metadata(directory: Path) -> Path:
    """A Matroska file whose title tag is not valid UTF-8 (found by the fuzzer)."""
    path = directory / "tagged.mkv"
    with av.open(str(path), "w") as container:
        container.metadata["title"] = "TITLE-TO-BREAK"
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index, rgb in enumerate(frames_of()):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    path.write_bytes(path.read_bytes().replace(b"TITLE-TO-BREAK", b"TITLE\xa3\xff\xfeBREAK!"))
    return path


def _truncated(suffix: str, fraction: float) -> Callable[[Path], Path]:
    def make(directory: Path) -> Path:
        whole = valid_clip(directory / f"whole{suffix}", frames=8).read_bytes()
        path = directory / f"cut-{round(fraction * 100)}{suffix}"
        path.write_bytes(whole[: int(len(whole) * fraction)])
        (directory / f"whole{suffix}").unlink()
        return path

    return make


OK = Expect("ok", FRAMES, (HEIGHT, WIDTH))

CASES: dict[str, Case] = {
    "random-bytes": Case(_random_bytes, Expect("error", words="not a video")),
    "zero-length": Case(_zero_length, Expect("error", words="empty")),
    "audio-only": Case(_audio_only, Expect("error", words="no video stream")),
    "subtitle-only": Case(_subtitle_only, Expect("error", words="no video stream")),
    "huge-declared-size": Case(_huge_declared, Expect("error", words="--max-pixels")),
    "large-declared-size": Case(_large_declared, Expect("error", words="--max-pixels")),
    "wrong-extension": Case(_wrong_extension, OK),
    "one-frame": Case(_one_frame, Expect("ok", 1, (HEIGHT, WIDTH))),
    "two-frames": Case(_two_frames, Expect("ok", 2, (HEIGHT, WIDTH))),
    "odd-641x273": Case(_odd_641x273, Expect("ok", 2, (273, 641))),
    "odd-48x144": Case(_narrow_48x144, Expect("ok", 3, (144, 48))),
    "yuv444p": Case(_yuv444, OK),
    "10-bit": Case(_ten_bit, OK),
    "variable-frame-rate": Case(_variable_frame_rate, OK),
    "interlaced": Case(_interlaced, OK),
    "rotated": Case(_rotated, Expect("ok", FRAMES, (HEIGHT, WIDTH), warns="rotated by -90 degrees")),
    "two-video-streams": Case(_two_video_streams, OK),
    "hevc": Case(_hevc, Expect("ok", FRAMES, (HEIGHT, WIDTH), warns="by re-encoding")),
    "av1": Case(_av1, Expect("ok", FRAMES, (HEIGHT, WIDTH), warns="by re-encoding")),
    "mpeg2": Case(_mpeg2, OK),
    "resolution-change": Case(_resolution_change, Expect("ok", 6)),
    "corrupted-p-frames": Case(_corrupted_p_frames, Expect("damaged")),
    "unknown-codec": Case(_unknown_codec, Expect("error", words="codec is unknown")),
    "non-utf8-metadata": Case(_bad_metadata, OK),
    # MP4 keeps its index at the end: any cut loses it. The others keep the frames before the cut, and
    # the last 1 % still holds part of the last frame: its loss must be noticed too.
    **{
        f"truncated-{suffix[1:]}-{round(f * 100)}": Case(
            _truncated(suffix, f), Expect("error" if suffix == ".mp4" or f == 0.05 else "damaged")
        )
        for suffix in (".mp4", ".mkv", ".ts")
        for f in (0.05, 0.6, 0.99)
    },
}
