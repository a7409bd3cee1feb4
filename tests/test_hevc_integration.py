"""HEVC motion read by arseg's own parser, wired into decoding, `arseg info`, `arseg motion` and the pairs.

Two kinds of tests:
- Plumbing, with a stand-in parser (monkeypatched into video/hevc/parser.py) that returns scripted pictures:
  which decoded frame gets which parsed picture (MP4, Matroska, MPEG-TS, raw Annex B, a pipe; B-frame
  reordering), reference offsets, the fall-back to the re-encode on each parser error, `arseg info`.
- End to end with the real parser on libx265 clips (tests/test_hevc_parser_clips.py).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

parser = pytest.importorskip("arseg_cli.video.hevc.parser", reason="arseg's HEVC parser package is not in this tree")

from _video_inputs import encode_frames, small_clip  # noqa: E402
from test_fallback import notices  # noqa: E402,F401 - the fixture
from arseg_cli.cli import main  # noqa: E402
from arseg_cli.errors import UnsupportedCodecError  # noqa: E402
from arseg_cli.video.decode import decode_frames, open_video  # noqa: E402
from arseg_cli.video.motion import flows_to_key  # noqa: E402
from arseg_cli.video.probe import probe_video  # noqa: E402

KEYINT = 12
FRAMES = 20
WIDTH, HEIGHT = 128, 96


def encode_hevc_clip(path: Path, *, bframes: int, pix_fmt: str = "yuv420p", params: str = "") -> Path:
    """The tests' synthetic clip (small_clip) through libx265 at `path` (container from the suffix)."""
    frames = [np.ascontiguousarray(rgb[:HEIGHT, :WIDTH]) for rgb in small_clip().frames[:FRAMES]]
    params = f"keyint={KEYINT}:min-keyint={KEYINT}:bframes={bframes}:scenecut=0:log-level=error{params}"
    return encode_frames(frames, path, "libx265", pix_fmt=pix_fmt, options={"preset": "ultrafast", "x265-params": params})


def remux(source: Path, target: Path, format: str | None = None) -> Path:
    """The same packets in another container (FFmpeg adds the Annex B conversion for raw and MPEG-TS)."""
    with av.open(str(source)) as inp, av.open(str(target), "w", format=format) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    return target


def decode_order(path: Path) -> list[tuple[int, bool]]:
    """(display index, is keyframe) of each packet, in decoding order (from a container with timestamps)."""
    with av.open(str(path)) as container:
        packets = [(p.pts, p.is_keyframe) for p in container.demux(container.streams.video[0]) if p.size]
    ranks = {pts: rank for rank, pts in enumerate(sorted(pts for pts, _ in packets))}
    return [(ranks[pts], key) for pts, key in packets]


class ScriptedParser:
    """Stands in for HevcMotionParser: the n-th packet's picture has POC = its display index; intra at
    keyframes; otherwise 8x8 units moving `speed` px per frame along x (default: the display index, so
    that each frame's vectors name it), the left half from the previous frame and the right half from
    two frames back (one frame back right after a keyframe)."""

    script: list[tuple[int, bool]] = []
    speed: int | None = None
    fail_at: int | None = None  # HevcStreamError at this packet
    refuse: str | None = None  # HevcUnsupported when constructed

    def __init__(self, extradata: bytes | None = None) -> None:
        if self.refuse is not None:
            raise parser.HevcUnsupported(self.refuse)
        self.count = 0

    def parse_packet(self, data: bytes) -> object:
        assert isinstance(data, bytes) and data
        if self.count == self.fail_at:
            raise parser.HevcStreamError("slice data ends inside a coding tree unit")
        poc, key = self.script[self.count]
        self.count += 1
        ys, xs = np.mgrid[0:HEIGHT:8, 0:WIDTH:8]
        pus = np.zeros(xs.size, parser.PU_DTYPE)
        pus["x"], pus["y"], pus["w"], pus["h"] = xs.ravel(), ys.ravel(), 8, 8
        if key:
            pus["flags"] = parser.FLAG_INTRA
        else:
            back = np.where((xs.ravel() >= WIDTH // 2) & (poc % KEYINT >= 2), 2, 1)
            pus["flags"] = parser.FLAG_L0
            pus["mv"][:, 0, 0] = 4 * (poc if self.speed is None else self.speed) * back
            pus["ref_poc"][:, 0] = poc - back
        return parser.PictureMotion(poc=poc, decode_index=self.count - 1, slice_types=("P",), width=WIDTH,
                                    height=HEIGHT, crop=(0, 0, 0, 0), bit_depth=8, pus=pus)  # fmt: skip


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[ScriptedParser]]:
    class Parser(ScriptedParser):
        pass

    monkeypatch.setattr(parser, "available", lambda: True)
    monkeypatch.setattr(parser, "HevcMotionParser", Parser)
    yield Parser


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One clip without and one with B-frames, each in MP4, Matroska, MPEG-TS and raw HEVC."""
    directory = tmp_path_factory.mktemp("hevc")
    out: dict[str, Path] = {}
    for name, bframes in (("p", 0), ("b", 3)):
        mp4 = encode_hevc_clip(directory / f"{name}.mp4", bframes=bframes)
        out[f"{name}.mp4"] = mp4
        out[f"{name}.mkv"] = remux(mp4, directory / f"{name}.mkv")
        out[f"{name}.ts"] = remux(mp4, directory / f"{name}.ts")
        out[f"{name}.hevc"] = remux(mp4, directory / f"{name}.hevc", "hevc")
    return out


class _Pipe(io.RawIOBase):
    """A pipe-like reader: no seeking."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def assert_scripted_motion(frames: list[object], script: list[tuple[int, bool]]) -> None:
    keys = {poc for poc, key in script if key}
    assert [f.index for f in frames] == list(range(len(script)))  # type: ignore[attr-defined]
    for frame in frames:
        k = frame.index  # type: ignore[attr-defined]
        motion = frame.motion  # type: ignore[attr-defined]
        if k in keys:
            assert motion is None, k
            continue
        assert motion is not None and motion.method == "bitstream" and motion.ref_offset is not None, k
        back = -motion.ref_offset
        assert set(back.tolist()) <= {1, 2} and (k % KEYINT < 2 or set(back.tolist()) == {1, 2}), k
        assert np.all(motion.offset_px[:, 0] == k * back) and not motion.offset_px[:, 1].any(), k


@pytest.mark.parametrize("name", ["p.mp4", "p.mkv", "p.ts", "p.hevc", "b.mp4", "b.mkv", "b.ts", "b.hevc"])
def test_every_frame_gets_its_own_pictures_motion_in_every_container(
    clips: dict[str, Path], scripted: type[ScriptedParser], name: str
) -> None:
    scripted.script = decode_order(clips[name[:1] + ".mp4"])
    path = clips[name]
    plain = list(decode_frames(path, motion="none"))
    with open_video(path, motion="bitstream") as reader:
        frames = list(reader)
    assert [f.pts for f in frames] == [f.pts for f in plain]  # the packets' own timestamps are back
    assert [f.pict_type for f in frames] == [f.pict_type for f in plain]
    assert_scripted_motion(frames, scripted.script)


@pytest.mark.parametrize("name", ["p.hevc", "p.ts"])
def test_a_pipe_works_like_a_file(clips: dict[str, Path], scripted: type[ScriptedParser], name: str) -> None:
    scripted.script = decode_order(clips["p.mp4"])
    frames = list(decode_frames(_Pipe(clips[name].read_bytes())))  # type: ignore[arg-type]
    assert_scripted_motion(frames, scripted.script)


def test_auto_reads_hevc_without_b_frames_from_the_bitstream_and_chains_several_references_exactly(
    clips: dict[str, Path], scripted: type[ScriptedParser]
) -> None:
    scripted.script, scripted.speed = decode_order(clips["p.mp4"]), 3
    with open_video(clips["p.mkv"]) as reader:
        assert reader.plan.source == "bitstream" and reader.info.has_b_frames is False
        frames = list(reader)
    for frame, record in flows_to_key(frames, keyframe_interval=KEYINT):
        # A pan of 3 px per frame, half of each frame's blocks taken from two frames back.
        k = frame.index
        key = k - k % KEYINT
        assert record.key_index == key and record.exact
        assert np.all(record.flow_px[0] == 3 * (k - key)) and not record.flow_px[1].any(), k


def test_auto_reencodes_hevc_with_b_frames(clips: dict[str, Path], scripted: type[ScriptedParser]) -> None:
    with open_video(clips["b.mkv"]) as reader:
        assert reader.plan.source == "reencode" and "B-frames" in (reader.plan.reason or "")


def _reencode_notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "re-encoding with libx264" in r.getMessage()]


def test_a_refused_stream_falls_back_to_the_reencode_with_a_notice_naming_why(
    clips: dict[str, Path], scripted: type[ScriptedParser], notices: pytest.LogCaptureFixture
) -> None:
    scripted.refuse = "range extensions (4:4:4) are not supported"
    with open_video(clips["p.mkv"]) as reader:
        assert reader.plan.source == "reencode"
        frames = list(reader)
    assert all(f.motion.method == "x264-reencode" for f in frames[1:] if f.motion is not None)
    [message] = _reencode_notices(notices)
    assert "range extensions (4:4:4) are not supported" in message and "\n" not in message
    with pytest.raises(UnsupportedCodecError, match="range extensions"):
        open_video(clips["p.mkv"], motion="bitstream")


def test_damaged_slice_data_switches_auto_to_the_reencode_from_there(
    clips: dict[str, Path], scripted: type[ScriptedParser], notices: pytest.LogCaptureFixture
) -> None:
    scripted.script = decode_order(clips["p.mp4"])
    scripted.fail_at = 6
    frames = list(decode_frames(clips["p.mkv"]))
    methods = [f.motion.method if f.motion is not None else None for f in frames]
    switch = methods.index("x264-reencode")
    assert 1 < switch <= 7 and set(methods[1:switch]) == {"bitstream"}
    assert set(methods[switch:]) <= {"x264-reencode", None} and methods.count(None) <= 2
    [message] = _reencode_notices(notices)
    assert "slice data ends inside a coding tree unit" in message
    # Asked for the bitstream, the remaining frames have no motion and a warning says so.
    notices.clear()
    forced = list(decode_frames(clips["p.mkv"], motion="bitstream"))
    assert all(f.motion is None for f in forced[7:]) and forced[1].motion is not None
    assert any("later frames have no motion" in r.getMessage() for r in notices.records)


def test_without_the_built_parser_hevc_takes_the_reencode_saying_why(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parser, "available", lambda: False)
    with open_video(clips["p.mkv"]) as reader:
        assert reader.plan.source == "reencode" and "not built" in (reader.plan.reason or "")
    with pytest.raises(UnsupportedCodecError, match="HEVC motion-vector parser is not built"):
        open_video(clips["p.mkv"], motion="bitstream")


def test_info_reports_bitstream_vectors_for_hevc(
    clips: dict[str, Path], scripted: type[ScriptedParser], capsys: pytest.CaptureFixture[str]
) -> None:
    scripted.script = decode_order(clips["p.mp4"])
    assert main(["info", str(clips["p.mkv"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["codec"] == "hevc" and report["bitstream_mvs"] is True and report["motion_auto"] == "bitstream"
    assert report["advice"] == ["The stream's own motion vectors chain exactly to the keyframe: no re-encode needed."]
    scripted.refuse = "range extensions are not supported"
    refused = probe_video(clips["p.mkv"])
    assert not refused.mvs_seen and refused.motion.source == "reencode"
    assert "range extensions are not supported" in refused.advice[0] and "no motion vectors" not in refused.advice[0]


def test_an_intra_only_hevc_stream_switches_auto_to_the_reencode(
    scripted: type[ScriptedParser], tmp_path: Path
) -> None:
    path = encode_hevc_clip(tmp_path / "intra.mkv", bframes=0, params=":keyint=1")
    scripted.script = decode_order(path)
    frames = list(decode_frames(path))
    assert {f.pict_type for f in frames} == {"I"} and frames[0].motion is None
    assert all(f.motion is not None and f.motion.method == "x264-reencode" for f in frames[1:])
