"""The packets a viewer was sent recently, so a NACK can be answered with a retransmission."""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

DEFAULT_SLOTS = 4096
"""4096 packets: 17 s of a 2 Mbit/s stream, and still more than 1 s at 40 Mbit/s."""


class SentPacket(NamedTuple):
    """A packet as it was sent, for its retransmission."""

    timestamp: int
    payload: bytes
    marker: int
    """0x80 when the marker bit was set, else 0."""


class NackHistory:
    """At least the last ``slots`` packets of one viewer, kept as whole frames.

    Only references are kept: payloads are the bytes shared by every viewer of the stream, and a
    frame is recorded as one entry (its first sequence number, timestamp and payload tuple), so a
    viewer's history costs one small tuple per frame, not a copy of the video nor an object per
    packet. A lookup walks back from the newest frame; NACKs are rare and ask for recent packets.
    """

    __slots__ = ("_count", "_frames", "_slots")

    def __init__(self, slots: int = DEFAULT_SLOTS) -> None:
        if slots < 256 or slots > 32768 or slots & (slots - 1):
            raise ValueError("history slots must be a power of two from 256 to 32768")
        self._slots = slots
        self._frames: deque[tuple[int, int, tuple[bytes, ...], int]] = deque()
        self._count = 0

    def record(self, seq: int, ts: int, payload: bytes, marker: int) -> None:
        """Record one packet; ``marker`` (0 or 0x80) is what its marker bit was."""
        self.record_frame(seq, ts, (payload,), marker)

    def record_frame(self, seq: int, ts: int, payloads: tuple[bytes, ...],
                     marker: int = 0x80) -> None:
        """Record a frame's packets, sent with consecutive sequence numbers from ``seq``; the
        last one carries ``marker`` (the marker bit, set on the last packet of a frame)."""
        count = len(payloads)
        slots = self._slots
        if count > slots:
            skip = count - slots
            payloads = payloads[skip:]
            seq = (seq + skip) & 0xFFFF
            count = slots
        frames = self._frames
        frames.append((seq, ts, payloads, marker))
        total = self._count + count
        while total - len(frames[0][2]) >= slots:
            total -= len(frames.popleft()[2])
        self._count = total

    def get(self, seq: int) -> SentPacket | None:
        """The packet sent with ``seq``, if still held."""
        for start, ts, payloads, marker in reversed(self._frames):
            index = (seq - start) & 0xFFFF
            if index < len(payloads):
                return SentPacket(ts, payloads[index], marker if index == len(payloads) - 1 else 0)
        return None

    def clear(self) -> None:
        self._frames.clear()
        self._count = 0
