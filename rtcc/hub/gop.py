"""The group-of-pictures cache that lets a new subscriber start without waiting for a keyframe."""

from __future__ import annotations

from rtcc.media import EncodedFrame


class GopCache:
    """The last keyframe and every frame after it, capped in bytes and in age.

    When a cap is exceeded the cache empties and waits for the next keyframe: a GOP without its
    keyframe is useless to a decoder, so a partial cache would only mislead.
    """

    def __init__(self, max_bytes: int, max_age: float) -> None:
        self._max_bytes = max_bytes
        self._max_age = max_age
        self._frames: list[EncodedFrame] = []
        self._bytes = 0

    def add(self, frame: EncodedFrame) -> None:
        if frame.keyframe:
            self._frames = [frame]
            self._bytes = len(frame.data)
            if self._bytes > self._max_bytes:
                self.clear()
            return
        if not self._frames:
            return
        if frame.discontinuity:
            self.clear()
            return
        size = self._bytes + len(frame.data)
        too_old = frame.capture_time - self._frames[0].capture_time > self._max_age
        if size > self._max_bytes or too_old:
            self.clear()
            return
        self._frames.append(frame)
        self._bytes = size

    def clear(self) -> None:
        self._frames = []
        self._bytes = 0

    def snapshot(self, now: float) -> tuple[EncodedFrame, ...]:
        """The cached GOP, or nothing if its newest frame is older than the age cap."""
        if not self._frames or now - self._frames[-1].capture_time > self._max_age:
            return ()
        return tuple(self._frames)

    @property
    def frame_count(self) -> int:
        return len(self._frames)

    @property
    def byte_count(self) -> int:
        return self._bytes
