"""Answers to a viewer's NACKs: the packets its history still holds, rebuilt (as RTX when
negotiated), within a budget so a viewer cannot make the server amplify its NACKs."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from relay.history import NackHistory
from relay.path import RtpParameters
from relay.rtp_header import RTP_HEADER


class RetransmitBudget:
    """At most as many retransmissions per second as packets sent in the previous second (and
    at least 100)."""

    __slots__ = ("_count", "_monotonic", "_sent", "_start")

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._start = 0.0
        self._count = 0
        self._sent = 0

    def allow(self, packets_sent: int) -> bool:
        """Spend one retransmission if the budget has one; ``packets_sent`` is the viewer's
        running count of packets sent."""
        now = self._monotonic()
        if now - self._start >= 1.0:
            self._count = max(100, packets_sent - self._sent)
            self._sent = packets_sent
            self._start = now
        if self._count <= 0:
            return False
        self._count -= 1
        return True


class Retransmitter:
    """Rebuilds the packets one viewer asks for again."""

    def __init__(self, history: NackHistory, monotonic: Callable[[], float]) -> None:
        self._history = history
        self._budget = RetransmitBudget(monotonic)
        self._pt = 0
        self._ssrc = 0
        self._rtx_pt: int | None = None
        self._rtx_ssrc = 0
        self._rtx_seq = random.randrange(32768)
        self.misses = 0
        """Packets asked for that the history no longer holds."""
        self.refused = 0
        """Packets asked for beyond the budget."""

    def configure(self, parameters: RtpParameters) -> None:
        self._pt = parameters.payload_type
        self._ssrc = parameters.ssrc
        self._rtx_pt = parameters.rtx_payload_type
        self._rtx_ssrc = parameters.rtx_ssrc

    def datagrams(self, lost: Iterable[int], extension: bytes,
                  protect: Callable[[bytes], bytes], packets_sent: int) -> list[bytes]:
        """The protected datagrams answering a NACK of the sequence numbers ``lost``."""
        first = 0x90 if extension else 0x80
        datagrams = []
        for seq in lost:
            if not self._budget.allow(packets_sent):
                self.refused += 1
                continue
            entry = self._history.get(seq)
            if entry is None:
                self.misses += 1
                continue
            timestamp, payload, marker = entry
            if self._rtx_pt is not None:
                header = RTP_HEADER.pack(first, marker | self._rtx_pt, self._rtx_seq, timestamp,
                                         self._rtx_ssrc)
                self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
                body = seq.to_bytes(2, "big") + payload
            else:
                header = RTP_HEADER.pack(first, marker | self._pt, seq, timestamp, self._ssrc)
                body = payload
            datagrams.append(protect(b"".join((header, extension, body))))
        return datagrams
