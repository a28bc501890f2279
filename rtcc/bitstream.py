"""H.264 and H.265 bitstreams, shared by ingest (normalising what cameras send) and relay
(packetizing it): NAL unit types, Annex-B and AVCC framing, parameter sets (avcC/hvcC, SDP
sprop-parameter-sets), SPS and slice-header reading, keyframe and H.265 detection.

Pure functions over bytes; the stateful normaliser built on them lives in ``ingest.normalizer``.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal


class BitstreamError(ValueError):
    """The bytes are not the H.264/H.265 structure they claim to be."""


def unescape_rbsp(nal: bytes) -> bytes:
    """Remove emulation prevention bytes (00 00 03 -> 00 00)."""
    if b"\x00\x00\x03" not in nal:
        return nal
    out = bytearray()
    zeros = 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class BitReader:
    """Big-endian bits and Exp-Golomb codes from an unescaped RBSP."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def bit(self) -> int:
        byte = self._pos >> 3
        if byte >= len(self._data):
            raise BitstreamError("the syntax element runs past the end of the data")
        value = (self._data[byte] >> (7 - (self._pos & 7))) & 1
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
                raise BitstreamError("invalid Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


START_CODE = b"\x00\x00\x00\x01"
_SHORT_START = b"\x00\x00\x01"

Codec = Literal["h264", "h265"]


class NalType(enum.IntEnum):
    """H.264 NAL unit types (ITU-T H.264 table 7-1; STAP-A and FU-A from RFC 6184)."""

    SLICE = 1
    IDR = 5
    SEI = 6
    SPS = 7
    PPS = 8
    AUD = 9
    END_SEQUENCE = 10
    END_STREAM = 11
    FILLER = 12
    STAP_A = 24
    FU_A = 28


class HevcNalType(enum.IntEnum):
    """H.265 NAL unit types (ITU-T H.265 table 7-1)."""

    BLA_W_LP = 16
    IDR_W_RADL = 19
    IDR_N_LP = 20
    CRA = 21
    VPS = 32
    SPS = 33
    PPS = 34
    AUD = 35
    PREFIX_SEI = 39


_H264_PARAMS = (NalType.SPS, NalType.PPS)
_H265_PARAMS = (HevcNalType.VPS, HevcNalType.SPS, HevcNalType.PPS)


def normalize_codec_name(name: str) -> str:
    """Map demuxer and SDP spellings to ``h264``/``h265``; other names come back lower-case."""
    lowered = name.lower()
    if lowered in ("h264", "avc", "avc1", "avc3", "libx264"):
        return "h264"
    if lowered in ("hevc", "h265", "hvc1", "hev1", "libx265"):
        return "h265"
    return lowered


# -- framing --------------------------------------------------------------------------------


def nal_spans(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each NAL unit in Annex-B data, start codes and trailing zeros excluded."""
    pos = data.find(_SHORT_START)
    while pos >= 0:
        start = pos + 3
        nxt = data.find(_SHORT_START, start)
        end = len(data) if nxt < 0 else nxt
        # A NAL unit never ends in a zero byte (H.264 7.4.1): zeros before the next start code
        # belong to it (the 4-byte form, or trailing_zero_8bits).
        while end > start and data[end - 1] == 0:
            end -= 1
        if end > start:
            yield start, end
        pos = nxt


def is_annexb(data: bytes) -> bool:
    return data.startswith(_SHORT_START) or data.startswith(START_CODE)


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of Annex-B data, without start codes. Bytes before the first start code
    are not a NAL unit and are ignored."""
    return [data[start:end] for start, end in nal_spans(data)]


def join_annexb(nals: Iterable[bytes]) -> bytes:
    """Annex-B data with a 4-byte start code before every NAL unit."""
    return b"".join(START_CODE + nal for nal in nals if nal)


def split_avcc(data: bytes, length_size: int = 4) -> list[bytes]:
    """The NAL units of length-prefixed (MP4 "AVCC"/"HVCC") data."""
    if length_size not in (1, 2, 4):
        raise BitstreamError(f"NAL length size must be 1, 2 or 4 bytes, not {length_size}")
    nals: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + length_size > len(data):
            raise BitstreamError("length-prefixed NAL data ends inside a length field")
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if pos + size > len(data):
            raise BitstreamError(
                f"a NAL unit claims {size} bytes but only {len(data) - pos} remain"
            )
        if size:
            nals.append(data[pos : pos + size])
        pos += size
    return nals


def avcc_to_annexb(data: bytes, length_size: int = 4) -> bytes:
    return join_annexb(split_avcc(data, length_size))


# -- NAL headers ----------------------------------------------------------------------------


def nal_type(nal: bytes, codec: Codec = "h264") -> int:
    if not nal:
        raise BitstreamError("empty NAL unit")
    if codec == "h265":
        return (nal[0] >> 1) & 0x3F
    return nal[0] & 0x1F


def nal_types(
    data: bytes, codec: Codec = "h264", *, until_first_slice: bool = False
) -> list[int]:
    """The NAL unit types in Annex-B data, in order, without copying the payloads.

    With ``until_first_slice`` the scan stops after the first slice (VCL) NAL unit: every slice
    of an access unit belongs to the same picture, so that prefix already tells whether it is a
    keyframe and whether parameter sets precede it, without searching the slice data for start
    codes. This is the per-frame path of every camera.
    """
    types: list[int] = []
    find = data.find
    size = len(data)
    h265 = codec == "h265"
    pos = find(_SHORT_START)
    while pos >= 0:
        start = pos + 3
        if start >= size:
            break
        header = data[start]
        kind = (header >> 1) & 0x3F if h265 else header & 0x1F
        if until_first_slice and (kind < 32 if h265 else 1 <= kind <= 5):
            types.append(kind)
            break
        nxt = find(_SHORT_START, start)
        if header == 0 and not data[start : nxt if nxt >= 0 else size].strip(b"\x00"):
            pos = nxt  # zero padding between start codes, not a NAL unit
            continue
        types.append(kind)
        pos = nxt
    return types


def is_keyframe_type(kind: int, codec: Codec) -> bool:
    if codec == "h265":
        return HevcNalType.BLA_W_LP <= kind <= HevcNalType.CRA
    return kind == NalType.IDR


def is_vcl_type(kind: int, codec: Codec) -> bool:
    return kind < 32 if codec == "h265" else 1 <= kind <= 5


def parameter_types(codec: Codec) -> tuple[int, ...]:
    return _H265_PARAMS if codec == "h265" else _H264_PARAMS


def is_keyframe(data: bytes, codec: Codec = "h264") -> bool:
    """True if the Annex-B access unit holds an IDR picture (H.265: an IRAP picture)."""
    return any(is_keyframe_type(kind, codec) for kind in nal_types(data, codec))


def looks_like_h265(data: bytes) -> bool:
    """True if Annex-B data carries H.265 headers (a VPS, SPS, PPS or access unit delimiter
    with the two-byte H.265 header), which are not valid H.264 NAL units."""
    for start, end in nal_spans(data):
        if end - start < 2:
            continue
        first, second = data[start], data[start + 1]
        kind = (first >> 1) & 0x3F
        layer_and_tid_ok = (first & 0x81) == 0 and (second >> 3) == 0 and (second & 7) >= 1
        if layer_and_tid_ok and kind in (32, 33, 34, 35):
            return True
    return False


# -- parameter sets -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParameterSets:
    """The decoder configuration: H.264 SPS/PPS (and H.265 VPS) NAL units."""

    sps: tuple[bytes, ...] = ()
    pps: tuple[bytes, ...] = ()
    vps: tuple[bytes, ...] = ()
    length_size: int = 4
    """NAL length field size of AVCC packets (from avcC/hvcC), 4 when unknown."""

    def complete(self, codec: Codec = "h264") -> bool:
        if codec == "h265":
            return bool(self.vps and self.sps and self.pps)
        return bool(self.sps and self.pps)

    def nals(self) -> tuple[bytes, ...]:
        return self.vps + self.sps + self.pps

    def annexb(self) -> bytes:
        return join_annexb(self.nals())


def classify_parameter_sets(
    nals: Iterable[bytes], codec: Codec, length_size: int = 4
) -> ParameterSets:
    """Sort NAL units into VPS/SPS/PPS (other types are ignored, duplicates dropped)."""
    vps: list[bytes] = []
    sps: list[bytes] = []
    pps: list[bytes] = []
    buckets: dict[int, list[bytes]]
    if codec == "h265":
        buckets = {HevcNalType.VPS: vps, HevcNalType.SPS: sps, HevcNalType.PPS: pps}
    else:
        buckets = {NalType.SPS: sps, NalType.PPS: pps}
    for nal in nals:
        bucket = buckets.get(nal_type(nal, codec)) if nal else None
        if bucket is not None and nal not in bucket:
            bucket.append(nal)
    return ParameterSets(tuple(sps), tuple(pps), tuple(vps), length_size)


def parse_avcc_extradata(extradata: bytes) -> ParameterSets:
    """SPS and PPS from an ``avcC`` box (ISO 14496-15 AVCDecoderConfigurationRecord)."""
    if len(extradata) < 7 or extradata[0] != 1:
        raise BitstreamError("not an avcC record (it must start with version 1)")
    length_size = (extradata[4] & 0x03) + 1
    if length_size == 3:
        raise BitstreamError("avcC declares a 3-byte NAL length, which is not allowed")
    pos = 5
    groups: list[list[bytes]] = []
    for count_mask in (0x1F, 0xFF):
        if pos >= len(extradata):
            raise BitstreamError("avcC record is truncated")
        count = extradata[pos] & count_mask
        pos += 1
        group: list[bytes] = []
        for _ in range(count):
            if pos + 2 > len(extradata):
                raise BitstreamError("avcC record is truncated")
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            pos += 2
            if pos + size > len(extradata):
                raise BitstreamError("avcC parameter set runs past the end of the record")
            group.append(extradata[pos : pos + size])
            pos += size
        groups.append(group)
    return ParameterSets(tuple(groups[0]), tuple(groups[1]), (), length_size)


def parse_hvcc_extradata(extradata: bytes) -> ParameterSets:
    """VPS, SPS and PPS from an ``hvcC`` box (HEVCDecoderConfigurationRecord)."""
    if len(extradata) < 23 or extradata[0] != 1:
        raise BitstreamError("not an hvcC record (it must start with version 1)")
    length_size = (extradata[21] & 0x03) + 1
    arrays = extradata[22]
    pos = 23
    nals: list[bytes] = []
    for _ in range(arrays):
        if pos + 3 > len(extradata):
            raise BitstreamError("hvcC record is truncated")
        count = int.from_bytes(extradata[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            if pos + 2 > len(extradata):
                raise BitstreamError("hvcC record is truncated")
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            pos += 2
            if pos + size > len(extradata):
                raise BitstreamError("hvcC parameter set runs past the end of the record")
            nals.append(extradata[pos : pos + size])
            pos += size
    return classify_parameter_sets(nals, "h265", length_size)


def parse_extradata(extradata: bytes, codec: Codec = "h264") -> ParameterSets:
    """Parameter sets from a demuxer's extradata: Annex-B (RTSP, MPEG-TS) or avcC/hvcC (MP4)."""
    if not extradata:
        return ParameterSets()
    if is_annexb(extradata):
        return classify_parameter_sets(split_annexb(extradata), codec)
    if codec == "h265":
        return parse_hvcc_extradata(extradata)
    return parse_avcc_extradata(extradata)


def extradata_is_length_prefixed(extradata: bytes) -> bool:
    """True when extradata is an avcC/hvcC record, i.e. the packets are length-prefixed."""
    return bool(extradata) and extradata[0] == 1


def parse_sprop_parameter_sets(value: str) -> ParameterSets:
    """SPS and PPS from an SDP ``sprop-parameter-sets`` value (RFC 6184: base64, commas)."""
    nals: list[bytes] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            nals.append(base64.b64decode(item + "=" * (-len(item) % 4), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise BitstreamError(f"sprop-parameter-sets holds invalid base64: {exc}") from None
    return classify_parameter_sets(nals, "h264")


# -- SPS ------------------------------------------------------------------------------------


_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_PROFILE_NAMES = {
    66: "baseline",
    77: "main",
    88: "extended",
    100: "high",
    110: "high 10",
    122: "high 4:2:2",
    244: "high 4:4:4",
    44: "cavlc 4:4:4",
}


@dataclass(frozen=True, slots=True)
class SpsInfo:
    """What an H.264 sequence parameter set says about the picture."""

    profile_idc: int
    constraint_flags: int
    level_idc: int
    width: int
    height: int
    fps: float = 0.0
    """From the VUI timing information, 0 when the camera does not say."""
    max_num_reorder_frames: int | None = None
    """From the VUI bitstream restriction: above 0 means B-frames; None when not said."""

    @property
    def profile(self) -> str:
        return _PROFILE_NAMES.get(self.profile_idc, f"profile {self.profile_idc}")

    @property
    def constrained_baseline(self) -> bool:
        return self.profile_idc == 66 and bool(self.constraint_flags & 0x40)

    @property
    def level(self) -> str:
        if self.level_idc == 9 or (
            self.level_idc == 11 and self.profile_idc in (66, 77, 88)
            and self.constraint_flags & 0x10
        ):
            return "1b"
        return f"{self.level_idc // 10}.{self.level_idc % 10}"

    @property
    def profile_level_id(self) -> str:
        """The RFC 6184 ``profile-level-id`` (six hex digits) of this stream."""
        return f"{self.profile_idc:02x}{self.constraint_flags:02x}{self.level_idc:02x}"


def _skip_scaling_list(reader: BitReader, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + reader.se() + 256) % 256
        last = next_scale or last


def parse_sps(nal: bytes) -> SpsInfo:
    """Profile, level, picture size and frame rate from an H.264 SPS NAL unit (with header)."""
    if len(nal) < 4 or nal[0] & 0x1F != NalType.SPS:
        raise BitstreamError("not an H.264 sequence parameter set")
    reader = BitReader(unescape_rbsp(nal[1:]))
    profile_idc = reader.bits(8)
    constraints = reader.bits(8)
    level_idc = reader.bits(8)
    reader.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    separate_planes = 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = reader.ue()
        if chroma_format_idc == 3:
            separate_planes = reader.bit()
        reader.ue()  # bit_depth_luma_minus8
        reader.ue()  # bit_depth_chroma_minus8
        reader.bit()  # qpprime_y_zero_transform_bypass_flag
        if reader.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if reader.bit():
                    _skip_scaling_list(reader, 16 if index < 6 else 64)
    reader.ue()  # log2_max_frame_num_minus4
    poc_type = reader.ue()
    if poc_type == 0:
        reader.ue()
    elif poc_type == 1:
        reader.bit()
        reader.se()
        reader.se()
        for _ in range(reader.ue()):
            reader.se()
    reader.ue()  # max_num_ref_frames
    reader.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = reader.ue() + 1
    height_units = reader.ue() + 1
    frame_mbs_only = reader.bit()
    if not frame_mbs_only:
        reader.bit()  # mb_adaptive_frame_field_flag
    reader.bit()  # direct_8x8_inference_flag
    crop = (0, 0, 0, 0)
    if reader.bit():
        crop = (reader.ue(), reader.ue(), reader.ue(), reader.ue())
    chroma_array_type = 0 if separate_planes else chroma_format_idc
    if chroma_array_type == 0:
        unit_x, unit_y = 1, 2 - frame_mbs_only
    else:
        unit_x = 1 if chroma_format_idc == 3 else 2
        unit_y = (2 if chroma_format_idc == 1 else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - unit_y * (crop[2] + crop[3])
    vui = _Vui()
    try:
        if reader.bit():  # vui_parameters_present_flag
            _read_vui(reader, vui)
    except BitstreamError:
        pass  # a truncated VUI does not make the picture size wrong: keep what was read
    if width <= 0 or height <= 0:
        raise BitstreamError("sequence parameter set gives an empty picture")
    return SpsInfo(profile_idc, constraints, level_idc, width, height, vui.fps,
                   vui.max_num_reorder_frames)


@dataclass(slots=True)
class _Vui:
    fps: float = 0.0
    max_num_reorder_frames: int | None = None


def _skip_hrd(reader: BitReader) -> None:
    count = reader.ue() + 1  # cpb_cnt_minus1
    if count > 32:
        raise BitstreamError("invalid HRD parameters")
    reader.bits(8)  # bit_rate_scale, cpb_size_scale
    for _ in range(count):
        reader.ue()  # bit_rate_value_minus1
        reader.ue()  # cpb_size_value_minus1
        reader.bit()  # cbr_flag
    reader.bits(20)  # four delay and offset lengths, 5 bits each


def _read_vui(reader: BitReader, vui: _Vui) -> None:
    timing = _vui_fps(reader)
    if timing is not None:
        vui.fps = timing
        reader.bit()  # fixed_frame_rate_flag
    nal_hrd = reader.bit()
    if nal_hrd:
        _skip_hrd(reader)
    vcl_hrd = reader.bit()
    if vcl_hrd:
        _skip_hrd(reader)
    if nal_hrd or vcl_hrd:
        reader.bit()  # low_delay_hrd_flag
    reader.bit()  # pic_struct_present_flag
    if reader.bit():  # bitstream_restriction_flag
        reader.bit()  # motion_vectors_over_pic_boundaries_flag
        for _ in range(4):  # max_bytes_per_pic_denom .. log2_max_mv_length_vertical
            reader.ue()
        vui.max_num_reorder_frames = reader.ue()


def _vui_fps(reader: BitReader) -> float | None:
    """The frame rate of the VUI timing information (0 when unusable); None without one."""
    if reader.bit() and reader.bits(8) == 255:  # aspect_ratio_info, Extended_SAR
        reader.bits(32)
    if reader.bit():  # overscan_info_present_flag
        reader.bit()
    if reader.bit():  # video_signal_type_present_flag
        reader.bits(4)
        if reader.bit():
            reader.bits(24)
    if reader.bit():  # chroma_loc_info_present_flag
        reader.ue()
        reader.ue()
    if not reader.bit():  # timing_info_present_flag
        return None
    units = reader.bits(32)
    scale = reader.bits(32)
    if not units or not scale:
        return 0.0
    return round(scale / (2 * units), 3)


def first_sps_info(params: ParameterSets) -> SpsInfo | None:
    for sps in params.sps:
        try:
            return parse_sps(sps)
        except BitstreamError:
            continue
    return None


def starts_new_picture(nal: bytes, codec: Codec = "h264") -> bool:
    """True if this slice NAL unit is the first slice of its picture (first_mb_in_slice == 0;
    H.265: first_slice_segment_in_pic_flag)."""
    if codec == "h265":
        return len(nal) > 2 and bool(nal[2] & 0x80)
    if len(nal) < 2:
        return True
    try:
        return BitReader(unescape_rbsp(nal[1:9])).ue() == 0
    except BitstreamError:
        return True


def slice_type(nal: bytes) -> int | None:
    """The slice_type (0-4: P, B, I, SP, SI) of an H.264 coded slice NAL unit, or None."""
    if not nal or nal[0] & 0x1F not in (NalType.SLICE, NalType.IDR):
        return None
    try:
        reader = BitReader(unescape_rbsp(nal[1:12]))
        reader.ue()  # first_mb_in_slice
        return reader.ue() % 5
    except BitstreamError:
        return None


def has_b_slice(nals: Iterable[bytes]) -> bool:
    """True if an H.264 picture is a B picture (judged by its first slice: all slices of a
    picture have the same type in practice)."""
    for nal in nals:
        kind = slice_type(nal)
        if kind is not None:
            return kind == 1
    return False
