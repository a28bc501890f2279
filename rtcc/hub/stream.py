"""One camera profile's live stream: on-demand source lifecycle, GOP cache and fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from rtcc.errors import SourceUnavailable, StreamClosed
from rtcc.hub.gop import GopCache
from rtcc.hub.source import Source, SourceFactory
from rtcc.hub.subscription import Subscription
from rtcc.media import EncodedFrame, MediaInfo, StreamState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamKey:
    camera_id: str
    profile: str

    def __str__(self) -> str:
        return f"{self.camera_id}/{self.profile}"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    close_after: float = 10.0
    """Seconds the source stays up after the last subscriber leaves."""
    start_timeout: float = 10.0
    """Seconds a subscriber waits for the first keyframe before giving up."""
    preload: bool = False
    """Keep the source running with no subscribers."""
    gop_cache_bytes: int = 8 * 1024 * 1024
    gop_cache_age: float = 12.0
    subscriber_queue: int = 120
    """Frames a subscriber may fall behind before it starts dropping (120 = 4 s at 30 fps)."""


StateListener = Callable[["Stream"], None]
_FAILED = (StreamState.RECONNECTING, StreamState.ERROR)
"""States a source reports after a failure (it keeps retrying): a viewer waiting for the first
picture is answered at once with the reason."""


class Stream:
    """Owns one Source and distributes its frames to Subscriptions.

    Publishing (``push_frame``) runs on the event loop and never awaits a subscriber.
    """

    def __init__(
        self,
        key: StreamKey,
        source_factory: SourceFactory,
        settings: StreamSettings,
        on_state_change: StateListener | None = None,
    ) -> None:
        self.key = key
        self.settings = settings
        self._source_factory = source_factory
        self._on_state_change = on_state_change
        self._source: Source | None = None
        self._subscriptions: set[Subscription] = set()
        self._gop = GopCache(settings.gop_cache_bytes, settings.gop_cache_age)
        self._state = StreamState.IDLE
        self._reason = ""
        self._media_info = MediaInfo()
        self._start_waiters: list[asyncio.Future[None]] = []
        self._lifecycle_lock = asyncio.Lock()
        self._close_timer: asyncio.TimerHandle | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._closed = False
        self._has_keyframe = False
        self.frames_in = 0
        self.bytes_in = 0
        self.keyframes_in = 0
        self.starts = 0
        self.last_frame_time = 0.0
        self.state_since = time.time()
        self.pinned = settings.preload
        """Keep the source running with no subscribers (a preloaded camera, on the one node of a
        cluster that holds its lease)."""

    # -- public API ---------------------------------------------------------------------------

    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def media_info(self) -> MediaInfo:
        return self._media_info

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def gop_snapshot(self) -> tuple[EncodedFrame, ...]:
        """The frames a decoder needs to start now (empty if there is no fresh keyframe)."""
        return self._gop.snapshot(time.time())

    async def subscribe(
        self, name: str, *, maxsize: int | None = None, wait: bool = True, replay_gop: bool = True
    ) -> Subscription:
        """Attach a consumer, starting the source if needed.

        With ``wait`` the call returns once the stream has a keyframe to offer, or raises
        SourceUnavailable after ``start_timeout``, or as soon as the source reports a failure
        (RECONNECTING or ERROR): a camera known to be down is not waited for.
        """
        if self._closed:
            raise StreamClosed(f"stream {self.key} is shut down")
        sub = Subscription(
            str(self.key), name, maxsize or self.settings.subscriber_queue, self._unsubscribe
        )
        if replay_gop:
            for frame in self.gop_snapshot():
                sub.offer(frame)
        self._subscriptions.add(sub)
        self._cancel_close_timer()
        try:
            await self._ensure_started()
            if wait and not self._has_fresh_keyframe():
                await self._wait_until_live()
        except BaseException:
            sub.close("start failed")
            raise
        return sub

    async def start(self) -> None:
        """Start the source now (used for preloaded cameras)."""
        await self._ensure_started()

    async def pin(self) -> None:
        """Start the source and keep it running with no subscribers."""
        self.pinned = True
        self._cancel_close_timer()
        await self._ensure_started()

    def unpin(self) -> None:
        """Let the source stop ``close_after`` seconds after its last subscriber (now, when it
        has none)."""
        self.pinned = False
        if not self._subscriptions and not self._closed:
            self._schedule_close()

    async def aclose(self, reason: str = "stream shut down") -> None:
        """Close every subscription and stop the source. Idempotent."""
        self._closed = True
        self._cancel_close_timer()
        for sub in list(self._subscriptions):
            sub.close(reason)
        self._fail_waiters(StreamClosed(reason))
        if self._stop_task is not None:
            await asyncio.shield(self._stop_task)
        await self._stop_source()

    def close_subscriptions(self, reason: str) -> int:
        """End every current consumer (consent revoked); the stream itself stays usable."""
        subs = list(self._subscriptions)
        for sub in subs:
            sub.close(reason)
        return len(subs)

    # -- FrameSink ----------------------------------------------------------------------------

    def push_frame(self, frame: EncodedFrame) -> None:
        self.frames_in += 1
        self.bytes_in += len(frame.data)
        self.last_frame_time = frame.capture_time
        self._gop.add(frame)
        if frame.keyframe:
            self.keyframes_in += 1
            self._has_keyframe = True
        for sub in self._subscriptions:
            sub.offer(frame)
        if self._state is not StreamState.LIVE and self._has_keyframe:
            self.set_state(StreamState.LIVE)

    def set_state(self, state: StreamState, reason: str = "") -> None:
        if state is self._state and reason == self._reason:
            return
        previous = self._state
        self._state = state
        self._reason = reason
        self.state_since = time.time()
        if state is StreamState.LIVE:
            self._resolve_waiters()
        elif state in _FAILED:
            self._fail_waiters(self._unavailable())
        if state in (StreamState.RECONNECTING, StreamState.ERROR, StreamState.IDLE):
            self._has_keyframe = False
        log_fn = log.warning if state in (StreamState.ERROR, StreamState.RECONNECTING) else log.info
        log_fn("stream %s: %s -> %s%s", self.key, previous, state, f" ({reason})" if reason else "")
        if self._on_state_change is not None:
            self._on_state_change(self)

    def set_media_info(self, info: MediaInfo) -> None:
        self._media_info = info
        for warning in info.warnings:
            log.warning("stream %s: %s", self.key, warning)

    # -- lifecycle ----------------------------------------------------------------------------

    def _has_fresh_keyframe(self) -> bool:
        return self._state is StreamState.LIVE and bool(self.gop_snapshot())

    async def _ensure_started(self) -> None:
        if self._stop_task is not None:
            # A linger timer fired and the source is stopping: let it finish, then restart.
            await asyncio.shield(self._stop_task)
        async with self._lifecycle_lock:
            if self._source is not None or self._closed:
                return
            self.starts += 1
            self._has_keyframe = False
            self._gop.clear()
            self.set_state(StreamState.STARTING)
            source: Source | None = None
            try:
                source = self._source_factory()
                self._source = source
                await source.start(self)
            except Exception as exc:
                self._source = None
                self.set_state(StreamState.ERROR, str(exc) or type(exc).__name__)
                if source is not None:
                    with contextlib.suppress(Exception):
                        await source.aclose()
                raise SourceUnavailable(f"camera {self.key.camera_id}: {exc}") from exc

    def _unavailable(self) -> SourceUnavailable:
        reason = self._reason or f"the camera is {self._state}"
        return SourceUnavailable(f"camera {self.key.camera_id}: {reason}")

    async def _wait_until_live(self) -> None:
        if self._state in _FAILED:
            # The source keeps retrying in the background, but a viewer is told now, not later.
            raise self._unavailable()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._start_waiters.append(waiter)
        try:
            async with asyncio.timeout(self.settings.start_timeout):
                await waiter
        except TimeoutError:
            reason = self._reason or "no video received"
            raise SourceUnavailable(
                f"camera {self.key.camera_id} sent no picture within "
                f"{self.settings.start_timeout:g} s: {reason}"
            ) from None
        finally:
            if waiter in self._start_waiters:
                self._start_waiters.remove(waiter)

    def _resolve_waiters(self) -> None:
        waiters, self._start_waiters = self._start_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fail_waiters(self, exc: Exception) -> None:
        waiters, self._start_waiters = self._start_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    def _unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)
        if not self._subscriptions and not self.pinned and not self._closed:
            self._schedule_close()

    def _schedule_close(self) -> None:
        self._cancel_close_timer()
        if self._source is None:
            return
        loop = asyncio.get_running_loop()
        self._close_timer = loop.call_later(self.settings.close_after, self._linger_expired)

    def _cancel_close_timer(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None

    def _linger_expired(self) -> None:
        self._close_timer = None
        if self._subscriptions or self._stop_task is not None:
            return
        log.info("stream %s: no subscribers for %gs, stopping source", self.key,
                 self.settings.close_after)
        task = asyncio.get_running_loop().create_task(
            self._stop_source(), name=f"stream:{self.key}:stop"
        )
        self._stop_task = task
        task.add_done_callback(self._stop_done)

    def _stop_done(self, task: asyncio.Task[None]) -> None:
        self._stop_task = None
        if not task.cancelled() and task.exception() is not None:
            log.error("stream %s: stopping the source failed: %s", self.key, task.exception(),
                      exc_info=task.exception())

    async def _stop_source(self) -> None:
        async with self._lifecycle_lock:
            source, self._source = self._source, None
            if source is None:
                return
            try:
                await source.aclose()
            finally:
                self._gop.clear()
                self._has_keyframe = False
                self.set_state(StreamState.IDLE)

    # -- observability ------------------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        now = time.time()
        source_stats = self._source.stats() if self._source is not None else {}
        return {
            "camera_id": self.key.camera_id,
            "profile": self.key.profile,
            "state": str(self._state),
            "reason": self._reason,
            "state_since": round(self.state_since, 3),
            "frames": self.frames_in,
            "bytes": self.bytes_in,
            "keyframes": self.keyframes_in,
            "starts": self.starts,
            "last_frame_age": (
                round(now - self.last_frame_time, 3) if self.last_frame_time else None
            ),
            "gop_cache_frames": self._gop.frame_count,
            "gop_cache_bytes": self._gop.byte_count,
            "preload": self.settings.preload,
            "media": self._media_info.as_dict(),
            "source": source_stats,
            "subscribers": [sub.stats(now) for sub in self._subscriptions],
        }
