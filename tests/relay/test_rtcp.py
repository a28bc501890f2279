"""The RTCP the send engine writes itself is what aiortc (the viewer's side) reads, and the
reception reports aiortc writes give the engine loss and round-trip time."""

from __future__ import annotations

from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
)

from relay.rtcp import ReportExchange, bye_packet, ntp_time
from relay.timing import Clock


def test_goodbye_is_byte_for_byte_aiortcs() -> None:
    assert bye_packet(0x1234ABCD) == bytes(RtcpByePacket(sources=[0x1234ABCD]))


def test_sender_report_and_cname_parse_as_aiortc_reads_them() -> None:
    now = [100.0]
    wall = [1_700_000_000.0]
    reports = ReportExchange(0xCAFE, b"relay-cname", Clock(lambda: now[0], lambda: wall[0]))
    ntp = ntp_time(wall[0])
    data = reports.sender_report(ntp, 90_000, packets=42, octets=50_000)
    sr, sdes = RtcpPacket.parse(data)
    assert isinstance(sr, RtcpSrPacket)
    assert isinstance(sdes, RtcpSdesPacket)
    assert sr.ssrc == 0xCAFE
    assert (sr.sender_info.ntp_timestamp, sr.sender_info.rtp_timestamp) == (ntp, 90_000)
    assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (42, 50_000)
    assert sdes.chunks[0].items == [(1, b"relay-cname")]
    assert 100.5 <= reports.next_due <= 101.5

    # The viewer answers 40 ms later, having held the report for 10 ms: 30 ms round trip.
    wall[0] += 0.040
    lsr = (ntp >> 16) & 0xFFFFFFFF
    block = RtcpReceiverInfo(ssrc=0xCAFE, fraction_lost=64, packets_lost=3,
                             highest_sequence=1000, jitter=180, lsr=lsr, dlsr=int(0.010 * 65536))
    (rr,) = RtcpPacket.parse(bytes(RtcpRrPacket(ssrc=1, reports=[block])))
    assert isinstance(rr, RtcpRrPacket)
    other = RtcpReceiverInfo(ssrc=7, fraction_lost=255, packets_lost=9, highest_sequence=0,
                             jitter=0, lsr=0, dlsr=0)
    assert not reports.received(other)
    assert reports.received(rr.reports[0])
    assert reports.fraction_lost == 0.25
    assert reports.packets_lost == 3
    assert reports.jitter == 180
    assert reports.rtt is not None
    assert abs(reports.rtt - 0.030) < 0.001
