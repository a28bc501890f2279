"""H.264 Annex-B access units to RTP payloads (RFC 6184, packetization mode 1), without decoding.

Pure functions over bytes: split an access unit into NAL units, aggregate small ones into STAP-A,
fragment large ones into FU-A of equal size (all fragments of a NAL unit but the last have the
same length, so a datagram batch can be sent with one system call), and read the slice type to
notice B-frames.
"""

from __future__ import annotations

from rtcc.bitstream import BitReader, unescape_rbsp

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_END_SEQUENCE = 10
NAL_END_STREAM = 11
NAL_FILLER = 12
NAL_STAP_A = 24
NAL_FU_A = 28

MAX_PAYLOAD = 1200
"""RTP payload bytes per packet: with the RTP header, its extensions and the SRTP tag a datagram
stays under 1280 bytes (the IPv6 minimum MTU), so it survives any path."""

_DROPPED_TYPES = frozenset({NAL_AUD, NAL_FILLER, NAL_END_SEQUENCE, NAL_END_STREAM})
"""NAL units a WebRTC receiver does not need (access unit delimiters, filler, end markers)."""


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte stream, start codes removed.

    Accepts 3- and 4-byte start codes; trailing zero bytes of a NAL unit (the first byte of a
    4-byte start code) are stripped. Bytes before the first start code are ignored.
    """
    nals: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    if start < 0:
        return nals
    start += 3
    length = len(data)
    while start < length:
        nxt = data.find(b"\x00\x00\x01", start)
        if nxt < 0:
            end = length
            following = length
        else:
            end = nxt
            following = nxt + 3
        while end > start and data[end - 1] == 0:
            end -= 1
        if end > start:
            nals.append(data[start:end])
        if nxt < 0:
            break
        start = following
    return nals


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def packetize(nals: list[bytes], max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads for one access unit: small NAL units aggregated into STAP-A packets, large
    ones fragmented into FU-A packets, the others sent as single NAL unit packets."""
    payloads: list[bytes] = []
    pending: list[bytes] = []
    pending_size = 1  # the STAP-A header byte

    def flush() -> None:
        nonlocal pending, pending_size
        if len(pending) == 1:
            payloads.append(pending[0])
        elif pending:
            nri = max(nal[0] & 0x60 for nal in pending)
            parts = [bytes((nri | NAL_STAP_A,))]
            for nal in pending:
                parts.append(len(nal).to_bytes(2, "big"))
                parts.append(nal)
            payloads.append(b"".join(parts))
        pending = []
        pending_size = 1

    for nal in nals:
        if not nal or nal_type(nal) in _DROPPED_TYPES:
            continue
        size = len(nal)
        if size > max_payload:
            flush()
            payloads.extend(_fragment(nal, max_payload))
            continue
        if pending_size + 2 + size > max_payload:
            flush()
        pending.append(nal)
        pending_size += 2 + size
    flush()
    return payloads


def _fragment(nal: bytes, max_payload: int) -> list[bytes]:
    """FU-A fragments of one NAL unit, all of one size but the last."""
    header = nal[0]
    indicator = (header & 0xE0) | NAL_FU_A
    kind = header & 0x1F
    view = memoryview(nal)
    length = len(nal) - 1
    count = -(-length // (max_payload - 2))
    size = -(-length // count)
    if count == 1:
        return [bytes((indicator, 0xC0 | kind)) + view[1:]]
    middle = bytes((indicator, kind))
    fragments = [bytes((indicator, 0x80 | kind)) + view[1:1 + size]]
    position = 1 + size
    for _ in range(count - 2):
        fragments.append(middle + view[position:position + size])
        position += size
    fragments.append(bytes((indicator, 0x40 | kind)) + view[position:])
    return fragments


def has_parameter_sets(nals: list[bytes]) -> bool:
    """True if the access unit carries both an SPS and a PPS."""
    types = {nal_type(nal) for nal in nals if nal}
    return NAL_SPS in types and NAL_PPS in types


def is_idr(nals: list[bytes]) -> bool:
    return any(nal and nal_type(nal) == NAL_IDR for nal in nals)


def slice_type(nal: bytes) -> int | None:
    """The slice_type (0-4: P, B, I, SP, SI) of a coded slice NAL unit, or None."""
    if not nal or nal_type(nal) not in (NAL_SLICE, NAL_IDR):
        return None
    try:
        reader = BitReader(unescape_rbsp(nal[1:12]))
        reader.ue()  # first_mb_in_slice
        return reader.ue() % 5
    except ValueError:
        return None


def has_b_slice(nals: list[bytes]) -> bool:
    """True if the picture is a B picture (judged by its first slice, as all its slices have
    the same type in practice)."""
    for nal in nals:
        kind = slice_type(nal)
        if kind is not None:
            return kind == 1
    return False
