"""Opening the catalog store named by the configuration, and seeding it on first start."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web
from redis.exceptions import RedisError

from catalog.keys import CATALOG_STORE
from catalog.model import camera_from_config
from catalog.owner_registry import CatalogOwners
from catalog.redis_store import RedisCatalog
from catalog.sqlite_store import SqliteCatalog
from catalog.store import STORE_ERRORS, CatalogStore
from rtcc.access import CameraConsent, SecretBox
from rtcc.appkeys import CAMERA_DIRECTORY, OWNER_REGISTRY, RECORD_FLAGS, SECRET_BOX, SETTINGS
from rtcc.config import CameraConfig
from rtcc.errors import ConfigError, StoreUnavailable

log = logging.getLogger(__name__)


async def open_store(url: str) -> CatalogStore:
    """``sqlite:///relative/path``, ``sqlite:////absolute/path`` or ``redis://host:port/db``."""
    if url.startswith("sqlite:///"):
        return await SqliteCatalog.open(Path(url[len("sqlite:///"):]))
    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            return await RedisCatalog.open(url)
        except (RedisError, OSError, TimeoutError) as exc:
            raise ConfigError(f"store: cannot reach Redis: {exc}") from None
    raise ConfigError("store must start with sqlite:/// or redis://")


async def seed_if_empty(
    store: CatalogStore, cameras: Sequence[CameraConfig], box: SecretBox | None
) -> int:
    """Load the configuration file's cameras into an empty catalog; returns how many."""
    if not cameras or await store.count() > 0:
        return 0
    count = await store.import_cameras([camera_from_config(c, box) for c in cameras])
    log.info("catalog: seeded %d cameras from the configuration", count)
    return count


class CatalogDirectory:
    """The catalog as the other domains see it (``CameraDirectory``, ``RecordFlags``): a store
    that cannot be reached raises ``StoreUnavailable``, which every route answers with 503."""

    def __init__(self, store: CatalogStore) -> None:
        self._store = store

    async def consent_of(self, camera_id: str) -> CameraConsent | None:
        try:
            return await self._store.consent_of(camera_id)
        except STORE_ERRORS as exc:
            raise _unavailable(exc) from exc

    async def cameras_set_to_record(self) -> frozenset[str]:
        try:
            return frozenset([camera.id async for camera in self._store.iter_cameras()
                              if camera.record])
        except STORE_ERRORS as exc:
            raise _unavailable(exc) from exc


def _unavailable(exc: BaseException) -> StoreUnavailable:
    if isinstance(exc, StoreUnavailable):
        return exc
    return StoreUnavailable(f"the camera catalog cannot be read ({type(exc).__name__}: {exc}); "
                            "try again shortly")


async def catalog_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: open ``settings.store``, seed it on first start, publish it, close it.

    Needs ``SECRET_BOX`` set by an earlier context when seeded cameras have passwords. The store
    becomes ``CATALOG_STORE``; its ``CatalogDirectory`` becomes ``RECORD_FLAGS`` and, unless
    another directory was set, ``CAMERA_DIRECTORY``.
    """
    settings = app[SETTINGS]
    store = await open_store(settings.store)
    try:
        await seed_if_empty(store, settings.cameras, app.get(SECRET_BOX))
        app[CATALOG_STORE] = store
        app[OWNER_REGISTRY] = CatalogOwners(store)
        directory = CatalogDirectory(store)
        app[RECORD_FLAGS] = directory
        if CAMERA_DIRECTORY not in app:
            app[CAMERA_DIRECTORY] = directory
        yield
    finally:
        await store.aclose()
