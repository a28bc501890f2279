"""Event-loop lag: how late the loop runs a callback it was asked to run now.

A small task sleeps ``interval`` seconds and measures how much later than that it woke up. The
excess is the time every other callback on the loop (frames to viewers, RTCP, DTLS) waited too.
``LoopLag`` keeps the last sample, the worst over a sliding window, a cumulative histogram for
Prometheus and whether the loop has been over a threshold long enough to refuse new work
(``overloaded``): new views, exports and uploads are answered 503 before live viewers degrade.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds (seconds) of the lag histogram; a last bucket +Inf holds the rest."""


class LoopLag:
    """Samples the running loop's scheduling delay; read its figures from the same loop."""

    def __init__(self, *, interval: float = 0.1, window: float = 10.0,
                 threshold: float = 0.25, sustain: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0 or window <= 0 or sustain < 0 or threshold <= 0:
            raise ValueError("loop lag interval, window and threshold must be positive")
        self.interval = interval
        self.window = window
        self.threshold = threshold
        self.sustain = sustain
        self._clock = clock
        self.last = 0.0
        self.samples = 0
        self.total = 0.0
        self.counts = [0] * (len(BUCKETS) + 1)
        self._recent: collections.deque[tuple[float, float]] = collections.deque()
        # The current streak of lag over the threshold: when it began and its latest sample.
        # A streak ends only after ``sustain`` seconds without such a sample, so a loop that is
        # late every other tick still counts as overloaded (and recovery is not a flicker).
        self._over_since: float | None = None
        self._last_over: float | None = None
        self.refused = 0

    def record(self, lag: float) -> None:
        """One sample: ``lag`` seconds late (negative counts as 0)."""
        lag = max(0.0, lag)
        now = self._clock()
        self.last = lag
        self.samples += 1
        self.total += lag
        self.counts[bisect.bisect_left(BUCKETS, lag)] += 1
        self._recent.append((now, lag))
        while self._recent and self._recent[0][0] < now - self.window:
            self._recent.popleft()
        if lag >= self.threshold:
            if self._last_over is None or now - self._last_over > self.sustain:
                # The sample arrives after the stall it measured: the loop was late from its start.
                self._over_since = now - lag
            self._last_over = now

    def max_recent(self) -> float:
        """The worst lag in the last ``window`` seconds."""
        cutoff = self._clock() - self.window
        return max((lag for at, lag in self._recent if at >= cutoff), default=0.0)

    def overloaded(self) -> bool:
        """Whether the loop has lagged over ``threshold`` for ``sustain`` seconds and still
        did within the last ``sustain`` seconds."""
        if self._over_since is None or self._last_over is None:
            return False
        return (self._last_over - self._over_since >= self.sustain
                and self._clock() - self._last_over <= self.sustain)

    def retry_after(self) -> int:
        """Seconds a refused client should wait before it tries again."""
        return max(1, round(self.window / 2))

    async def run(self) -> None:
        """Sample forever (start it as a supervised task; cancel it to stop)."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.interval)
            self.record(loop.time() - asked - self.interval)

    def stats(self) -> dict[str, object]:
        return {"lag_seconds": self.last, "max_recent_seconds": self.max_recent(),
                "window_seconds": self.window, "threshold_seconds": self.threshold,
                "overloaded": self.overloaded(), "samples": self.samples,
                "refused": self.refused}

    def prometheus(self) -> str:
        """The ``rtcc_event_loop_lag_*`` families in Prometheus text format."""
        lines = [
            "# HELP rtcc_event_loop_lag_seconds How late the event loop ran its last sample",
            "# TYPE rtcc_event_loop_lag_seconds gauge",
            f"rtcc_event_loop_lag_seconds {self.last:g}",
            "# HELP rtcc_event_loop_lag_max_seconds Worst event loop lag over the last window",
            "# TYPE rtcc_event_loop_lag_max_seconds gauge",
            f'rtcc_event_loop_lag_max_seconds{{window="{self.window:g}"}} {self.max_recent():g}',
            "# HELP rtcc_event_loop_lag_histogram_seconds Event loop lag samples",
            "# TYPE rtcc_event_loop_lag_histogram_seconds histogram",
        ]
        running = 0
        for bound, count in zip(BUCKETS, self.counts, strict=False):
            running += count
            lines.append(f'rtcc_event_loop_lag_histogram_seconds_bucket{{le="{bound:g}"}} '
                         f"{running}")
        lines += [
            f'rtcc_event_loop_lag_histogram_seconds_bucket{{le="+Inf"}} {self.samples}',
            f"rtcc_event_loop_lag_histogram_seconds_sum {self.total:g}",
            f"rtcc_event_loop_lag_histogram_seconds_count {self.samples}",
            "# HELP rtcc_event_loop_overloaded 1 while new work is refused for loop lag",
            "# TYPE rtcc_event_loop_overloaded gauge",
            f"rtcc_event_loop_overloaded {1 if self.overloaded() else 0}",
            "# HELP rtcc_admission_refused_total New work refused because the loop lagged",
            "# TYPE rtcc_admission_refused_total counter",
            f"rtcc_admission_refused_total {self.refused}",
        ]
        return "\n".join(lines) + "\n"


__all__ = ["BUCKETS", "LoopLag"]
