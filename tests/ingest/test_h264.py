"""rtcc.bitstream and ingest.normalizer against real encoder output made by the ffmpeg binary."""

from __future__ import annotations

import base64
import itertools
import shutil
import subprocess
from pathlib import Path

import av
import pytest

from ingest.normalizer import (
    DemuxedUnit,
    KeyframeJoiner,
    Normalizer,
    ParameterSetInjector,
    TimestampUnwrapper,
)
from rtcc import bitstream
from rtcc.bitstream import BitstreamError

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary")

FRAMES = 60


def _encode(out: Path, *args: str, size: str = "320x240", codec: str = "libx264") -> Path:
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
        "-frames:v", str(FRAMES), "-c:v", codec, "-bf", "0", "-g", "30", *args, str(out),
    ]
    subprocess.run(cmd, check=True, timeout=60)
    return out


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("h264")
    return {
        "annexb": _encode(folder / "clip.h264"),
        "mp4": _encode(folder / "clip.mp4"),
        "slices": _encode(folder / "slices.h264", "-x264-params", "slices=2"),
        "baseline": _encode(folder / "base.h264", "-profile:v", "baseline", size="426x240"),
        "main": _encode(folder / "main.h264", "-profile:v", "main", size="640x360"),
        "bframes": _encode(folder / "bframes.h264", "-bf", "2", "-x264-params", "b-pyramid=0"),
        "hevc": _encode(folder / "clip.h265", "-x265-params", "log-level=error",
                        codec="libx265"),
    }


def _access_units(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def _mp4_packets(path: Path) -> tuple[bytes, list[bytes]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        extradata = bytes(stream.codec_context.extradata or b"")
        return extradata, [bytes(p) for p in container.demux(stream) if p.size]


def _decode(units: list[bytes], codec: str = "h264") -> list[tuple[int, int]]:
    """Decode Annex-B access units with no extradata: only what is in the bytes counts."""
    decoder = av.CodecContext.create(codec, "r")
    sizes = []
    for unit in units:
        for frame in decoder.decode(av.Packet(unit)):
            sizes.append((frame.width, frame.height))
    for frame in decoder.decode(None):
        sizes.append((frame.width, frame.height))
    return sizes


def test_split_annexb_finds_parameter_sets_and_slices(media: dict[str, Path]) -> None:
    data = media["annexb"].read_bytes()
    nals = bitstream.split_annexb(data)
    kinds = [bitstream.nal_type(nal) for nal in nals]
    assert kinds[:2] == [bitstream.NalType.SPS, bitstream.NalType.PPS]
    assert kinds.count(bitstream.NalType.IDR) == 2  # -g 30 over 60 frames
    assert kinds.count(bitstream.NalType.SLICE) == FRAMES - 2
    assert bitstream.nal_types(data) == kinds
    # Re-framed with 4-byte start codes, every access unit decodes.
    units = _access_units(media["annexb"])
    reframed = [bitstream.join_annexb(bitstream.split_annexb(unit)) for unit in units]
    assert b"".join(reframed).count(bitstream.START_CODE) == len(nals)
    assert _decode(reframed) == [(320, 240)] * FRAMES


def test_split_annexb_ignores_leading_garbage_and_trailing_zeros() -> None:
    data = b"\xff\xfe" + b"\x00\x00\x01\x67\x42" + b"\x00\x00" + b"\x00\x00\x00\x01\x68\xce\x00"
    assert bitstream.split_annexb(data) == [b"\x67\x42", b"\x68\xce"]
    assert bitstream.split_annexb(b"no start code") == []


def test_mp4_avcc_converted_with_parameter_sets_before_every_idr(media: dict[str, Path]) -> None:
    extradata, packets = _mp4_packets(media["mp4"])
    assert bitstream.extradata_is_length_prefixed(extradata)
    params = bitstream.parse_avcc_extradata(extradata)
    assert params.length_size == 4
    assert len(params.sps) == 1
    assert len(params.pps) == 1
    # The MP4 keeps SPS/PPS only in avcC: its IDR packets carry none.
    raw = [bitstream.avcc_to_annexb(p, params.length_size) for p in packets]
    assert bitstream.NalType.SPS not in bitstream.nal_types(raw[30])

    injector = ParameterSetInjector("h264", params)
    out = [injector.process(unit) for unit in raw]
    keyframes = [i for i, (_, key) in enumerate(out) if key]
    assert keyframes == [0, 30]
    assert injector.inserted == 2
    for index in keyframes:
        assert bitstream.nal_types(out[index][0])[:3] == [
            bitstream.NalType.SPS, bitstream.NalType.PPS, bitstream.NalType.SEI
        ] or bitstream.nal_types(out[index][0])[:3] == [
            bitstream.NalType.SPS, bitstream.NalType.PPS, bitstream.NalType.IDR
        ]
    # A decoder that joins at the second keyframe, with no extradata, decodes every frame.
    assert _decode([data for data, _ in out[30:]]) == [(320, 240)] * 30


def test_extradata_forms_agree(media: dict[str, Path]) -> None:
    extradata, _ = _mp4_packets(media["mp4"])
    from_avcc = bitstream.parse_extradata(extradata)
    from_annexb = bitstream.parse_extradata(from_avcc.annexb())
    assert from_annexb.sps == from_avcc.sps
    assert from_annexb.pps == from_avcc.pps


def test_sprop_parameter_sets_round_trip(media: dict[str, Path]) -> None:
    units = _access_units(media["annexb"])
    params = bitstream.parse_extradata(units[0])  # the first access unit carries SPS/PPS in-band
    sprop = ",".join(base64.b64encode(n).decode() for n in (*params.sps, *params.pps))
    parsed = bitstream.parse_sprop_parameter_sets(sprop)
    assert parsed.sps == params.sps
    assert parsed.pps == params.pps
    # Unpadded base64 (seen in cameras' SDP) is accepted too.
    assert bitstream.parse_sprop_parameter_sets(sprop.replace("=", "")).sps == params.sps
    with pytest.raises(BitstreamError, match="invalid base64"):
        bitstream.parse_sprop_parameter_sets("Z0IA*,aM4")


def test_injector_uses_in_band_parameter_sets_and_keeps_them(media: dict[str, Path]) -> None:
    units = _access_units(media["annexb"])
    injector = ParameterSetInjector("h264")
    _, key = injector.process(units[0])
    assert key
    assert injector.inserted == 0
    assert injector.params.complete()
    # Strip the in-band SPS/PPS from the second keyframe: the injector puts them back.
    stripped = bitstream.join_annexb(
        n for n in bitstream.split_annexb(units[30])
        if bitstream.nal_type(n) not in (bitstream.NalType.SPS, bitstream.NalType.PPS)
    )
    fixed, key = injector.process(stripped)
    assert key
    assert injector.inserted == 1
    assert _decode([fixed, *units[31:]]) == [(320, 240)] * 30
    # Non-keyframes pass through untouched (same object, no copy).
    assert injector.process(units[1])[0] is units[1]


def test_keyframe_without_any_parameter_sets_is_not_a_starting_point(
    media: dict[str, Path]
) -> None:
    units = _access_units(media["annexb"])
    stripped = bitstream.join_annexb(
        n for n in bitstream.split_annexb(units[0]) if bitstream.nal_type(n) == bitstream.NalType.IDR
    )
    injector = ParameterSetInjector("h264")
    assert injector.process(stripped) == (stripped, False)
    assert injector.unusable_keyframes == 1


def test_keyframe_detection(media: dict[str, Path]) -> None:
    units = _access_units(media["annexb"])
    assert [i for i, u in enumerate(units) if bitstream.is_keyframe(u)] == [0, 30]
    slices = _access_units(media["slices"])
    assert bitstream.nal_types(slices[0]) == [7, 8, 6, 5, 5]
    assert bitstream.nal_types(slices[0], until_first_slice=True) == [7, 8, 6, 5]
    assert bitstream.nal_types(slices[1], until_first_slice=True) == [1]


@pytest.mark.parametrize(
    ("name", "profile", "size"),
    [("annexb", "high", (320, 240)), ("baseline", "baseline", (426, 240)),
     ("main", "main", (640, 360))],
)
def test_sps_profile_level_size_fps(
    media: dict[str, Path], name: str, profile: str, size: tuple[int, int]
) -> None:
    params = bitstream.parse_extradata(_access_units(media[name])[0])
    info = bitstream.first_sps_info(params)
    assert info is not None
    assert info.profile == profile
    assert (info.width, info.height) == size  # 426 is not a multiple of 16: cropping applied
    assert info.fps == 30.0
    assert info.level.count(".") == 1
    assert len(info.profile_level_id) == 6
    with av.open(str(media[name])) as container:
        assert container.streams.video[0].codec_context.profile.lower().endswith(profile)


def test_sps_reorder_depth_tells_b_frames_before_any_b_picture(
    media: dict[str, Path]
) -> None:
    reorder: dict[str, int | None] = {}
    for name in ("annexb", "bframes"):
        info = bitstream.first_sps_info(bitstream.parse_extradata(_access_units(media[name])[0]))
        assert info is not None
        reorder[name] = info.max_num_reorder_frames
    assert reorder == {"annexb": 0, "bframes": 1}
    b_pictures = [bitstream.has_b_slice(bitstream.split_annexb(unit))
                  for unit in _access_units(media["bframes"])]
    assert any(b_pictures)
    assert not b_pictures[0]


def test_h265_detection_and_keyframes(media: dict[str, Path]) -> None:
    data = media["hevc"].read_bytes()
    assert bitstream.looks_like_h265(data)
    assert not bitstream.looks_like_h265(media["annexb"].read_bytes())
    units = _access_units(media["hevc"])
    assert [i for i, u in enumerate(units) if bitstream.is_keyframe(u, "h265")][:1] == [0]
    params = bitstream.parse_extradata(units[0], "h265")
    assert params.complete("h265")
    assert bitstream.normalize_codec_name("hevc") == "h265"
    assert bitstream.normalize_codec_name("H264") == "h264"


def test_joiner_merges_an_idr_split_at_repeated_parameter_sets(media: dict[str, Path]) -> None:
    units = _access_units(media["slices"])
    nals = bitstream.split_annexb(units[0])
    slices = [n for n in nals if bitstream.nal_type(n) == bitstream.NalType.IDR]
    assert len(slices) == 2
    assert bitstream.starts_new_picture(slices[0])
    assert not bitstream.starts_new_picture(slices[1])
    params = [n for n in nals if bitstream.nal_type(n) in (bitstream.NalType.SPS, bitstream.NalType.PPS)]
    # What FFmpeg's parser makes of an RTSP camera that repeats SPS/PPS before every slice.
    first = bitstream.join_annexb([*params, slices[0]])
    second = bitstream.join_annexb([*params, slices[1]])

    joiner = KeyframeJoiner()
    assert joiner.push(DemuxedUnit(first, None, None)) == []
    assert joiner.push(DemuxedUnit(second, 0, 0)) == []
    out = joiner.push(DemuxedUnit(units[1], 3000, 3000))
    assert [u.pts for u in out] == [0, 3000]
    assert joiner.joined == 1
    joined, key = ParameterSetInjector().process(out[0].data)
    assert key
    assert bitstream.nal_types(joined) == [7, 8, 5, 5]
    assert _decode([joined, *units[1:30]]) == [(320, 240)] * 30


def test_joiner_stops_holding_keyframes_of_a_camera_that_does_not_split(
    media: dict[str, Path]
) -> None:
    units = _access_units(media["annexb"])
    joiner = KeyframeJoiner()
    released: list[int] = []
    for index, unit in enumerate([*units, *units, *units]):
        released += [u.pts or 0 for u in joiner.push(DemuxedUnit(unit, index, index))]
    assert released == list(range(len(units) * 3))  # order kept, nothing lost
    # After two complete keyframes, a keyframe is released at once.
    assert [u.pts for u in joiner.push(DemuxedUnit(units[0], 999, 999))] == [999]
    assert joiner.flush() == []


def test_malformed_input_is_refused_not_crashed() -> None:
    with pytest.raises(BitstreamError):
        bitstream.split_avcc(b"\x00\x00\x00\x09\x65\x00", 4)
    with pytest.raises(BitstreamError):
        bitstream.split_avcc(b"\x00\x00", 4)
    with pytest.raises(BitstreamError):
        bitstream.parse_avcc_extradata(b"\x01\x64\x00\x1f\xff\xe1\x00\x20\x67")
    with pytest.raises(BitstreamError):
        bitstream.parse_avcc_extradata(b"\x00" * 10)
    with pytest.raises(BitstreamError):
        bitstream.parse_sps(b"\x67\x64")
    with pytest.raises(BitstreamError):
        bitstream.parse_sps(b"\x68\xee\x3c\x80")
    assert bitstream.unescape_rbsp(b"\x00\x00\x03\x01\x00\x00\x03") == b"\x00\x00\x01\x00\x00"


def test_rtp_frames_are_normalised_like_rtsp_ones(media: dict[str, Path]) -> None:
    """The WHIP path: whole frames with raw 32-bit RTP timestamps that start near the wrap,
    the stream joined mid-GOP and without parameter sets on its keyframes."""
    units = _access_units(media["annexb"])
    bare = [
        bitstream.join_annexb(
            n for n in bitstream.split_annexb(unit)
            if bitstream.nal_type(n) not in (bitstream.NalType.SPS, bitstream.NalType.PPS)
        )
        for unit in units
    ]
    normalizer = Normalizer.for_rtp("h264")
    start = 2**32 - 20 * 3000
    frames = []
    # Parameter sets arrive once, out of band of the keyframe (an SPS/PPS-only packet).
    params = bitstream.parse_extradata(units[0])
    frames += normalizer.push(params.annexb(), start, None, False, 0.0)
    for index, unit in enumerate(bare[10:], start=10):
        frames += normalizer.push(unit, (start + index * 3000) & 0xFFFFFFFF, None, False, 0.0)
    assert normalizer.skipped_before_keyframe == 1 + 20  # the parameter sets, frames 10-29
    assert frames[0].keyframe
    assert frames[0].discontinuity
    assert not any(f.discontinuity for f in frames[1:])
    assert bitstream.nal_types(frames[0].data)[:3] == [7, 8, 5]
    pts = [f.pts for f in frames]
    assert pts[0] == start + 30 * 3000  # past 2**32: unwrapped, not wrapped to a small value
    assert pts[0] > 2**32
    assert all(b - a == 3000 for a, b in itertools.pairwise(pts))
    assert _decode([f.data for f in frames]) == [(320, 240)] * len(frames)


def test_unwrapper_extends_across_the_wrap_and_steps_back_for_reordering() -> None:
    unwrap = TimestampUnwrapper(32).unwrap
    assert unwrap(2**32 - 10) == 2**32 - 10
    assert unwrap(5) == 2**32 + 5
    assert unwrap(2**32 - 2) == 2**32 - 2  # a B-frame just before the wrap
    assert unwrap(1000) == 2**32 + 1000
