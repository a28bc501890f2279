"""Handing work from demux threads to the event loop, many items per wakeup.

Waking an idle event loop from another thread (``call_soon_threadsafe``: a write to the loop's
self-pipe, a return from ``epoll_wait``, GIL hand-overs) costs about 100 µs of CPU on a small
virtual machine, more than demuxing the frame it carries. One ``LoopHandoff`` shared by every
source of a process drains a common queue: a lone frame still goes through at once, but when
frames of many cameras arrive faster than one per ``min_interval``, the loop drains on a timer
every ``min_interval`` seconds instead, so one wakeup carries many frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

Callback = Callable[..., None]


class HandoffClosed(Exception):
    """The event loop is closed: nothing posted can run any more."""


class LoopHandoff:
    """Runs callbacks posted from any thread on one event loop, in posting order.

    Bound to the loop of the first ``bind`` call (sources bind it in ``start``). ``post`` never
    blocks. While items arrive slower than about one per ``min_interval`` each one wakes the
    loop at once; faster than that, the loop drains the queue on a timer every ``min_interval``
    seconds instead (the added latency is bounded by it; 0 turns the timer off).
    """

    RATE_WINDOW = 0.1
    """Seconds over which the arrival rate is measured to choose between the two modes."""

    def __init__(self, *, min_interval: float = 0.005) -> None:
        if min_interval < 0:
            raise ValueError("min_interval must not be negative")
        self._min_interval = min_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[tuple[Callback, tuple[object, ...]]] = deque()
        self._pending = False
        self._polling = False
        self._window_start = 0.0
        self._window_items = 0
        self.wakeups = 0
        self.items = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
            self._window_start = loop.time()
        elif self._loop is not loop:
            raise RuntimeError("a LoopHandoff serves one event loop; create one per loop")

    def post(self, callback: Callback, *args: object) -> None:
        """Queue ``callback(*args)`` for the loop. Thread-safe; raises HandoffClosed if the
        loop is gone."""
        loop = self._loop
        if loop is None:
            raise HandoffClosed
        self._queue.append((callback, args))
        if self._pending:
            return
        self._pending = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop was closed
            raise HandoffClosed from None

    def stats(self) -> dict[str, object]:
        return {
            "wakeups": self.wakeups,
            "items": self.items,
            "items_per_wakeup": round(self.items / self.wakeups, 2) if self.wakeups else None,
            "queued": len(self._queue),
            "polling": self._polling,
        }

    def _drain(self) -> None:
        loop = self._loop
        assert loop is not None
        self.wakeups += 1
        count = 0
        while self._queue:
            callback, args = self._queue.popleft()
            count += 1
            try:
                callback(*args)
            except Exception:
                log.exception("a callback handed over from a demux thread failed")
        self.items += count
        self._window_items += count
        now = loop.time()
        elapsed = now - self._window_start
        if elapsed >= self.RATE_WINDOW:
            rate = self._window_items / elapsed
            # Hysteresis: start polling above 1.5 items per interval, stop below 1.
            threshold = (1.0 if self._polling else 1.5) / self._min_interval if (
                self._min_interval > 0) else float("inf")
            self._polling = rate > threshold
            self._window_start = now
            self._window_items = 0
        if self._polling:
            loop.call_later(self._min_interval, self._drain)  # _pending stays set
            return
        self._pending = False
        if self._queue:  # posted between the last popleft and the flag reset
            self._pending = True
            loop.call_soon(self._drain)
