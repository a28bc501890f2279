"""RTP timestamps for one viewer: paced while catching up, the camera's clock once live.

A viewer that joins mid-GOP first receives the cached frames since the last keyframe. Sent with
the camera's own timestamps, those frames would tell the receiver they are seconds late (or hold
the picture seconds behind live). Instead, frames sent while the viewer is catching up get
timestamps that follow the send schedule (each frame takes the time its bytes need at the catch-up
rate, at least ``min_step``), and the sender is paced to match, so arrival times and timestamps
agree. Once the queue is empty the viewer is live: timestamps follow the camera's presentation
times, continuing from the last one sent. A source reconnect (``discontinuity``) or an implausible
jump re-anchors the mapping so timestamps never go backwards by more than a B-frame reorder.

``Clock`` is the pair of time sources a send engine is given (the system's unless a test or a
benchmark hands it others).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from rtcc.media import VIDEO_CLOCK_RATE, EncodedFrame

_MAX_JUMP = 2 * VIDEO_CLOCK_RATE
"""Presentation-time steps beyond +-2 s are treated as a restart of the camera's clock."""
_DEFAULT_STEP = VIDEO_CLOCK_RATE // 30


class RtpClock:
    """Maps one stream's frames to one viewer's RTP timestamps (90 kHz, wrapping at 2**32)."""

    def __init__(self, origin: int, catchup_bps: float, min_step: float) -> None:
        self._max_ts = origin
        """Highest timestamp handed out so far (not wrapped)."""
        self._offset: int | None = None
        self._last_pts: int | None = None
        self._frame_step = _DEFAULT_STEP
        self._catchup_bps = catchup_bps
        self._min_ticks = max(1, round(min_step * VIDEO_CLOCK_RATE))
        self._paced_seconds = 0.0
        self.reanchors = 0

    def catchup(self, frame: EncodedFrame, size: int) -> int:
        """Timestamp of a frame sent while catching up, and the send time it is given."""
        seconds = size * 8 / self._catchup_bps
        ticks = max(self._min_ticks, round(seconds * VIDEO_CLOCK_RATE))
        self._paced_seconds += ticks / VIDEO_CLOCK_RATE
        self._max_ts += ticks
        self._offset = None
        self._note_pts(frame.pts)
        return self._max_ts & 0xFFFFFFFF

    def live(self, frame: EncodedFrame) -> int:
        """Timestamp of a frame sent as it arrives from the camera."""
        offset = self._offset
        ts = frame.pts + offset if offset is not None else 0
        if offset is None or frame.discontinuity or abs(ts - self._max_ts) > _MAX_JUMP:
            step = self._frame_step
            if self._last_pts is not None and not frame.discontinuity:
                delta = frame.pts - self._last_pts
                if 0 < delta <= _MAX_JUMP:
                    step = delta
            if offset is not None:
                self.reanchors += 1
            self._offset = self._max_ts + step - frame.pts
            ts = self._max_ts + step
        self._note_pts(frame.pts)
        if ts > self._max_ts:
            self._max_ts = ts
        return ts & 0xFFFFFFFF

    def take_paced_seconds(self) -> float:
        """Seconds of send schedule consumed by catch-up frames since the last call."""
        seconds, self._paced_seconds = self._paced_seconds, 0.0
        return seconds

    def _note_pts(self, pts: int) -> None:
        last = self._last_pts
        if last is not None and 0 < pts - last <= VIDEO_CLOCK_RATE:
            self._frame_step = pts - last
        self._last_pts = pts


class Clock(NamedTuple):
    """The time sources of a sender: a monotonic clock for schedules and rates, the wall clock
    for what goes on the wire (NTP timestamps, round-trip times)."""

    monotonic: Callable[[], float]
    wall: Callable[[], float]


SYSTEM_CLOCK = Clock(time.monotonic, time.time)
