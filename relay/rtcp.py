"""RTCP the sender writes (sender reports, source descriptions, goodbyes) as bytes, and what it
reads from the viewer's reception reports (aiortc builds RTCP from packet objects)."""

from __future__ import annotations

import random
import struct
import time
from typing import Protocol

from relay.timing import Clock

NTP_EPOCH_OFFSET = 2_208_988_800
_SENDER_REPORT = struct.Struct("!BBHIIIIII")
_BYE = struct.Struct("!BBHI")
_RTT_ALPHA = 0.85


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


class ReportExchange:
    """One stream's RTCP reports: sender reports out (and when the next one is due), the
    receiver's reception reports in (loss, jitter, and the round-trip time they give)."""

    def __init__(self, ssrc: int, cname: bytes, clock: Clock) -> None:
        self._ssrc = ssrc
        self._sdes = sdes_packet(ssrc, cname) if cname else b""
        self._monotonic = clock.monotonic
        self._wall = clock.wall
        self._lsr = 0
        self._lsr_time = 0.0
        self.next_due = 0.0
        """Monotonic time from which the next sender report is due."""
        self.fraction_lost = 0.0
        self.packets_lost = 0
        self.jitter = 0
        self.rtt: float | None = None
        """Seconds, smoothed; None until a reception report answers a sender report."""

    def sender_report(self, ntp: int, rtp_timestamp: int, packets: int, octets: int) -> bytes:
        """A sender report (and the CNAME) as of ``ntp``; schedules the next one."""
        self._lsr = (ntp >> 16) & 0xFFFFFFFF
        self._lsr_time = self._wall()
        self.next_due = self._monotonic() + 0.5 + random.random()
        return sender_report(self._ssrc, ntp, rtp_timestamp, packets, octets) + self._sdes

    def received(self, report: ReceptionReport) -> bool:
        """Take in a reception report block; False (ignored) when it is about another SSRC."""
        if report.ssrc != self._ssrc:
            return False
        self.fraction_lost = report.fraction_lost / 256
        self.packets_lost = report.packets_lost
        self.jitter = report.jitter
        if report.lsr and report.lsr == self._lsr and report.dlsr:
            rtt = self._wall() - self._lsr_time - report.dlsr / 65536
            self.rtt = rtt if self.rtt is None else _RTT_ALPHA * self.rtt + (1 - _RTT_ALPHA) * rtt
        return True
