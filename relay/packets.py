"""A frame's RTP forms: its H.264 payloads (RFC 6184, packetization mode 1) or H.265 payloads
(RFC 7798), made once per frame and kept with the frame (``EncodedFrame.derive``), and their send
layouts, made once per frame and header/tag length. Every viewer of a stream receives the very
same frame objects from the hub, so every viewer shares them, the cached GOP replayed to a new
viewer included.

Packetization aggregates small NAL units into STAP-A (H.265: AP) and fragments large ones into
FU-A (H.265: FU) of equal size (all fragments of a NAL unit but the last have the same length, so
a datagram batch can be sent with one system call).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay import fastpath
from relay.srtp import ScratchBuffer
from relay.udp import plan_batches
from rtcc import bitstream
from rtcc.bitstream import NalType
from rtcc.media import DerivedForm, EncodedFrame

MAX_PAYLOAD = 1200
"""RTP payload bytes per packet: with the RTP header, its extensions and the SRTP tag a datagram
stays under 1280 bytes (the IPv6 minimum MTU), so it survives any path."""

_DROPPED_TYPES = frozenset({NalType.AUD, NalType.FILLER, NalType.END_SEQUENCE, NalType.END_STREAM})
"""NAL units a WebRTC receiver does not need (access unit delimiters, filler, end markers)."""
_STAP_A = int(NalType.STAP_A)
_FU_A = int(NalType.FU_A)
_H265_DROPPED_TYPES = frozenset({35, 36, 37, 38})
"""H.265 access unit delimiter, end of sequence, end of bitstream and filler data."""
_H265_AP = 48
_H265_FU = 49

@dataclass(frozen=True, slots=True)
class PacketizedFrame:
    """RTP payloads of one access unit, in order; the last one carries the marker bit.

    ``batches`` splits them into ``(start, end)`` runs that one segmented UDP send can carry.
    """

    payloads: tuple[bytes, ...]
    size: int
    keyframe: bool
    b_frame: bool
    missing_parameter_sets: bool
    """A keyframe without SPS and PPS (ingest puts them there: this counts its failures)."""
    batches: tuple[tuple[int, int], ...] = ()
    _layouts: dict[tuple[int, int, ScratchBuffer], FrameLayout] = field(
        default_factory=dict, compare=False, repr=False
    )

    def layout(self, header_length: int, tag_length: int, scratch: ScratchBuffer) -> FrameLayout:
        """The frame laid out in ``scratch`` for viewers whose packets have this header and
        SRTP tag length (made once, then shared by all of them)."""
        key = (header_length, tag_length, scratch)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = FrameLayout.build(
                self.payloads, self.batches or plan_batches([len(p) for p in self.payloads]),
                header_length, tag_length, scratch,
            )
        return layout


Packet = tuple[Any, int, int, int]
"""(address in the scratch buffer, offset there, length before protection, marker bit)."""
Batch = tuple[int, int, int, tuple[Packet, ...]]
"""(start and end in the template, datagram size but the last, packets)."""


@dataclass(frozen=True, slots=True)
class FrameLayout:
    """A frame's datagrams as they will lie in a send buffer: each payload with room for the
    RTP header before it and for the SRTP tag after it, batch after batch.

    A sender copies one batch of the template into the scratch buffer (one copy), writes each
    header, protects each packet in place and sends the batch with one system call. Each
    packet's address in the scratch buffer is computed here once for all viewers (the layout
    holds the buffer, so the addresses stay valid).
    """

    template: memoryview
    batches: tuple[Batch, ...]
    scratch: ScratchBuffer

    @staticmethod
    def build(
        payloads: tuple[bytes, ...],
        batches: tuple[tuple[int, int], ...],
        header_length: int,
        tag_length: int,
        scratch: ScratchBuffer,
    ) -> FrameLayout:
        pointer = scratch.pointer
        header_room = bytes(header_length)
        tag_room = bytes(tag_length)
        parts: list[bytes] = []
        laid_out: list[Batch] = []
        last = len(payloads) - 1
        position = 0
        for start, end in batches:
            batch_start = position
            packets: list[Packet] = []
            for index in range(start, end):
                payload = payloads[index]
                length = header_length + len(payload)
                offset = position - batch_start
                address = pointer + offset if pointer is not None else None
                packets.append((address, offset, length, 0x80 if index == last else 0))
                parts += (header_room, payload, tag_room)
                position += length + tag_length
            segment = packets[0][2] + tag_length
            laid_out.append((batch_start, position, segment, tuple(packets)))
        return FrameLayout(memoryview(b"".join(parts)), tuple(laid_out), scratch)


def packetize(nals: list[bytes], max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads for one access unit: small NAL units aggregated into STAP-A packets, large
    ones fragmented into FU-A packets, the others sent as single NAL unit packets."""
    return _packetize(nals, max_payload, 1, _stap_a_header, _h264_sent, _h264_fragment)


def _h264_sent(nal: bytes) -> bool:
    return bool(nal) and nal[0] & 0x1F not in _DROPPED_TYPES


def _stap_a_header(nals: list[bytes]) -> bytes:
    return bytes((max(nal[0] & 0x60 for nal in nals) | _STAP_A,))


def _h264_fragment(nal: bytes, max_payload: int) -> list[bytes]:
    """FU-A fragments: the FU indicator keeps F and NRI, the FU header carries the type."""
    return _fragment(nal, max_payload, bytes(((nal[0] & 0xE0) | _FU_A,)), nal[0] & 0x1F, 1)


def packetize_h265(nals: list[bytes], max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads for one H.265 access unit (RFC 7798, no DONL): small NAL units aggregated
    into aggregation packets (AP), large ones fragmented into fragmentation units (FU), the
    others sent as single NAL unit packets."""
    return _packetize(nals, max_payload, 2, _h265_ap_header, _h265_sent, _h265_fragment)


def _h265_sent(nal: bytes) -> bool:
    return len(nal) >= 3 and (nal[0] >> 1) & 0x3F not in _H265_DROPPED_TYPES


def _h265_ap_header(nals: list[bytes]) -> bytes:
    # F is the OR of the units', LayerId and TID the lowest of theirs (RFC 7798 4.4.2).
    forbidden = max(nal[0] & 0x80 for nal in nals)
    layer = min(((nal[0] & 0x01) << 5) | (nal[1] >> 3) for nal in nals)
    tid = min(nal[1] & 0x07 for nal in nals)
    return bytes((forbidden | (_H265_AP << 1) | (layer >> 5), ((layer & 0x1F) << 3) | tid))


def _h265_fragment(nal: bytes, max_payload: int) -> list[bytes]:
    """Fragmentation units: the payload header keeps F, LayerId and TID, the FU header the
    type."""
    prefix = bytes(((nal[0] & 0x81) | (_H265_FU << 1), nal[1]))
    return _fragment(nal, max_payload, prefix, (nal[0] >> 1) & 0x3F, 2)


def _packetize(nals: list[bytes], max_payload: int, header_size: int,
               aggregate_header: Callable[[list[bytes]], bytes],
               sent: Callable[[bytes], bool],
               fragment: Callable[[bytes, int], list[bytes]]) -> list[bytes]:
    """The shared shape of both codecs' packetization: NAL units that fit are gathered into
    aggregation packets (a ``header_size`` header, then a 16-bit length before each unit), a
    lone one is sent as it is, one too large for a packet is fragmented."""
    payloads: list[bytes] = []
    pending: list[bytes] = []
    pending_size = header_size

    def flush() -> None:
        nonlocal pending, pending_size
        if len(pending) == 1:
            payloads.append(pending[0])
        elif pending:
            parts = [aggregate_header(pending)]
            for nal in pending:
                parts.append(len(nal).to_bytes(2, "big"))
                parts.append(nal)
            payloads.append(b"".join(parts))
        pending = []
        pending_size = header_size

    for nal in nals:
        if not sent(nal):
            continue
        size = len(nal)
        if size > max_payload:
            flush()
            payloads.extend(fragment(nal, max_payload))
            continue
        if pending_size + 2 + size > max_payload:
            flush()
        pending.append(nal)
        pending_size += 2 + size
    flush()
    return payloads


def _fragment_python(nal: bytes, max_payload: int, prefix: bytes, kind: int,
                     nal_header: int) -> list[bytes]:
    """Fragments of one NAL unit, all of one size but the last: ``prefix`` (the FU indicator or
    payload header), an FU header with start/end bits and ``kind``, then the unit's bytes after
    its own ``nal_header`` bytes."""
    view = memoryview(nal)
    length = len(nal) - nal_header
    count = -(-length // (max_payload - len(prefix) - 1))
    size = -(-length // count)
    if count == 1:
        return [prefix + bytes((0xC0 | kind,)) + view[nal_header:]]
    middle = prefix + bytes((kind,))
    fragments = [prefix + bytes((0x80 | kind,)) + view[nal_header:nal_header + size]]
    position = nal_header + size
    for _ in range(count - 2):
        fragments.append(middle + view[position:position + size])
        position += size
    fragments.append(prefix + bytes((0x40 | kind,)) + view[position:])
    return fragments


_fragment = fastpath.FRAGMENT or _fragment_python
"""The compiled fragmenter when built (the same bytes), else the Python one."""
_split_annexb = fastpath.SPLIT_ANNEXB or bitstream.split_annexb


def packetize_frame(frame: EncodedFrame, max_payload: int = MAX_PAYLOAD) -> PacketizedFrame:
    """The RTP payloads of one H.264 or H.265 access unit, with the batches a segmented send
    carries."""
    nals = _split_annexb(frame.data)
    if frame.codec == "h265":
        params = bitstream.classify_parameter_sets(nals, "h265") if frame.keyframe else None
        missing = params is not None and not params.complete("h265")
        payloads = tuple(packetize_h265(nals, max_payload))
        sizes = [len(p) for p in payloads]
        # B-frame detection reads H.264 slice headers; H.265 cameras are flagged by ingest.
        return PacketizedFrame(payloads, sum(sizes), frame.keyframe, False, missing,
                               plan_batches(sizes))
    b_frame = not frame.keyframe and bitstream.has_b_slice(nals)
    params = bitstream.classify_parameter_sets(nals, "h264") if frame.keyframe else None
    missing = params is not None and not params.complete("h264")
    payloads = tuple(packetize(nals, max_payload))
    sizes = [len(p) for p in payloads]
    return PacketizedFrame(payloads, sum(sizes), frame.keyframe, b_frame, missing,
                           plan_batches(sizes))


RTP_PAYLOADS: DerivedForm[PacketizedFrame] = DerivedForm("rtp", packetize_frame)
"""A frame's RTP payloads, kept with the frame."""


class StreamPackets:
    """One stream's frames in RTP form, and how often viewers shared them.

    ``get`` packetizes a frame the first time any viewer of the stream sends it; the payloads
    live with the frame (so as long as the hub keeps it: GOP cache, subscriber queues), and every
    other viewer takes them from there.
    """

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.b_frames = 0
        self.missing_parameter_sets = 0

    def get(self, frame: EncodedFrame) -> PacketizedFrame:
        packed = frame.derived(RTP_PAYLOADS)
        if packed is not None:
            self.hits += 1
            return packed
        self.misses += 1
        packed = frame.derive(RTP_PAYLOADS)
        self.b_frames += packed.b_frame
        self.missing_parameter_sets += packed.missing_parameter_sets
        return packed

    def stats(self) -> dict[str, object]:
        return {
            "packetized": self.misses,
            "shared": self.hits,
            "b_frames": self.b_frames,
            "keyframes_without_parameter_sets": self.missing_parameter_sets,
        }
