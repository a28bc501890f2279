"""Keeps the stream hub in step with the catalog: one Stream per registered camera profile.

At start every camera the catalog holds gets its streams; afterwards catalog events
(``camera.created``, ``camera.updated``, ``camera.deleted``, ``catalog.imported``) add, replace or
remove them, so a camera registered through the API streams without a restart. Every camera is
also read again every ``reconcile_seconds`` and after the event feed ended, so an event lost
while Redis was unreachable delays a change, never loses it. Cameras reached
through their owner's agent are registered by the agent server, not here. Whether the
department's private-network allowlist applies to a camera's addresses depends on who registered
them (the catalog's ``registered_by``), decided again before every connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from catalog import CATALOG_STORE, LIVE_FEED, CatalogStore
from catalog.model import Camera, Profile, Registrar
from catalog.store import STORE_ERRORS
from ingest.handoff import LoopHandoff
from ingest.rtsp import RtspTarget
from rtcc.access import SecretBox
from rtcc.appkeys import HUB, SECRET_BOX, SETTINGS
from rtcc.config import Settings
from rtcc.hub import SourceFactory, Stream, StreamHub, StreamSettings
from rtcc.tasks import TaskSupervisor
from rtcc.transcode import TranscodeLimits, TranscodeSource, transcoded_profile
from server.camera_sources import rtsp_source_factory

log = logging.getLogger(__name__)

_CAMERA_EVENTS = frozenset({"camera.created", "camera.updated", "camera.deleted",
                            "catalog.imported"})
_RETRY_S = 5.0
"""Seconds before a full re-read that met a store error is tried again."""
_STORE_TIMEOUT_S = 30.0


class CameraSync:
    def __init__(
        self, hub: StreamHub, store: CatalogStore, settings: Settings, box: SecretBox
    ) -> None:
        self._hub = hub
        self._store = store
        self._settings = settings
        self._box = box
        # One handoff for every source: one event-loop wakeup carries frames of many cameras.
        self._handoff = LoopHandoff()
        self._registered: dict[str, tuple[object, ...]] = {}
        self._followed = False
        self._reconcile_s = settings.reconcile_seconds
        self.reconciles = 0

    async def sync_all(self) -> None:
        seen: set[str] = set()
        async for camera in self._store.iter_cameras():
            seen.add(camera.id)
            await self._apply(camera)
        for camera_id in set(self._registered) - seen:
            await self._remove(camera_id)

    async def sync_camera(self, camera_id: str) -> None:
        camera = await self._store.get(camera_id)
        if camera is None:
            await self._remove(camera_id)
        else:
            await self._apply(camera)

    async def _apply(self, camera: Camera) -> None:
        streamable = {
            name: profile for name, profile in camera.profiles.items() if not camera.via_agent
        }
        fingerprint = (camera.preload, camera.registered_by,
                       tuple(sorted(streamable.items(), key=lambda item: item[0])))
        if self._registered.get(camera.id) == fingerprint:
            return
        if camera.id in self._registered:
            await self._remove(camera.id)
        if not streamable:
            return
        settings = self._stream_settings(camera)
        for name, profile in streamable.items():
            stream = self._hub.register(camera.id, name, self._factory(camera, name, profile),
                                        settings)
            if profile.transcode_h264:
                # Registered after the camera's own profiles: the recorder never picks it.
                self._hub.register(camera.id, transcoded_profile(name),
                                   self._transcode_factory(stream), settings)
        self._registered[camera.id] = fingerprint
        if camera.preload:
            await self._hub.start_preloaded()

    async def _remove(self, camera_id: str) -> None:
        if self._registered.pop(camera_id, None) is not None:
            await self._hub.unregister(camera_id, "camera changed or removed from the catalog")

    def _factory(self, camera: Camera, name: str, profile: Profile) -> SourceFactory:
        password = self._box.decrypt(profile.password_ciphertext) if profile.password_ciphertext \
            else ""
        target = RtspTarget(url=profile.url, username=profile.username, password=password,
                            transport=profile.transport)
        return rtsp_source_factory(
            f"{camera.id}/{name}", target, self._settings.ingest, self._settings.security,
            self._handoff, allowlisted=camera.registered_by == Registrar.DEPARTMENT)

    def _transcode_factory(self, upstream: Stream) -> SourceFactory:
        hub = self._settings.hub
        limits = TranscodeLimits(max_width=hub.transcode_max_width,
                                 max_height=hub.transcode_max_height,
                                 max_fps=hub.transcode_max_fps)
        return lambda: TranscodeSource(upstream, limits)

    def _stream_settings(self, camera: Camera) -> StreamSettings:
        hub = self._settings.hub
        return StreamSettings(
            close_after=hub.close_after,
            start_timeout=hub.start_timeout,
            preload=camera.preload,
            gop_cache_bytes=hub.gop_cache_bytes,
            gop_cache_age=hub.gop_cache_age,
            subscriber_queue=hub.subscriber_queue,
        )

    async def follow_catalog(self, app: web.Application) -> None:
        """Apply catalog changes as they are announced, for as long as the app runs.

        Events are a shortcut, not the truth: every ``reconcile_seconds``, and whenever the feed
        ends (this reader fell behind, or the Redis subscription was lost and events may have
        been missed), every camera is read again. A store error postpones that re-read by a few
        seconds; it never ends the loop.
        """
        resync, self._followed = self._followed, True
        loop = asyncio.get_running_loop()
        next_full = loop.time() + (0.0 if resync else self._reconcile_s)
        while True:
            feed = app[LIVE_FEED].subscribe(types=_CAMERA_EVENTS)
            try:
                while True:
                    if loop.time() >= next_full:
                        # Subscribed first, so nothing changed during the re-read is missed.
                        next_full = loop.time() + await self._reconcile()
                    try:
                        encoded = await feed.next(max(0.0, next_full - loop.time()))
                    except TimeoutError:
                        continue
                    if encoded is None:
                        break
                    await self._on_event(encoded)
            finally:
                app[LIVE_FEED].unsubscribe(feed)
            next_full = loop.time()  # the feed ended: events may be missing, read everything

    async def _reconcile(self) -> float:
        """Read every camera again; seconds until the next full read."""
        try:
            async with asyncio.timeout(max(_STORE_TIMEOUT_S, self._reconcile_s)):
                await self.sync_all()
        except STORE_ERRORS as exc:
            retry = min(_RETRY_S, self._reconcile_s)
            log.warning("camera sync: cannot read the catalog (%s); trying again in %.0f s",
                        exc, retry)
            return retry
        self.reconciles += 1
        return self._reconcile_s

    async def _on_event(self, encoded: str) -> None:
        try:
            event = json.loads(encoded)
            if event.get("type") == "catalog.imported":
                await self.sync_all()
            elif isinstance(event.get("id"), str):
                await self.sync_camera(event["id"])
        except Exception:  # one bad camera record must not stop the others from syncing
            log.exception("camera sync: could not apply catalog event %.200s", encoded)


async def camera_sync_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx, after the catalog, the hub and the live feed: register and follow cameras."""
    sync = CameraSync(app[HUB], app[CATALOG_STORE], app[SETTINGS], app[SECRET_BOX])
    await sync.sync_all()
    async with TaskSupervisor("camera-sync") as tasks:
        tasks.start("catalog:camera-sync", lambda: sync.follow_catalog(app))
        yield
