"""A bounded, never-blocking queue of frames for one consumer of a Stream."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from rtcc.errors import StreamClosed
from rtcc.media import EncodedFrame


class Subscription:
    """Frames for one consumer (a WebRTC viewer, a recorder...).

    ``offer`` never blocks: when the queue is full the frame is dropped, and so is every frame
    after it until the next keyframe, so the consumer never receives a broken GOP. Drops are
    counted; other subscriptions of the same stream are not affected.
    """

    def __init__(
        self,
        stream_key: str,
        name: str,
        maxsize: int,
        on_close: Callable[[Subscription], None],
    ) -> None:
        if maxsize < 1:
            raise ValueError("a subscription queue holds at least one frame")
        self.stream_key = stream_key
        self.name = name
        self._maxsize = maxsize
        self._on_close = on_close
        self._queue: deque[EncodedFrame] = deque()
        self._ready = asyncio.Event()
        self._need_keyframe = False
        # A consumer starts at a keyframe: delta frames before it are useless to a decoder.
        self._started = False
        self._closed = False
        self._close_reason = ""
        self.created = time.time()
        self.frames_delivered = 0
        self.bytes_delivered = 0
        self.frames_dropped = 0
        self.drop_events = 0
        self.last_frame_time = 0.0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def close_reason(self) -> str:
        return self._close_reason

    def offer(self, frame: EncodedFrame) -> bool:
        """Queue a frame if there is room; return False if it was dropped."""
        if self._closed:
            return False
        if not self._started:
            if not frame.keyframe:
                return False
            self._started = True
        if self._need_keyframe and not frame.keyframe:
            self.frames_dropped += 1
            return False
        if len(self._queue) >= self._maxsize:
            self.frames_dropped += 1
            if not self._need_keyframe:
                self.drop_events += 1
            self._need_keyframe = True
            return False
        self._need_keyframe = False
        self._queue.append(frame)
        self._ready.set()
        return True

    def get_nowait(self) -> EncodedFrame | None:
        if not self._queue:
            if self._closed:
                raise StreamClosed(self._close_reason or "subscription closed")
            return None
        frame = self._queue.popleft()
        if not self._queue:
            self._ready.clear()
        self.frames_delivered += 1
        self.bytes_delivered += len(frame.data)
        self.last_frame_time = frame.capture_time
        return frame

    async def get(self) -> EncodedFrame:
        """The next frame; raises StreamClosed once the subscription is closed and drained."""
        while True:
            frame = self.get_nowait()
            if frame is not None:
                return frame
            await self._ready.wait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> EncodedFrame:
        try:
            return await self.get()
        except StreamClosed:
            raise StopAsyncIteration from None

    def queued(self) -> int:
        return len(self._queue)

    def close(self, reason: str = "") -> None:
        """Stop receiving frames and free the queue. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        self._queue.clear()
        self._ready.set()
        self._on_close(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close("consumer left")

    def stats(self, now: float) -> dict[str, object]:
        return {
            "name": self.name,
            "frames": self.frames_delivered,
            "bytes": self.bytes_delivered,
            "drops": self.frames_dropped,
            "drop_events": self.drop_events,
            "queued": len(self._queue),
            "waiting_for_keyframe": self._need_keyframe,
            "last_frame_age": (
                round(now - self.last_frame_time, 3) if self.last_frame_time else None
            ),
            "connected_seconds": round(now - self.created, 3),
        }
