"""H.264/H.265 bitstream parsing fed arbitrary bytes: a list, a value, or BitstreamError."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from rtcc import bitstream
from rtcc.bitstream import BitstreamError, ParameterSets, SpsInfo

START = st.sampled_from([b"\x00\x00\x01", b"\x00\x00\x00\x01"])
# NAL-ish chunks: a header byte of any type, then a short payload, often around start codes.
nal = st.builds(lambda head, body: bytes([head]) + body, st.integers(0, 255),
                st.binary(max_size=40))
annexb = st.lists(st.tuples(START, nal), max_size=6).map(
    lambda parts: b"".join(start + unit for start, unit in parts))
noise = st.one_of(st.binary(max_size=200), annexb)
codec = st.sampled_from(["h264", "h265"])


@given(noise)
@example(b"\x00\x00\x01")
@example(b"\x00\x00\x00\x00\x01\x00\x00\x01")
def test_annexb_split_returns_nal_units(data: bytes) -> None:
    units = bitstream.split_annexb(data)
    assert all(isinstance(unit, bytes) for unit in units)
    assert isinstance(bitstream.is_annexb(data), bool)
    for start, end in bitstream.nal_spans(data):
        assert 0 <= start <= end <= len(data)


@given(st.binary(max_size=200), st.sampled_from([1, 2, 3, 4, 0, 8]))
@example(b"\x00\x00\x00\x05ab", 4)
def test_avcc_split_returns_units_or_bitstream_error(data: bytes, length_size: int) -> None:
    try:
        units = bitstream.split_avcc(data, length_size)
    except BitstreamError:
        return
    assert length_size in (1, 2, 4)
    assert sum(len(unit) + length_size for unit in units) == len(data)
    assert isinstance(bitstream.avcc_to_annexb(data, length_size), bytes)


@given(st.binary(max_size=8), codec)
@example(b"", "h264")
@example(b"\x40", "h265")
def test_nal_type_is_an_int_or_bitstream_error(unit: bytes, which: bitstream.Codec) -> None:
    try:
        kind = bitstream.nal_type(unit, which)
    except BitstreamError:
        return
    assert 0 <= kind < 64
    assert isinstance(bitstream.is_keyframe_type(kind, which), bool)


@given(noise, codec, st.booleans())
def test_nal_types_and_keyframe_detection_never_crash(
    data: bytes, which: bitstream.Codec, until_first_slice: bool
) -> None:
    kinds = bitstream.nal_types(data, which, until_first_slice=until_first_slice)
    assert all(isinstance(kind, int) for kind in kinds)
    assert isinstance(bitstream.is_keyframe(data, which), bool)
    assert isinstance(bitstream.looks_like_h265(data), bool)


@given(st.binary(max_size=120))
@example(b"\x67")
@example(b"\x67\x64\x00\x1f")
@example(b"\x67\x42\xc0\x1f\xff")
def test_sps_parsing_returns_info_or_bitstream_error(body: bytes) -> None:
    for unit in (body, b"\x67" + body, b"\x67\x64" + body):
        try:
            info = bitstream.parse_sps(unit)
        except BitstreamError:
            continue
        assert isinstance(info, SpsInfo)
        assert info.width > 0
        assert info.height > 0
        assert len(info.profile_level_id) == 6


@given(st.binary(max_size=60))
@example(b"\x65")
@example(b"\x41\x00")
def test_slice_type_is_small_or_none(body: bytes) -> None:
    for unit in (body, b"\x65" + body, b"\x41" + body):
        kind = bitstream.slice_type(unit)
        assert kind is None or 0 <= kind <= 9
        assert isinstance(bitstream.starts_new_picture(unit, "h264"), bool)
        assert isinstance(bitstream.starts_new_picture(unit, "h265"), bool)
    assert isinstance(bitstream.has_b_slice([body]), bool)


@given(st.binary(max_size=200), codec)
@example(b"\x01", "h264")
@example(b"\x01\x64\x00\x1f\xff\xe1\x00\x10", "h264")
@example(b"\x01" + b"\x00" * 21 + b"\x01\x20\x00\x01\x00\x05", "h265")
def test_extradata_parsing_returns_parameter_sets_or_bitstream_error(
    data: bytes, which: bitstream.Codec
) -> None:
    try:
        params = bitstream.parse_extradata(data, which)
    except BitstreamError:
        return
    assert isinstance(params, ParameterSets)
    assert isinstance(bitstream.extradata_is_length_prefixed(data), bool)
    info = bitstream.first_sps_info(params) if which == "h264" else None
    assert info is None or isinstance(info, SpsInfo)


@given(st.text(max_size=200))
@example("Z0IAH5WoFAFuQA==,aM48gA==")
@example(",")
@example("!!!")
def test_sprop_parameter_sets_parse_or_bitstream_error(value: str) -> None:
    try:
        params = bitstream.parse_sprop_parameter_sets(value)
    except BitstreamError:
        return
    assert isinstance(params, ParameterSets)
