"""Read `max_num_ref_frames` from an H.264 sequence parameter set (ITU-T H.264, 7.3.2.1.1).

FFmpeg knows this value but PyAV does not expose it; arseg needs it to tell whether a P-frame may
refer to a frame other than the one before it. Only the fields in front of it are parsed.
"""

from __future__ import annotations

# Profiles whose SPS carries chroma format, bit depths and scaling matrices (H.264 7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_NAL_SPS = 7


class _Bits:
    """A big-endian bit reader with Exp-Golomb codes; reading past the end raises IndexError."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def bit(self) -> int:
        byte = self._data[self._pos >> 3]
        value = (byte >> (7 - (self._pos & 7))) & 1
        self._pos += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("malformed Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def max_ref_frames(extradata: bytes) -> int | None:
    """`max_num_ref_frames` of the first SPS in `extradata` (avcC or Annex B); None if none is readable."""
    sps = _first_sps(extradata)
    if sps is None:
        return None
    try:
        return _parse_max_refs(_unescape(sps))
    except (IndexError, ValueError):
        return None


def _first_sps(data: bytes) -> bytes | None:
    if len(data) > 8 and data[0] == 1:  # avcC (mp4, mkv): SPS count at 5, then 2-byte length + NAL
        if data[5] & 0x1F == 0:
            return None
        length = int.from_bytes(data[6:8], "big")
        nal = data[8 : 8 + length]
        return nal if nal and nal[0] & 0x1F == _NAL_SPS else None
    start = 0
    while True:  # Annex B (mpegts, raw .h264, avi): NAL units after 00 00 01 start codes
        start = data.find(b"\x00\x00\x01", start)
        if start < 0 or start + 3 >= len(data):
            return None
        start += 3
        if data[start] & 0x1F == _NAL_SPS:
            end = data.find(b"\x00\x00\x01", start)
            return data[start : end if end >= 0 else len(data)]


def _unescape(nal: bytes) -> bytes:
    """Drop emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _parse_max_refs(nal: bytes) -> int:
    bits = _Bits(nal[1:])  # skip the NAL header byte
    profile_idc = bits.bits(8)
    bits.bits(16)  # constraint flags, level_idc
    bits.ue()  # seq_parameter_set_id
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc == 3:
            bits.bit()  # separate_colour_plane_flag
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        bits.bit()  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        for _ in range(bits.ue()):
            bits.se()  # offset_for_ref_frame[i]
    return bits.ue()


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following != 0:
            following = (last + bits.se() + 256) % 256
        last = last if following == 0 else following
