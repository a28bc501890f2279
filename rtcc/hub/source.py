"""The contract between ingest (who makes frames) and the hub (who distributes them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from rtcc.media import EncodedFrame, MediaInfo, StreamState


class FrameSink(Protocol):
    """Where a Source delivers what it receives. Every method must be called on the event loop
    (sources that demux in a thread hand over with ``loop.call_soon_threadsafe``)."""

    def push_frame(self, frame: EncodedFrame) -> None: ...

    def set_state(self, state: StreamState, reason: str = "") -> None: ...

    def set_media_info(self, info: MediaInfo) -> None: ...


class Source(Protocol):
    """A camera feed. ``start`` returns quickly; the source then reconnects on its own until
    ``aclose``, reporting RECONNECTING or ERROR (with a reason a person understands) to the sink."""

    async def start(self, sink: FrameSink) -> None: ...

    async def aclose(self) -> None: ...

    def stats(self) -> dict[str, object]: ...


SourceFactory = Callable[[], Source]
