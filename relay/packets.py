"""Packetize each frame of a stream once, and share the payloads between all its viewers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relay import h264
from relay.srtp import ScratchBuffer
from relay.udp import plan_batches
from rtcc.media import EncodedFrame


@dataclass(frozen=True, slots=True)
class PacketizedFrame:
    """RTP payloads of one access unit, in order; the last one carries the marker bit.

    ``batches`` splits them into ``(start, end)`` runs that one segmented UDP send can carry.
    """

    payloads: tuple[bytes, ...]
    size: int
    keyframe: bool
    b_frame: bool
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


class PacketCache:
    """Payloads of the most recent frames of one stream, keyed by the frame object.

    Every viewer of a stream receives the very same ``EncodedFrame`` objects from the hub, so the
    first viewer to send a frame packetizes it and the others reuse the result. The cache holds a
    reference to each frame it knows (so an identity is never reused while cached) and forgets the
    oldest once it holds ``max_frames``; a viewer far behind simply packetizes again.
    """

    def __init__(self, max_frames: int = 64, max_payload: int = h264.MAX_PAYLOAD) -> None:
        self._max_frames = max_frames
        self._max_payload = max_payload
        self._entries: dict[int, tuple[EncodedFrame, PacketizedFrame]] = {}
        self.hits = 0
        self.misses = 0
        self.b_frames = 0
        self.missing_parameter_sets = 0

    def get(self, frame: EncodedFrame) -> PacketizedFrame:
        entry = self._entries.get(id(frame))
        if entry is not None and entry[0] is frame:
            self.hits += 1
            return entry[1]
        self.misses += 1
        nals = h264.split_annexb(frame.data)
        b_frame = not frame.keyframe and h264.has_b_slice(nals)
        if b_frame:
            self.b_frames += 1
        if frame.keyframe and not h264.has_parameter_sets(nals):
            self.missing_parameter_sets += 1
        payloads = tuple(h264.packetize(nals, self._max_payload))
        sizes = [len(p) for p in payloads]
        packed = PacketizedFrame(payloads, sum(sizes), frame.keyframe, b_frame,
                                 plan_batches(sizes))
        entries = self._entries
        entries[id(frame)] = (frame, packed)
        if len(entries) > self._max_frames:
            del entries[next(iter(entries))]
        return packed

    def clear(self) -> None:
        self._entries.clear()

    def stats(self) -> dict[str, object]:
        return {
            "cached_frames": len(self._entries),
            "packetized": self.misses,
            "shared": self.hits,
            "b_frames": self.b_frames,
            "keyframes_without_parameter_sets": self.missing_parameter_sets,
        }
