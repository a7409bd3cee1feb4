"""The HEVC syntax layer: every picture of libx265 clips parses to the exact end of its slice data.

The walk decodes every CABAC bin of the slice data (SAO, coding tree, prediction and transform units,
residuals). The parser checks that end_of_slice_segment_flag comes exactly where the slice data ends (the
stop bit, zero alignment bits, nothing but cabac_zero_words after it) and that each WPP substream ends at
its entry point: one wrong context or binarisation desynchronises the arithmetic decoder and fails there.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from hevc_oracle import EncodedPacket, score_skipped_blocks

from arseg_cli.video.hevc import parser as hevc
from arseg_cli.video.synthetic import make_clip

pytestmark = pytest.mark.skipif(not hevc.available(), reason="the native HEVC parser is not built")

WIDTH, HEIGHT = 192, 128
DATA = Path(__file__).parent / "data"
CU_DTYPE = np.dtype(  # HevcCuSyntax (native/hevc_syntax.h)
    {
        "names": ["x0", "y0", "log2_size", "intra", "skip", "part_mode", "slice_idx"],
        "formats": ["<u2", "<u2", "u1", "u1", "u1", "u1", "<u2"],
        "offsets": [0, 2, 4, 5, 6, 7, 8],
        "itemsize": 10,
    }
)
AMP_PARTS = (4, 5, 6, 7)

# name -> (x265 parameters, the coding tools the stream must enable (and not enable: False));
# the pixel format is yuv420p unless the name starts with a key of PIXEL_FORMATS.
CONFIGS = {
    "ctb64-wpp": ("bframes=0", {"wpp": 1, "sao": 1}),
    "ctb64-no-wpp": ("bframes=0:wpp=0", {"wpp": 0}),
    "ctb32-amp": ("bframes=0:ctu=32:amp=1:rect=1:rd=6", {"amp": 1}),
    "ctb16-min8": ("bframes=0:ctu=16:min-cu-size=8", {}),
    "b3-ref3-weighted": ("bframes=3:ref=3:weightp=1:weightb=1", {"weighted_pred": 1, "weighted_bipred": 1}),
    "slices4": ("bframes=0:slices=4", {}),
    "rdoq-signhide": ("bframes=0:rdoq-level=2:signhide=1", {"sign_hiding": 1}),
    "no-rdoq-no-signhide": ("bframes=0:rdoq-level=0:signhide=0", {"sign_hiding": 0}),
    "tskip-deep-tu": (
        "bframes=0:tskip=1:tu-intra-depth=3:tu-inter-depth=3:max-tu-size=16:ctu=32",
        {"transform_skip": 1},
    ),
    "cu-qp-delta-no-sao": ("bframes=0:aq-mode=3:qg-size=16:sao=0", {"cu_qp_delta": 1, "sao": 0}),
    "lossless": ("bframes=0:lossless=1", {"transquant_bypass": 1}),
    "main10-b2": ("bframes=2:ref=2", {}),
    "monochrome-b2": ("bframes=2:ref=2", {}),
    "scaling-lists-constrained-intra": ("bframes=0:scaling-list=default:constrained-intra=1", {"scaling_list": 1}),
}
PIXEL_FORMATS = {"main10": "yuv420p10le", "monochrome": "gray"}


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return make_clip(frames=12, height=HEIGHT, width=WIDTH, pan_px=(2, 1), object_px=(-3, 2)).frames


def encode_mp4(frames: list[np.ndarray], x265_params: str, pix_fmt: str = "yuv420p") -> bytes:
    out_buffer = io.BytesIO()
    with av.open(out_buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx265", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pix_fmt
        stream.options = {"x265-params": f"keyint=12:{x265_params}:log-level=error"}
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return out_buffer.getvalue()


def demux(mp4: bytes) -> tuple[bytes, list[bytes]]:
    """(hvcC extradata, the packets in decoding order)."""
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        packets = [bytes(packet) for packet in container.demux(stream) if packet.size]
        return bytes(stream.codec_context.extradata), packets


def hvcc_length_size(extradata: bytes) -> int:
    return (extradata[21] & 3) + 1


def parse_syntax(extradata: bytes, packets: list[bytes]) -> list[dict]:
    native = hevc._hevcparse
    parser = native.Parser()
    length_size = hvcc_length_size(extradata)
    parameter_sets = b"".join(
        len(nal).to_bytes(4, "big") + nal for nal in hevc_parameter_sets(extradata)
    )
    assert parser.parse_syntax(parameter_sets, 4) == []
    pictures = []
    for packet in packets:
        pictures += parser.parse_syntax(packet, length_size)
    return pictures


def hevc_parameter_sets(extradata: bytes) -> list[bytes]:
    nals, pos = [], 23
    for _ in range(extradata[22]):
        count = int.from_bytes(extradata[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            nals.append(extradata[pos + 2 : pos + 2 + size])
            pos += 2 + size
    return nals


def coverage(cus: np.ndarray, width: int, height: int) -> np.ndarray:
    """How many CUs cover each luma sample (CUs past the picture edge are never coded)."""
    count = np.zeros((height, width), np.int32)
    for cu in cus:
        size = 1 << int(cu["log2_size"])
        count[cu["y0"] : cu["y0"] + size, cu["x0"] : cu["x0"] + size] += 1
    return count


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_picture_parses_to_the_end_of_its_slices(frames: list[np.ndarray], name: str) -> None:
    pix_fmt = PIXEL_FORMATS.get(name.split("-")[0], "yuv420p")
    x265_params, tools = CONFIGS[name]
    extradata, packets = demux(encode_mp4(frames, x265_params, pix_fmt))
    pictures = parse_syntax(extradata, packets)  # raises StreamError at any desynchronisation
    assert len(pictures) == len(frames) == len(packets)
    for picture in pictures:
        assert {key: picture["tools"][key] for key in tools} == tools
        cus = np.frombuffer(picture["cus"], CU_DTYPE)
        assert (coverage(cus, WIDTH, HEIGHT) == 1).all()
        assert (cus["x0"] < WIDTH).all() and (cus["y0"] < HEIGHT).all()
        ctb_slice = np.frombuffer(picture["ctb_slice_idx"], np.int32)
        assert (ctb_slice >= 0).all() and (ctb_slice < len(picture["slices"])).all()
        assert picture["bit_depth"] == (10 if "main10" in name else 8)
        types = {s["type"] for s in picture["slices"]}
        if types == {2}:  # I slices: intra only
            assert cus["intra"].all() and not cus["skip"].any()
    inter = [np.frombuffer(p["cus"], CU_DTYPE) for p in pictures if {s["type"] for s in p["slices"]} != {2}]
    inter_cus = np.concatenate(inter)
    if name != "lossless":
        # a textured pan: most of each inter picture is skipped, few blocks are intra
        skipped_area = sum(((1 << (2 * c["log2_size"].astype(np.int64))) * c["skip"]).sum() for c in inter)
        assert skipped_area > 0.3 * WIDTH * HEIGHT * len(inter)
        assert inter_cus["intra"].mean() < 0.2
    log2_ctb = pictures[0]["log2_ctb"]
    assert log2_ctb == {"ctb32-amp": 5, "ctb16-min8": 4, "tskip-deep-tu": 5}.get(name, 6)
    if name == "ctb16-min8":
        assert pictures[0]["log2_min_cb"] == 3 and (inter_cus["log2_size"] == 3).any()
    if name == "ctb32-amp":
        assert np.isin(inter_cus["part_mode"], AMP_PARTS).any()
    if name == "slices4":
        assert all(len(p["slices"]) > 1 for p in pictures)
    if name == "ctb64-wpp":
        assert all(p["slices"][0]["entry_points"] == 1 for p in pictures)  # 2 CTB rows


def test_motion_parser_reads_hvcc_packets_in_decoding_order(frames: list[np.ndarray]) -> None:
    extradata, packets = demux(encode_mp4(frames, "bframes=2:ref=2"))
    motion = hevc.HevcMotionParser(extradata)
    pictures = [motion.parse_packet(packet) for packet in packets]
    assert all(p is not None for p in pictures)
    assert [p.decode_index for p in pictures] == list(range(len(frames)))
    assert sorted(p.poc for p in pictures) == list(range(len(frames)))
    assert {p.slice_types for p in pictures} == {("I",), ("P",), ("B",)}
    for picture in pictures:
        assert (picture.width, picture.height, picture.crop, picture.bit_depth) == (WIDTH, HEIGHT, (0, 0, 0, 0), 8)
        assert picture.pus.dtype == hevc.PU_DTYPE and len(picture.pus) > 0
        area = (picture.pus["w"].astype(np.int64) * picture.pus["h"]).sum()
        assert area == WIDTH * HEIGHT  # the PUs and intra CUs tile the picture


def test_annex_b_packets_without_extradata(frames: list[np.ndarray]) -> None:
    extradata, packets = demux(encode_mp4(frames[:4], "bframes=0"))
    length_size = hvcc_length_size(extradata)
    start_code = b"\x00\x00\x00\x01"
    annex_b = [b"".join(start_code + nal for nal in hevc_parameter_sets(extradata))]
    for packet in packets:
        pos, nals = 0, []
        while pos < len(packet):
            size = int.from_bytes(packet[pos : pos + length_size], "big")
            nals.append(start_code + packet[pos + length_size : pos + length_size + size])
            pos += length_size + size
        annex_b.append(b"".join(nals))
    motion = hevc.HevcMotionParser(None)
    results = [motion.parse_packet(packet) for packet in annex_b]
    assert results[0] is None  # parameter sets only
    assert [r.poc for r in results[1:]] == [0, 1, 2, 3]


@pytest.mark.parametrize("pix_fmt", ["yuv444p", "yuv422p"])
def test_unsupported_chroma_is_refused_in_one_line(frames: list[np.ndarray], pix_fmt: str) -> None:
    extradata, _ = demux(encode_mp4(frames[:2], "bframes=0", pix_fmt))
    with pytest.raises(hevc.HevcUnsupported, match="not supported by the bitstream motion parser") as caught:
        hevc.HevcMotionParser(extradata)
    assert "\n" not in str(caught.value)


def test_corrupt_slice_data_raises_stream_error(frames: list[np.ndarray]) -> None:
    extradata, packets = demux(encode_mp4(frames[:4], "bframes=0"))
    rng = np.random.default_rng(0)
    errors = 0
    for trial in range(40):
        motion = hevc.HevcMotionParser(extradata)
        motion.parse_packet(packets[0])
        damaged = bytearray(packets[1])
        if trial % 2:
            damaged = damaged[: len(damaged) // 2]  # truncated: the length prefix now overruns
        else:
            position = int(rng.integers(len(damaged) // 2, len(damaged)))
            damaged[position] ^= 1 << int(rng.integers(8))
        try:
            motion.parse_packet(bytes(damaged))
        except hevc.HevcStreamError as error:
            assert "\n" not in str(error)
            errors += 1
    assert errors >= 30  # a flipped bit may land in cabac_zero_words or leave a valid stream


def test_import_without_the_extension() -> None:
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.endswith('_hevcparse'): raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from arseg_cli.video.hevc import parser\n"
        "assert not parser.available()\n"
        "try:\n"
        "    parser.HevcMotionParser(None)\n"
        "except parser.HevcUnsupported as error:\n"
        "    print(error)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARSEG_HEVC_NATIVE"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert "not built" in result.stdout


# libx265 codes no tiles, dependent slice segments or PCM: these clips (192x128) come from other encoders.
# kvazaar 2.3, --preset fast and
#   "--tiles 3x2 --wpp": uniform tiles, one slice, WPP inside each tile, SAO and deblocking on;
#   "--tiles-width-split 64 --tiles-height-split u2 --slices tiles --gop 8 --bipred --no-deblock --sao off":
#   tiles of 1 and 2 CTB columns, a slice per tile, B pictures.
# HM (TAppEncoder), --QP=30 --SliceMode=1 --SliceArgument=4 --SliceSegmentMode=1 --SliceSegmentArgument=2
#   --WaveFrontSynchro=1 --LoopFilterDisable=1 --SAO=0 with encoder_lowdelay_main.cfg: dependent slice
#   segments that start inside CTB rows (contexts carried over from the previous segment), WPP, B slices;
# HM, --QP=4 --PCMEnabledFlag=1 --PCMLog2MinSize=3 --PCMLog2MaxSize=4 --PCMInputBitDepthFlag=0
#   --PCMFilterDisableFlag=1 --SliceSegmentMode=1 --SliceSegmentArgument=4 with encoder_lowdelay_P_main.cfg
#   on a clip with a patch of noise: PCM coding units in I and P pictures.
# name -> (pictures, tiles, slice segments, dependent segments and PCM CUs per picture)
OTHER_ENCODER_CLIPS = {
    "hevc_kvazaar_tiles3x2_wpp.hevc": (6, 6, 1, 0, 0),
    "hevc_kvazaar_tiles_slices_b.hevc": (6, 4, 4, 0, 0),
    "hevc_hm_dependent_slices_wpp_b.hevc": (6, 1, 4, 2, 0),
    "hevc_hm_pcm.hevc": (2, 1, 2, 1, 6),
}
LOOP_FILTERS_OFF = ["hevc_kvazaar_tiles_slices_b.hevc", "hevc_hm_dependent_slices_wpp_b.hevc"]


def demux_annex_b(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(video=0) if packet.size]


@pytest.mark.parametrize("clip", list(OTHER_ENCODER_CLIPS))
def test_other_encoders_parse_to_the_end_of_every_substream(clip: str) -> None:
    n_pictures, tiles, segments, dependent, pcm = OTHER_ENCODER_CLIPS[clip]
    parser = hevc._hevcparse.Parser()
    pictures = [picture for packet in demux_annex_b(DATA / clip) for picture in parser.parse_syntax(packet, 0)]
    assert len(pictures) == n_pictures
    for picture in pictures:
        assert picture["tools"]["tiles"] == tiles and len(picture["slices"]) == segments
        assert sum(s["dependent"] for s in picture["slices"]) == dependent
        assert picture["pcm_cus"] == pcm
        assert (coverage(np.frombuffer(picture["cus"], CU_DTYPE), WIDTH, HEIGHT) == 1).all()


@pytest.mark.parametrize("clip", LOOP_FILTERS_OFF)
def test_other_encoders_motion_is_bit_exact(clip: str) -> None:
    packets = [EncodedPacket(data, index) for index, data in enumerate(demux_annex_b(DATA / clip))]
    score = score_skipped_blocks(packets)
    assert score.blocks >= 100 and score.bi_cus > 0
    assert score.exact_fraction >= 0.999
