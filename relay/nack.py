"""How many NACKed packets a viewer may have retransmitted: a viewer cannot make the server
amplify its NACKs."""

from __future__ import annotations

from collections.abc import Callable


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
