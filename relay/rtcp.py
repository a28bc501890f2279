"""RTCP the sender writes (sender reports, source descriptions) and a cheaper RTCP router.

aiortc builds RTCP from packet objects and routes each received RTCP packet through
``RtpRouter.route_rtcp``, which defines a nested function with ``typing`` annotations on every
call (evaluated each time: about a hundred microseconds per report, once per second per viewer).
``route_rtcp_fast`` installs an equivalent router function on one DTLS transport.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from aiortc import rtp
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtp import (
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
)

NTP_EPOCH_OFFSET = 2_208_988_800
_SENDER_REPORT = struct.Struct("!BBHIIIIII")


def ntp_now() -> int:
    """The current time as a 64-bit NTP timestamp."""
    return int((time.time() + NTP_EPOCH_OFFSET) * 4_294_967_296)


def sender_report(ssrc: int, ntp: int, rtp_timestamp: int, packets: int, octets: int) -> bytes:
    """An RTCP sender report without reception blocks (RFC 3550 6.4.1)."""
    return _SENDER_REPORT.pack(0x80, 200, 6, ssrc, ntp >> 32, ntp & 0xFFFFFFFF,
                               rtp_timestamp & 0xFFFFFFFF, packets & 0xFFFFFFFF,
                               octets & 0xFFFFFFFF)


def sdes_packet(ssrc: int, cname: bytes) -> bytes:
    """An RTCP source description carrying the CNAME (RFC 3550 6.5)."""
    cname = cname[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(cname)) + cname + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk


def route_rtcp_fast(router: RtpRouter) -> None:
    """Give ``router`` a ``route_rtcp`` that decides as aiortc's does, without the per-call
    ``typing`` work. The router's tables are read at each call (they change as streams come
    and go)."""

    def route_rtcp(packet: AnyRtcpPacket) -> set[Any]:
        recipients: set[Any] = set()
        ssrc_table = router.ssrc_table
        senders = router.senders
        if isinstance(packet, RtcpSrPacket):
            recipient: Any = ssrc_table.get(packet.ssrc)
            if recipient is not None:
                recipients.add(recipient)
        elif isinstance(packet, RtcpByePacket):
            for source in packet.sources:
                recipient = ssrc_table.get(source)
                if recipient is not None:
                    recipients.add(recipient)
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                recipient = senders.get(report.ssrc)
                if recipient is not None:
                    recipients.add(recipient)
        elif isinstance(packet, RtcpPsfbPacket | RtcpRtpfbPacket):
            recipient = senders.get(packet.media_ssrc)
            if recipient is not None:
                recipients.add(recipient)
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == rtp.RTCP_PSFB_APP:
                try:
                    for ssrc in rtp.unpack_remb_fci(packet.fci)[1]:
                        recipient = senders.get(ssrc)
                        if recipient is not None:
                            recipients.add(recipient)
                except ValueError:
                    pass
        return recipients

    router.route_rtcp = route_rtcp  # type: ignore[method-assign]
