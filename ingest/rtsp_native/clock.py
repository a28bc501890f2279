"""Capture times for frames read in batches.

The native client reads every camera's socket on one timer, so the frames of a batch are all
seen at the same instant, up to one read interval after they arrived. Stamping them with the
read time would give recordings bunched, jittery wall-clock times. Instead a frame's capture
time is its RTP timestamp placed on the wall clock by the least-delayed arrival seen recently:
arrival - media time is smallest for the frame that waited least, so that offset is the best
estimate of when the camera's clock read zero. Keeping the minimum over two rolling windows
follows a camera clock that drifts; a capture time is never later than the frame's arrival.
Capture times only move forward, in the order frames arrive (decode order), as the recorder and
the hub expect: a B-frame, or a frame stamped while the anchor improves, gets a microsecond
more than the frame before it.
"""

from __future__ import annotations

import math

RTP_VIDEO_RATE = 90_000
WINDOW_SECONDS = 10.0
"""Each rolling window's length; the anchor is the least delay seen over the last two."""
FORWARD_STEP = 1e-6
"""Seconds a capture time moves on at least, from one frame to the next."""
MAX_BEHIND_SECONDS = 1.0
"""A capture time this far behind its arrival means the camera's clock jumped: anchor anew."""


class ArrivalClock:
    """Wall-clock capture times from one session's 32-bit RTP timestamps and arrival times."""

    __slots__ = ("_current_min", "_extended", "_last", "_last_capture", "_previous_min",
                 "_window_start")

    def __init__(self) -> None:
        self._extended = 0
        self._last: int | None = None
        self._previous_min = math.inf
        self._current_min = math.inf
        self._window_start = -math.inf
        self._last_capture = -math.inf

    def capture_time(self, rtp_timestamp: int, arrival: float) -> float:
        if self._last is not None:
            delta = (rtp_timestamp - self._last) & 0xFFFFFFFF
            if delta >= 0x80000000:
                delta -= 0x1_0000_0000
            self._extended += delta
        self._last = rtp_timestamp
        media = self._extended / RTP_VIDEO_RATE
        offset = arrival - media
        if arrival - self._window_start >= WINDOW_SECONDS:
            self._previous_min, self._current_min = self._current_min, math.inf
            self._window_start = arrival
        self._current_min = min(self._current_min, offset)
        best = min(self._previous_min, self._current_min)
        if offset - best > MAX_BEHIND_SECONDS:  # the timestamps jumped back: start again
            self._previous_min = self._current_min = best = offset
            self._window_start = arrival
        capture = max(media + best, self._last_capture + FORWARD_STEP)
        self._last_capture = capture
        return capture
