"""The packets a viewer was sent recently, so a NACK can be answered with a retransmission."""

from __future__ import annotations

DEFAULT_SLOTS = 4096
"""4096 packets: 17 s of a 2 Mbit/s stream, and still more than 1 s at 40 Mbit/s."""


class NackHistory:
    """A ring of the last ``slots`` packets of one viewer, indexed by sequence number.

    Only references are kept: payloads are the bytes shared by every viewer of the stream, so a
    viewer's history costs a few pointers per packet, not a copy of the video.
    """

    __slots__ = ("_marker", "_mask", "_payload", "_seq", "_ts")

    def __init__(self, slots: int = DEFAULT_SLOTS) -> None:
        if slots < 256 or slots & (slots - 1):
            raise ValueError("history slots must be a power of two, at least 256")
        self._mask = slots - 1
        self._seq = [-1] * slots
        self._ts = [0] * slots
        self._payload: list[bytes | None] = [None] * slots
        self._marker = bytearray(slots)

    def record(self, seq: int, ts: int, payload: bytes, marker: int) -> None:
        slot = seq & self._mask
        self._seq[slot] = seq
        self._ts[slot] = ts
        self._payload[slot] = payload
        self._marker[slot] = marker

    def record_frame(self, seq: int, ts: int, payloads: tuple[bytes, ...]) -> None:
        """Record a frame's packets, sent with consecutive sequence numbers from ``seq``; the
        last one carries the marker bit."""
        count = len(payloads)
        slots = self._mask + 1
        if count > slots:
            skip = count - slots
            payloads = payloads[skip:]
            seq = (seq + skip) & 0xFFFF
            count = slots
        first = seq & self._mask
        end = first + count
        if end <= slots:
            self._seq[first:end] = range(seq, seq + count)
            self._ts[first:end] = (ts,) * count
            self._payload[first:end] = payloads
            self._marker[first:end] = bytes(count)
        else:  # the frame wraps around the end of the ring
            head = slots - first
            self._seq[first:] = range(seq, seq + head)
            self._ts[first:] = (ts,) * head
            self._payload[first:] = payloads[:head]
            self._marker[first:] = bytes(head)
            rest = count - head
            wrapped = (seq + head) & 0xFFFF  # a ring boundary; 65536 is one too
            self._seq[:rest] = range(wrapped, wrapped + rest)
            self._ts[:rest] = (ts,) * rest
            self._payload[:rest] = payloads[head:]
            self._marker[:rest] = bytes(rest)
        self._marker[(seq + count - 1) & self._mask] = 0x80

    def get(self, seq: int) -> tuple[int, bytes, int] | None:
        """(timestamp, payload, marker) of a packet still held, else None."""
        slot = seq & self._mask
        payload = self._payload[slot]
        if payload is None or self._seq[slot] != seq:
            return None
        return self._ts[slot], payload, self._marker[slot]

    def clear(self) -> None:
        slots = self._mask + 1
        self._seq = [-1] * slots
        self._payload = [None] * slots
