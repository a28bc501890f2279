"""H.264 splitting and RTP packetization, checked against aiortc's depacketizer and PyAV."""

from __future__ import annotations

from pathlib import Path

import av
from aiortc.codecs.h264 import h264_depayload

from relay.history import NackHistory
from relay.packets import MAX_PAYLOAD, RTP_PAYLOADS, StreamPackets, packetize
from rtcc import bitstream
from rtcc.bitstream import NalType
from rtcc.media import EncodedFrame
from tests.relay.clip import Clip, make_clip


def _nal(kind: int, size: int, fill: int = 0x11) -> bytes:
    return bytes((0x60 | kind,)) + bytes((fill,)) * (size - 1)


def test_split_annexb_handles_both_start_codes_and_trailing_zeros() -> None:
    sps, pps, idr = _nal(7, 10), _nal(8, 4), _nal(5, 50)
    data = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + pps + b"\x00" + b"\x00\x00\x00\x01" + idr
    assert bitstream.split_annexb(data) == [sps, pps, idr]
    assert bitstream.split_annexb(b"garbage without start code") == []


def test_small_nal_units_are_aggregated_and_delimiters_dropped() -> None:
    aud, sps, pps, idr = _nal(9, 2), _nal(7, 10), _nal(8, 4), _nal(5, 100)
    payloads = packetize([aud, sps, pps, idr])
    assert len(payloads) == 1
    assert payloads[0][0] & 0x1F == NalType.STAP_A
    rebuilt = bitstream.split_annexb(h264_depayload(payloads[0]))
    assert rebuilt == [sps, pps, idr]


def test_large_nal_unit_is_cut_into_equal_fu_a_fragments() -> None:
    idr = _nal(5, 10_000, fill=0x42)
    payloads = packetize([idr], max_payload=1200)
    assert len(payloads) == 9
    assert all(p[0] & 0x1F == NalType.FU_A for p in payloads)
    assert payloads[0][1] & 0x80
    assert not payloads[0][1] & 0x40
    assert payloads[-1][1] & 0x40
    assert not payloads[-1][1] & 0x80
    sizes = {len(p) for p in payloads[:-1]}
    assert len(sizes) == 1
    assert len(payloads[-1]) <= sizes.pop() <= 1200
    rebuilt = b"".join(h264_depayload(p) for p in payloads)
    assert bitstream.split_annexb(rebuilt) == [idr]


def test_packetized_clip_decodes_with_pyav(small_clip: Clip) -> None:
    packets = StreamPackets()
    decoder = av.CodecContext.create("h264", "r")
    decoded = 0
    for index, (data, key) in enumerate(small_clip.units[:40]):
        frame = EncodedFrame("h264", data, index * 6000, key, 0.0)
        packed = packets.get(frame)
        assert packets.get(frame) is packed  # shared, not packetized twice
        assert all(len(p) <= MAX_PAYLOAD for p in packed.payloads)
        annexb = b"".join(h264_depayload(p) for p in packed.payloads)
        decoded += len(decoder.decode(av.Packet(annexb)))
    assert decoded >= 39
    assert packets.stats() == {"packetized": 40, "shared": 40, "b_frames": 0,
                               "keyframes_without_parameter_sets": 0}


def test_b_frames_are_noticed(clip_dir: Path) -> None:
    clip = make_clip(clip_dir / "bframes.h264", fps=15, gop=30, seconds=2, bframes=2)
    packets = StreamPackets()
    for index, (data, key) in enumerate(clip.units):
        packets.get(EncodedFrame("h264", data, index, key, 0.0))
    assert packets.b_frames > 0
    plain = StreamPackets()
    for index, (data, key) in enumerate(clip.units[:1]):
        plain.get(EncodedFrame("h264", data, index, key, 0.0))
    assert plain.b_frames == 0


def test_payloads_live_with_the_frame_however_far_behind_a_viewer_is() -> None:
    frames = [EncodedFrame("h264", b"\x00\x00\x01" + _nal(1, 20), i, False, 0.0)
              for i in range(300)]
    first, late = StreamPackets(), StreamPackets()
    made = [first.get(frame) for frame in frames]
    # A viewer that starts 300 frames later (a long GOP replayed) packetizes nothing again.
    assert [late.get(frame) for frame in frames] == made
    assert all(a is b for a, b in zip(made, (f.derived(RTP_PAYLOADS) for f in frames),
                                      strict=True))
    assert (first.misses, late.misses, late.hits) == (300, 0, 300)


def test_nack_history_answers_only_what_it_still_holds() -> None:
    history = NackHistory(256)
    for seq in range(65530, 65536 + 300):
        history.record(seq & 0xFFFF, seq * 10, b"p%d" % seq, 0)
    assert history.get(65535) is None  # overwritten after wrapping
    held = (65536 + 299) & 0xFFFF
    assert history.get(held) == ((65536 + 299) * 10, b"p%d" % (65536 + 299), 0)
