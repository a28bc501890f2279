"""The normaliser fed arbitrary packets and timestamps: frames (never before a keyframe), or
BitstreamError for length-prefixed data whose lengths do not add up."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from ingest.normalizer import Normalizer
from rtcc.bitstream import BitstreamError, ParameterSets

SPS = b"\x67\x42\xc0\x1f\xda\x01\x40\x16\xe8\x06\xd0\xa1\x35"
PPS = b"\x68\xce\x06\xe2"
IDR = b"\x65\x88\x84\x00\x33"
START = b"\x00\x00\x00\x01"
nal = st.one_of(st.sampled_from([SPS, PPS, IDR, b"\x41\x9a\x02", b"\x40\x01\x0c", b"\x26\x01"]),
                st.binary(min_size=1, max_size=20))
annexb = st.lists(nal, min_size=0, max_size=4).map(lambda units: b"".join(START + u
                                                                          for u in units))
timestamp = st.one_of(st.none(), st.integers(0, 2**33), st.integers(-(2**40), 2**40))
packet = st.tuples(st.one_of(annexb, st.binary(max_size=40)), timestamp, timestamp, st.booleans())


@given(st.sampled_from(["h264", "h265", "vp8"]), st.sampled_from(["demux", "rtp", "avcc"]),
       st.lists(packet, max_size=12))
@example("h264", "demux", [(START + SPS + START + PPS + START + IDR, 0, 0, True),
                           (START + b"\x41\x9a", 3000, 3000, False)])
@example("h264", "rtp", [(START + IDR, 2**32 - 10, 2**32 - 10, True), (START + IDR, 5, 5, True)])
@example("h264", "avcc", [(b"\x00\x00\x00\x09" + IDR, 0, 0, True)])
def test_packets_become_frames_or_bitstream_error(
    codec: str, kind: str, packets: list[tuple[bytes, int | None, int | None, bool]]
) -> None:
    if kind == "rtp":
        normalizer = Normalizer.for_rtp(codec)
    else:
        normalizer = Normalizer(codec, length_prefixed=kind == "avcc",
                                params=ParameterSets(sps=(SPS,), pps=(PPS,)))
    frames = []
    for number, (data, pts, dts, keyframe) in enumerate(packets):
        try:
            frames += normalizer.push(data, pts, dts, keyframe, capture_time=float(number))
        except BitstreamError:
            assert kind == "avcc", "only length fields can be wrong"
    frames += normalizer.flush(capture_time=float(len(packets)))
    if frames:
        assert frames[0].keyframe
    assert normalizer.frames == len(frames)
