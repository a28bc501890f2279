"""RTP payloads of H.264 (RFC 6184) and H.265 (RFC 7798) to Annex-B access units.

A unit closes on the marker bit or when the timestamp changes. A gap in the sequence numbers
(or a packet that cannot be read) damages the unit it falls in and the one it leads into: both
are dropped, and nothing is emitted until the next keyframe, so a viewer never gets a picture
that references data that never arrived. A session's first unit is a keyframe that starts at the
beginning of a picture (the session may begin in the middle of one).

Packets arrive as memoryviews of the connection buffer; only the NAL bytes are copied, once,
into the unit being assembled.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Literal

Codec = Literal["h264", "h265"]
UnitHandler = Callable[[bytes, int, bool], None]
"""Receives (Annex-B access unit, 32-bit RTP timestamp, whether it is a keyframe)."""

_START = b"\x00\x00\x00\x01"
_HEADER = struct.Struct("!BBHI")


class Depacketizer:
    """One RTP stream of one session. ``push`` each RTP packet in arrival order; complete,
    undamaged units go to ``on_unit``. Never raises on malformed packets: they count as loss."""

    __slots__ = (
        "_au", "_check_start", "_damaged", "_fresh", "_fu", "_h265", "_key", "_need_key",
        "_on_unit", "_seq", "_ts", "bytes", "dropped_units", "gaps", "packets", "units",
    )

    def __init__(self, codec: Codec, on_unit: UnitHandler) -> None:
        self._h265 = codec == "h265"
        self._on_unit = on_unit
        self._au = bytearray()
        self._ts: int | None = None
        self._seq: int | None = None
        self._damaged = False
        self._fu = False
        self._key = False
        self._need_key = True  # a session starts at a keyframe
        self._fresh = True
        self._check_start = False
        self.packets = 0
        self.bytes = 0
        self.units = 0
        self.gaps = 0
        """Sequence gaps and unreadable packets."""
        self.dropped_units = 0
        """Units not emitted: damaged, or not a keyframe while waiting for one after a gap."""

    def push(self, packet: memoryview | bytes) -> None:
        self.packets += 1
        size = len(packet)
        self.bytes += size
        if size < 12:
            self._loss()
            return
        first, second, seq, timestamp = _HEADER.unpack_from(packet)
        if first & 0xC0 != 0x80:
            self._loss()
            return
        offset, end = 12, size
        if first & 0x3F:  # CSRCs, a header extension or padding: rare
            offset += (first & 0x0F) << 2
            if first & 0x10:
                if size < offset + 4:
                    self._loss()
                    return
                offset += 4 + (((packet[offset + 2] << 8) | packet[offset + 3]) << 2)
            if first & 0x20:
                end -= packet[size - 1]
            if offset > end:
                self._loss()
                return
        expected = self._seq
        self._seq = (seq + 1) & 0xFFFF
        gap = expected is not None and seq != expected
        if gap:
            self.gaps += 1
            self._damaged = True
            self._need_key = True
        if timestamp != self._ts:
            if self._ts is not None:
                self._close()
            self._open(timestamp)
            if gap:
                self._damaged = True
        if offset < end:
            if self._fu and not self._h265 and packet[offset] & 0x1F == 28 \
                    and not packet[offset + 1] & 0x80 and end - offset > 2:
                # the middle or end of a fragmented NAL unit: most packets of a camera
                self._au += packet[offset + 2:end]
                if packet[offset + 1] & 0x40:
                    self._fu = False
            elif self._h265:
                self._h265_payload(packet, offset, end)
            else:
                self._h264_payload(packet, offset, end)
        if second & 0x80:
            self._close()

    def _loss(self) -> None:
        """An unreadable packet: the same as a missing one."""
        self.gaps += 1
        self._damaged = True
        self._need_key = True

    def _open(self, timestamp: int) -> None:
        self._ts = timestamp
        self._au = bytearray()
        self._damaged = False
        self._fu = False
        self._key = False
        self._check_start = self._fresh
        self._fresh = False

    def _close(self) -> None:
        au = self._au
        if au or self._damaged:
            if self._damaged or self._fu or (self._need_key and not self._key):
                self.dropped_units += 1
            else:
                self._need_key = False
                self.units += 1
                self._on_unit(bytes(au), self._ts or 0, self._key)
        self._au = bytearray()
        self._ts = None
        self._fu = False
        self._key = False
        self._damaged = False
        self._check_start = False

    def _starts(self, vcl: bool, content: int) -> None:
        """The first NAL unit of the session's first unit: a slice must begin a picture
        (first_mb_in_slice 0 / first_slice_segment_in_pic_flag: the top bit after the
        header)."""
        self._check_start = False
        if vcl and not content & 0x80:
            self._damaged = True

    # -- H.264 --------------------------------------------------------------------------------

    def _h264_nal(self, packet: memoryview | bytes, start: int, end: int) -> None:
        kind = packet[start] & 0x1F
        if kind == 5:
            self._key = True
        if self._check_start:
            self._starts(1 <= kind <= 5, packet[start + 1] if end - start > 1 else 0)
        au = self._au
        au += _START
        au += packet[start:end]

    def _h264_payload(self, packet: memoryview | bytes, offset: int, end: int) -> None:
        kind = packet[offset] & 0x1F
        if self._fu and kind != 28:
            self._damaged = True  # a fragmented NAL unit never ended
            self._fu = False
        if 1 <= kind <= 23:
            self._h264_nal(packet, offset, end)
        elif kind == 24:  # STAP-A
            pos = offset + 1
            while pos + 2 <= end:
                size = (packet[pos] << 8) | packet[pos + 1]
                pos += 2
                if not size or pos + size > end:
                    self._damaged = True
                    return
                self._h264_nal(packet, pos, pos + size)
                pos += size
        elif kind == 28:  # FU-A
            if end - offset < 3:
                self._damaged = True
                return
            header = packet[offset + 1]
            if header & 0x80:
                if self._fu:
                    self._damaged = True
                nal = header & 0x1F
                if nal == 5:
                    self._key = True
                if self._check_start:
                    self._starts(1 <= nal <= 5, packet[offset + 2])
                au = self._au
                au += _START
                au.append((packet[offset] & 0xE0) | nal)
                au += packet[offset + 2:end]
                self._fu = not header & 0x40
            elif not self._fu:
                self._damaged = True  # a fragment whose start is missing
            else:
                self._au += packet[offset + 2:end]
                if header & 0x40:
                    self._fu = False
        else:  # STAP-B, MTAP, FU-B and reserved types: not sent by cameras in RTP/AVP mode
            self._damaged = True

    # -- H.265 --------------------------------------------------------------------------------

    def _h265_nal(self, packet: memoryview | bytes, start: int, end: int) -> None:
        if end - start < 2:
            self._damaged = True
            return
        kind = (packet[start] >> 1) & 0x3F
        if 16 <= kind <= 23:
            self._key = True
        if self._check_start:
            self._starts(kind < 32, packet[start + 2] if end - start > 2 else 0)
        au = self._au
        au += _START
        au += packet[start:end]

    def _h265_payload(self, packet: memoryview | bytes, offset: int, end: int) -> None:
        if end - offset < 2:
            self._damaged = True
            return
        kind = (packet[offset] >> 1) & 0x3F
        if self._fu and kind != 49:
            self._damaged = True
            self._fu = False
        if kind < 48:
            self._h265_nal(packet, offset, end)
        elif kind == 48:  # aggregation packet (no DONL: sprop-max-don-diff is 0)
            pos = offset + 2
            while pos + 2 <= end:
                size = (packet[pos] << 8) | packet[pos + 1]
                pos += 2
                if not size or pos + size > end:
                    self._damaged = True
                    return
                self._h265_nal(packet, pos, pos + size)
                pos += size
        elif kind == 49:  # fragmentation unit
            if end - offset < 4:
                self._damaged = True
                return
            header = packet[offset + 2]
            if header & 0x80:
                if self._fu:
                    self._damaged = True
                nal = header & 0x3F
                if 16 <= nal <= 23:
                    self._key = True
                if self._check_start:
                    self._starts(nal < 32, packet[offset + 3])
                au = self._au
                au += _START
                au.append((packet[offset] & 0x81) | (nal << 1))
                au.append(packet[offset + 1])
                au += packet[offset + 3:end]
                self._fu = not header & 0x40
            elif not self._fu:
                self._damaged = True
            else:
                self._au += packet[offset + 3:end]
                if header & 0x40:
                    self._fu = False
        else:  # PACI and reserved types
            self._damaged = True
