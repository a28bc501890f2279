"""RTCP the sender writes (sender reports, source descriptions, goodbyes) as bytes, and what it
reads from the viewer's reception reports (aiortc builds RTCP from packet objects)."""

from __future__ import annotations

import struct
import time
from typing import Protocol

NTP_EPOCH_OFFSET = 2_208_988_800
_SENDER_REPORT = struct.Struct("!BBHIIIIII")
_BYE = struct.Struct("!BBHI")


class ReceptionReport(Protocol):
    """One reception report block of a receiver or sender report (RFC 3550 6.4.1)."""

    ssrc: int
    fraction_lost: int
    packets_lost: int
    jitter: int
    lsr: int
    dlsr: int


def ntp_time(seconds: float) -> int:
    """A wall-clock time (seconds since 1970) as a 64-bit NTP timestamp."""
    return int((seconds + NTP_EPOCH_OFFSET) * 4_294_967_296)


def ntp_now() -> int:
    """The current time as a 64-bit NTP timestamp."""
    return ntp_time(time.time())


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


def bye_packet(ssrc: int) -> bytes:
    """An RTCP goodbye for one source (RFC 3550 6.6)."""
    return _BYE.pack(0x81, 203, 1, ssrc)
