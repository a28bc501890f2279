"""Capture time carried inside H.264: an SEI "user data unregistered" NAL unit per frame.

The benchmark's own sources put one such NAL unit, holding the wall-clock time at which the frame
left the source, before the first slice of every access unit; a relay forwards it untouched (it
is part of the camera's bitstream), and the viewer reads it from the first RTP packet of each
frame. The time is written as 16 ASCII digits (microseconds since the epoch), so the NAL unit
never needs emulation-prevention bytes.
"""

from __future__ import annotations

NAL_SEI = 6
NAL_STAP_A = 24
SEI_USER_DATA_UNREGISTERED = 5
STAMP_UUID = bytes.fromhex("7274636362656e636863617074757265")  # "rtccbenchcapture"
_DIGITS = 16


def stamp_nal(capture_time: float) -> bytes:
    """The SEI NAL unit (no start code) carrying ``capture_time`` (seconds since the epoch)."""
    text = f"{round(capture_time * 1e6):0{_DIGITS}d}".encode()
    body = STAMP_UUID + text
    return bytes((NAL_SEI, SEI_USER_DATA_UNREGISTERED, len(body))) + body + b"\x80"


def insert_before_first_slice(access_unit: bytes, nal: bytes) -> bytes:
    """The Annex-B access unit with ``nal`` inserted before its first coded slice."""
    position = 0
    while True:
        start = access_unit.find(b"\x00\x00\x01", position)
        if start < 0 or start + 3 >= len(access_unit):
            return access_unit + b"\x00\x00\x00\x01" + nal
        kind = access_unit[start + 3] & 0x1F
        if kind in (1, 5):
            if start > 0 and access_unit[start - 1] == 0:
                start -= 1
            return access_unit[:start] + b"\x00\x00\x00\x01" + nal + access_unit[start:]
        position = start + 3


def read_stamp_nal(nal: bytes | memoryview) -> float | None:
    """The capture time in an SEI NAL unit made by ``stamp_nal``, else None."""
    if len(nal) < 3 + len(STAMP_UUID) + _DIGITS or nal[0] & 0x1F != NAL_SEI:
        return None
    if nal[1] != SEI_USER_DATA_UNREGISTERED or bytes(nal[3:19]) != STAMP_UUID:
        return None
    digits = bytes(nal[19:19 + _DIGITS])
    return int(digits) / 1e6 if digits.isdigit() else None


def read_stamp_payload(payload: bytes | memoryview) -> float | None:
    """The capture time in an RTP H.264 payload (a single SEI NAL unit, or a STAP-A holding
    one), else None."""
    if not payload:
        return None
    kind = payload[0] & 0x1F
    if kind == NAL_SEI:
        return read_stamp_nal(payload)
    if kind == NAL_STAP_A:
        position = 1
        while position + 2 <= len(payload):
            size = (payload[position] << 8) | payload[position + 1]
            position += 2
            found = read_stamp_nal(payload[position:position + size])
            if found is not None:
                return found
            position += size
    return None


def rtp_payload(packet: bytes) -> memoryview:
    """The payload of a plain RTP packet (after CSRCs and the header extension)."""
    view = memoryview(packet)
    offset = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10 and len(packet) >= offset + 4:
        offset += 4 + 4 * ((packet[offset + 2] << 8) | packet[offset + 3])
    end = len(packet)
    if packet[0] & 0x20 and end > offset:
        end -= packet[-1]
    return view[offset:end]
