"""Live camera status: stream hub state -> catalog store -> consoles (Server-Sent Events).

The hub calls ``LiveStatus.on_state`` on the event loop whenever a stream changes state. That
callback only marks the camera; a named task writes the camera's combined status (the most alive
of its profiles) to the store and publishes a ``camera.status`` event, so ingest never waits on
the store and a burst of changes for one camera collapses into one write.

Consoles listen at ``GET /api/events``: one ``data:`` line of JSON per event, each with a
``type`` (``hello``, ``camera.status``, ``camera.created``, ``camera.updated``,
``camera.deleted``, ``catalog.imported``); ``?types=`` and ``?cameras=`` narrow the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from types import TracebackType

from aiohttp import web

from catalog.events import Broadcaster, EventBus, LocalBus, PgBus, RedisBus
from catalog.keys import CATALOG_EVENTS, CATALOG_STORE, LIVE_FEED
from catalog.model import CameraStatus
from catalog.postgis_store import EVENTS_CHANNEL, PostgisCatalog
from catalog.redis_store import RedisCatalog
from catalog.store import STORE_ERRORS, CatalogStore
from rtcc.appkeys import HUB
from rtcc.hub import Stream, StreamHub
from rtcc.media import StreamState
from rtcc.policy import staff
from rtcc.tasks import TaskSupervisor

log = logging.getLogger(__name__)

_WRITE_TIMEOUT_S = 5.0
_KEEPALIVE_S = 15.0
_LIVENESS = (StreamState.LIVE, StreamState.STARTING, StreamState.RECONNECTING,
             StreamState.ERROR, StreamState.IDLE)


def camera_state(hub: StreamHub, camera_id: str) -> tuple[CameraStatus, float | None,
                                                           dict[str, str]]:
    """A camera's combined status (its most alive profile), last frame time, and per profile."""
    streams = [hub.get(camera_id, profile) for profile in hub.profiles(camera_id)]
    states = {stream.key.profile: stream.state for stream in streams}
    status = CameraStatus.UNKNOWN
    for state in _LIVENESS:
        if state in states.values():
            status = CameraStatus.from_stream_state(state)
            break
    last = max((stream.last_frame_time for stream in streams), default=0.0)
    return status, (last or None), {profile: str(state) for profile, state in states.items()}


class LiveStatus:
    """Keeps the store's camera status in step with the hub and announces each change."""

    def __init__(self, hub: StreamHub, store: CatalogStore, bus: EventBus) -> None:
        self._hub = hub
        self._store = store
        self._bus = bus
        self._pending: dict[str, None] = {}
        self._wake = asyncio.Event()
        self._tasks: TaskSupervisor | None = None
        self._last_warning = 0.0
        self.applied = 0

    def on_state(self, stream: Stream) -> None:
        self._pending[stream.key.camera_id] = None
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = list(self._pending)
            self._pending.clear()
            for camera_id in batch:
                if not self._hub.has_camera(camera_id):
                    continue
                try:
                    await self._apply(camera_id)
                except Exception:  # one bad update must not end live status for every camera
                    log.exception("camera %s: live status update failed", camera_id)

    async def _apply(self, camera_id: str) -> None:
        status, last_frame_time, profiles = camera_state(self._hub, camera_id)
        try:
            async with asyncio.timeout(_WRITE_TIMEOUT_S):
                await self._store.set_status(camera_id, status, last_frame_time)
        except STORE_ERRORS as exc:
            now = time.monotonic()
            if now - self._last_warning > 30.0:
                self._last_warning = now
                log.warning("camera %s: cannot record status %s in the catalog: %s",
                            camera_id, status, exc)
        self.applied += 1
        await self._bus.publish({
            "type": "camera.status", "id": camera_id, "status": str(status),
            "last_frame_time": last_frame_time, "profiles": profiles, "time": time.time(),
        })

    async def __aenter__(self) -> LiveStatus:
        self._hub.add_state_listener(self.on_state)
        for camera_id in dict.fromkeys(s.key.camera_id for s in self._hub.streams()):
            self._pending[camera_id] = None
        self._wake.set()
        self._tasks = TaskSupervisor("catalog-live")
        self._tasks.start("catalog:live-status", self._run)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._hub.remove_state_listener(self.on_state)
        tasks, self._tasks = self._tasks, None
        if tasks is not None:
            await tasks.aclose()


async def live_status_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the hub's and the catalog's): event bus, console feed, status sync."""
    store = app[CATALOG_STORE]
    broadcaster = Broadcaster()
    bus: EventBus
    if isinstance(store, RedisCatalog):
        bus = RedisBus(store.client, store.events_channel, broadcaster)
    elif isinstance(store, PostgisCatalog):
        bus = PgBus(store.database.url, EVENTS_CHANNEL, broadcaster,
                    store.database.settings.connect_timeout)
    else:
        bus = LocalBus(broadcaster)
    async with bus:
        app[LIVE_FEED] = broadcaster
        app[CATALOG_EVENTS] = bus
        hub = app.get(HUB)
        try:
            async with (LiveStatus(hub, store, bus) if hub is not None
                        else contextlib.nullcontext()):
                yield
        finally:
            broadcaster.close()


async def close_feeds(app: web.Application) -> None:
    """on_shutdown: end every open event stream so shutdown does not wait on them."""
    broadcaster = app.get(LIVE_FEED)
    if broadcaster is not None:
        broadcaster.close()


def _csv_param(request: web.Request, name: str) -> frozenset[str]:
    return frozenset(v.strip() for raw in request.query.getall(name, [])
                     for v in raw.split(",") if v.strip())


@staff()
async def events(request: web.Request) -> web.StreamResponse:
    broadcaster = request.config_dict.get(LIVE_FEED)
    if broadcaster is None:
        return web.json_response({"error": "live events are not running", "field": "",
                                  "allowed": ""}, status=503)
    feed = broadcaster.subscribe(_csv_param(request, "types"), _csv_param(request, "cameras"))
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
    })
    try:
        await response.prepare(request)
        await response.write(b'retry: 2000\ndata: {"type":"hello"}\n\n')
        while True:
            try:
                item = await feed.next(_KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if item is None:
                break
            await response.write(b"data: " + item.encode() + b"\n\n")
    except ConnectionResetError:
        log.debug("catalog events: a console went away")
    finally:
        broadcaster.unsubscribe(feed)
    return response
