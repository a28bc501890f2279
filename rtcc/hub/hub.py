"""The registry of Streams: one per camera and profile."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType

from rtcc.errors import CameraNotFound, ProfileNotFound
from rtcc.hub.source import SourceFactory
from rtcc.hub.stream import Stream, StreamKey, StreamSettings

log = logging.getLogger(__name__)

StreamListener = Callable[[Stream], None]


class StreamHub:
    """Creates, finds and shuts down Streams. An async context manager that owns them all."""

    def __init__(self, *, pin_preloaded: bool = True) -> None:
        """``pin_preloaded`` False: a preloaded stream is not started nor kept running by
        itself; whoever places cameras (the node of a cluster holding its lease) pins it."""
        self._pin_preloaded = pin_preloaded
        self._streams: dict[StreamKey, Stream] = {}
        self._listeners: list[StreamListener] = []
        self._closed = False

    def add_state_listener(self, listener: StreamListener) -> None:
        """Called (on the event loop) whenever any stream changes state."""
        self._listeners.append(listener)

    def remove_state_listener(self, listener: StreamListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def register(
        self, camera_id: str, profile: str, source_factory: SourceFactory, settings: StreamSettings
    ) -> Stream:
        key = StreamKey(camera_id, profile)
        if key in self._streams:
            raise ValueError(f"stream {key} is already registered")
        stream = Stream(key, source_factory, settings, self._notify)
        stream.pinned = settings.preload and self._pin_preloaded
        self._streams[key] = stream
        return stream

    async def unregister(self, camera_id: str, reason: str = "camera removed") -> None:
        """Shut down every profile of a camera."""
        keys = [key for key in self._streams if key.camera_id == camera_id]
        streams = [self._streams.pop(key) for key in keys]
        await asyncio.gather(*(stream.aclose(reason) for stream in streams))

    def get(self, camera_id: str, profile: str) -> Stream:
        stream = self._streams.get(StreamKey(camera_id, profile))
        if stream is not None:
            return stream
        if any(key.camera_id == camera_id for key in self._streams):
            raise ProfileNotFound(camera_id, profile)
        raise CameraNotFound(camera_id)

    def has_camera(self, camera_id: str) -> bool:
        return any(key.camera_id == camera_id for key in self._streams)

    def profiles(self, camera_id: str) -> list[str]:
        return [key.profile for key in self._streams if key.camera_id == camera_id]

    def streams(self) -> list[Stream]:
        return list(self._streams.values())

    def close_camera_sessions(self, camera_id: str, reason: str) -> int:
        """End every consumer of a camera now (consent revoked); returns how many were ended."""
        return sum(
            stream.close_subscriptions(reason)
            for key, stream in self._streams.items()
            if key.camera_id == camera_id
        )

    async def start_preloaded(self) -> None:
        for stream in self._streams.values():
            if stream.pinned:
                try:
                    await stream.start()
                except Exception as exc:  # noqa: BLE001 -- one bad camera must not stop the others
                    log.warning("stream %s: preload failed: %s", stream.key, exc)

    def stats(self) -> list[dict[str, object]]:
        return [stream.stats() for stream in self._streams.values()]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        streams = list(self._streams.values())
        await asyncio.gather(*(stream.aclose() for stream in streams), return_exceptions=True)

    async def __aenter__(self) -> StreamHub:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _notify(self, stream: Stream) -> None:
        for listener in list(self._listeners):
            try:
                listener(stream)
            except Exception:  # a broken listener must not break ingest
                log.exception("stream %s: state listener failed", stream.key)
