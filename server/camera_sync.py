"""Keeps the stream hub in step with the catalog: one Stream per registered camera profile.

At start every camera the catalog holds gets its streams; afterwards catalog events
(``camera.created``, ``camera.updated``, ``camera.deleted``, ``catalog.imported``) add, replace or
remove them, so a camera registered through the API streams without a restart. Cameras reached
through their owner's agent are registered by the agent server, not here. Whether the
department's private-network allowlist applies to a camera's addresses depends on who registered
them (the catalog's ``registered_by``), decided again before every connection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from catalog import CATALOG_STORE, LIVE_FEED, CatalogStore
from catalog.events import Feed
from catalog.model import Camera, Profile, Registrar
from ingest.handoff import LoopHandoff
from ingest.rtsp import RtspTarget
from rtcc.access import SecretBox
from rtcc.appkeys import HUB, SECRET_BOX, SETTINGS
from rtcc.config import Settings
from rtcc.hub import SourceFactory, StreamHub, StreamSettings
from rtcc.tasks import TaskSupervisor
from server.camera_sources import rtsp_source_factory

log = logging.getLogger(__name__)

_CAMERA_EVENTS = frozenset({"camera.created", "camera.updated", "camera.deleted",
                            "catalog.imported"})


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
            self._hub.register(camera.id, name, self._factory(camera, name, profile), settings)
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

        A store error ends the call; its supervisor calls it again, and a call after the first
        re-reads every camera, since changes may have been announced in between.
        """
        resync, self._followed = self._followed, True
        while True:
            feed = app[LIVE_FEED].subscribe(types=_CAMERA_EVENTS)
            try:
                if resync:  # subscribed first, so nothing changed during the re-read is missed
                    await self.sync_all()
                while (encoded := await _next_event(feed)) is not None:
                    await self._on_event(encoded)
            finally:
                app[LIVE_FEED].unsubscribe(feed)
            # The feed ends when this reader fell behind: re-read everything, then follow again.
            resync = True

    async def _on_event(self, encoded: str) -> None:
        try:
            event = json.loads(encoded)
            if event.get("type") == "catalog.imported":
                await self.sync_all()
            elif isinstance(event.get("id"), str):
                await self.sync_camera(event["id"])
        except Exception:  # one bad camera record must not stop the others from syncing
            log.exception("camera sync: could not apply catalog event %.200s", encoded)


async def _next_event(feed: Feed) -> str | None:
    while True:
        try:
            return await feed.next(3600.0)
        except TimeoutError:
            continue


async def camera_sync_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx, after the catalog, the hub and the live feed: register and follow cameras."""
    sync = CameraSync(app[HUB], app[CATALOG_STORE], app[SETTINGS], app[SECRET_BOX])
    await sync.sync_all()
    async with TaskSupervisor("camera-sync") as tasks:
        tasks.start("catalog:camera-sync", lambda: sync.follow_catalog(app))
        yield
