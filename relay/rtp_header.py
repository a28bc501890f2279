"""RTP headers (RFC 3550 5.1) and the one-byte header extensions a viewer's packets carry
(RFC 8285): the MID until the viewer has reported on the stream, and the absolute send time when
negotiated."""

from __future__ import annotations

import struct
from collections.abc import Callable

from relay.rtcp import ntp_time

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"

RTP_HEADER = struct.Struct("!BBHII")
"""First byte, marker bit and payload type, sequence number, timestamp, SSRC."""
_WITH_EXTENSION: dict[int, struct.Struct] = {}


def header_struct(extension_length: int) -> struct.Struct:
    """The fixed header followed by ``extension_length`` bytes of extension block."""
    header = _WITH_EXTENSION.get(extension_length)
    if header is None:
        header = _WITH_EXTENSION[extension_length] = struct.Struct(f"!BBHII{extension_length}s")
    return header


class HeaderExtensions:
    """The extension block of one viewer's packets; ids of 0 mean not negotiated."""

    __slots__ = ("_abs_id", "_mid", "_mid_id", "_parts", "_wall", "send_mid")

    def __init__(self, mid: bytes, mid_id: int, abs_send_time_id: int,
                 wall: Callable[[], float]) -> None:
        self._mid = mid[:16]
        self._mid_id = mid_id if self._mid else 0
        self._abs_id = abs_send_time_id
        self._wall = wall
        self._parts: tuple[bool, bytes, bytes] | None = None
        self.send_mid = True
        """Cleared once the receiver knows the SSRC (it has reported on it)."""

    def block(self) -> bytes:
        """The extension block for a packet sent now (padded to 32 bits; empty when none)."""
        parts = self._parts
        if parts is None or parts[0] is not self.send_mid:
            parts = self._parts = (self.send_mid, *self._frame())
        _, head, tail = parts
        if not self._abs_id:
            return head
        return head + ((ntp_time(self._wall()) >> 14) & 0xFFFFFF).to_bytes(3, "big") + tail

    def _frame(self) -> tuple[bytes, bytes]:
        """What comes before and after the 3-byte absolute send time."""
        body = b""
        if self._mid_id and self.send_mid:
            body += bytes(((self._mid_id << 4) | (len(self._mid) - 1),)) + self._mid
        if self._abs_id:
            body += bytes(((self._abs_id << 4) | 2,))
        size = len(body) + (3 if self._abs_id else 0)
        if not size:
            return b"", b""
        pad = b"\x00" * (-size % 4)
        head = b"\xbe\xde" + ((size + len(pad)) // 4).to_bytes(2, "big") + body
        return (head + pad, b"") if not self._abs_id else (head, pad)
