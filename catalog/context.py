"""Opening the catalog store named by the configuration, and seeding it on first start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr
from redis.exceptions import RedisError

from catalog.keys import CATALOG_STORE
from catalog.model import camera_from_config
from catalog.owner_registry import CatalogOwners
from catalog.postgis_store import PostgisCatalog
from catalog.redis_store import RedisCatalog
from catalog.sqlite_store import SqliteCatalog
from catalog.store import STORE_ERRORS, CatalogStore
from rtcc.access import CameraConsent, SecretBox
from rtcc.appkeys import (
    CAMERA_DIRECTORY,
    DATABASE,
    OWNER_REGISTRY,
    RECORD_FLAGS,
    SECRET_BOX,
    SETTINGS,
)
from rtcc.config import CameraConfig, DatabaseConfig
from rtcc.db import Database
from rtcc.errors import ConfigError, StoreUnavailable

log = logging.getLogger(__name__)


async def open_store(url: str, database: Database | None = None) -> CatalogStore:
    """``sqlite:///relative/path``, ``sqlite:////absolute/path``, ``redis://host:port/db`` or
    ``postgresql://...`` (PostGIS); empty: PostGIS in ``database`` (the department's database,
    which must be PostgreSQL). A PostgreSQL URL other than ``database``'s gets a connection pool
    of its own, with ``database``'s pool and timeout settings."""
    if url.startswith("sqlite:///"):
        return await SqliteCatalog.open(Path(url[len("sqlite:///"):]))
    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            return await RedisCatalog.open(url)
        except (RedisError, OSError, TimeoutError) as exc:
            raise ConfigError(f"store: cannot reach Redis: {exc}") from None
    if not url or url.startswith(("postgresql://", "postgres://")):
        if not url or (database is not None and database.url == url):
            if database is None or database.dialect != "postgresql":
                raise ConfigError("store is empty and database.url is not PostgreSQL: set "
                                  "store to sqlite:///PATH, or database.url to postgresql://...")
            return await PostgisCatalog.open(database)
        config = DatabaseConfig() if database is None else database.settings
        own = Database(config.model_copy(update={"url": SecretStr(url)}),
                       Path(".") if database is None else database.sqlite_dir)
        return await PostgisCatalog.open(own, owns_database=True)
    raise ConfigError("store must start with sqlite:///, redis:// or postgresql://")


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
    database = app.get(DATABASE)
    own_database = database is None and not settings.store
    if database is None and not settings.store:
        database = Database.from_settings(settings)
    try:
        store = await open_store(settings.store, database)
    except BaseException:
        if own_database and database is not None:
            await asyncio.to_thread(database.close)
        raise
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
        if own_database and database is not None:
            await asyncio.to_thread(database.close)
