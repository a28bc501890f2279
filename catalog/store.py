"""The catalog store interface, and what the engines share on top of their primitives.

The engines (``SqliteCatalog``, ``RedisCatalog``, ``PostgisCatalog``) pass one contract test
suite. Writes are atomic: ``import_cameras`` writes every camera or none. Every store is also the
server's ``CameraDirectory`` (``consent_of``), which the security core asks before a live view.
"""

from __future__ import annotations

import sqlite3
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

import psycopg
from redis.exceptions import RedisError

from catalog.errors import (
    CameraExists,
    ImportConflict,
    ImportRejected,
    RowError,
    StoreUnavailable,
)
from catalog.geo import MAX_RADIUS_M
from catalog.model import (
    Agent,
    Camera,
    CameraStatus,
    Owner,
    Site,
    agent_from_record,
    agent_record,
    owner_from_record,
    owner_record,
    site_from_record,
    site_record,
)
from catalog.query import Filters, Page, SearchResult
from catalog.search import SpatialSearch
from catalog.shapes import GeoPolygon, GeoRoute
from rtcc.access import CameraConsent

STORE_ERRORS = (StoreUnavailable, RedisError, sqlite3.Error, psycopg.Error, OSError, TimeoutError)
"""What a store operation may fail with while its engine is unreachable or overloaded."""

EntityKind = Literal["owner", "site", "agent"]
ImportMode = Literal["create", "upsert"]
T = TypeVar("T")


class CatalogStore(Protocol):
    engine: str
    """``sqlite``, ``redis`` or ``postgis``."""

    # cameras
    async def get(self, camera_id: str) -> Camera | None: ...
    async def get_many(self, camera_ids: Sequence[str]) -> dict[str, Camera]:
        """The registered ones among ``camera_ids``."""
        ...
    async def create(self, camera: Camera) -> None:
        """Raises CameraExists."""
        ...
    async def put(self, camera: Camera) -> bool:
        """Insert or replace (keeping the live status); True when it replaced one."""
        ...
    async def delete(self, camera_id: str) -> bool: ...
    async def import_cameras(self, cameras: Sequence[Camera], mode: ImportMode = "create") -> int:
        """All or nothing. ``create`` raises ImportConflict if any id is registered."""
        ...
    async def count(self) -> int: ...
    async def list_cameras(
        self, filters: Filters = ..., *, after: str = "", limit: int = 100
    ) -> list[Camera]:
        """Cameras by id, starting after ``after`` (cursor paging)."""
        ...
    def iter_cameras(self, batch: int = 1000) -> AsyncIterator[Camera]: ...
    async def set_status(
        self, camera_id: str, status: CameraStatus, last_frame_time: float | None
    ) -> bool:
        """False when no such camera is registered."""
        ...
    async def consent_of(self, camera_id: str) -> CameraConsent | None: ...

    # queries
    async def nearest(
        self, lat: float, lon: float, *, limit: int = 20, radius_m: float = MAX_RADIUS_M,
        filters: Filters = ..., offset: int = 0,
    ) -> SearchResult: ...
    async def within_radius(
        self, lat: float, lon: float, radius_m: float, *, filters: Filters = ...,
        page: Page = ...,
    ) -> SearchResult: ...
    async def can_see(
        self, lat: float, lon: float, *, near_m: float = 0.0, filters: Filters = ...,
        page: Page = ...,
    ) -> SearchResult: ...
    async def within_polygon(
        self, polygon: GeoPolygon, *, filters: Filters = ..., page: Page = ...
    ) -> SearchResult: ...
    async def along_route(
        self, route: GeoRoute, *, filters: Filters = ..., page: Page = ...
    ) -> SearchResult: ...

    # owners, sites, agents
    async def put_owner(self, owner: Owner) -> None: ...
    async def get_owner(self, owner_id: str) -> Owner | None: ...
    async def list_owners(self) -> list[Owner]: ...
    async def delete_owner(self, owner_id: str) -> bool: ...
    async def put_site(self, site: Site) -> None: ...
    async def get_site(self, site_id: str) -> Site | None: ...
    async def list_sites(self) -> list[Site]: ...
    async def delete_site(self, site_id: str) -> bool: ...
    async def put_agent(self, agent: Agent) -> None: ...
    async def get_agent(self, agent_id: str) -> Agent | None: ...
    async def list_agents(self) -> list[Agent]: ...
    async def delete_agent(self, agent_id: str) -> bool: ...

    async def aclose(self) -> None: ...


class StoreBase(SpatialSearch):
    """Camera writes, paging, owners, sites, agents and consent, over an engine's primitives
    (one camera write, camera pages and four document primitives)."""

    engine = ""

    @abstractmethod
    async def get(self, camera_id: str) -> Camera | None: ...

    @abstractmethod
    async def list_cameras(
        self, filters: Filters = Filters(), *, after: str = "", limit: int = 100  # noqa: B008
    ) -> list[Camera]: ...

    @abstractmethod
    async def _write_cameras(self, cameras: Sequence[Camera], mode: ImportMode) -> int:
        """Write all cameras in one transaction; how many were registered before. A create
        that meets a registered id writes nothing and raises ``ImportConflict``."""

    async def import_cameras(self, cameras: Sequence[Camera], mode: ImportMode = "create") -> int:
        seen: dict[str, int] = {}
        errors: list[RowError] = []
        for row, camera in enumerate(cameras, start=1):
            if camera.id in seen:
                errors.append(RowError(row, "id", f"duplicate of row {seen[camera.id]}"))
            seen.setdefault(camera.id, row)
        if errors:
            raise ImportRejected(errors)
        await self._write_cameras(list(cameras), mode)
        return len(cameras)

    async def create(self, camera: Camera) -> None:
        try:
            await self._write_cameras([camera], "create")
        except ImportConflict:
            raise CameraExists(camera.id) from None

    async def put(self, camera: Camera) -> bool:
        return await self._write_cameras([camera], "upsert") > 0

    async def iter_cameras(self, batch: int = 1000) -> AsyncIterator[Camera]:
        after = ""
        while True:
            cameras = await self.list_cameras(after=after, limit=batch)
            for camera in cameras:
                yield camera
            if len(cameras) < batch:
                return
            after = cameras[-1].id

    @abstractmethod
    async def _put_doc(self, kind: EntityKind, doc_id: str, doc: Mapping[str, Any]) -> None: ...

    @abstractmethod
    async def _get_doc(self, kind: EntityKind, doc_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def _list_docs(self, kind: EntityKind) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def _delete_doc(self, kind: EntityKind, doc_id: str) -> bool: ...

    async def get_many(self, camera_ids: Sequence[str]) -> dict[str, Camera]:
        return await self._load(list(dict.fromkeys(camera_ids)))

    async def consent_of(self, camera_id: str) -> CameraConsent | None:
        camera = await self.get(camera_id)
        return camera.consent() if camera is not None else None

    async def _typed_get(
        self, kind: EntityKind, doc_id: str, build: Callable[[Mapping[str, Any]], T]
    ) -> T | None:
        doc = await self._get_doc(kind, doc_id)
        return build(doc) if doc is not None else None

    async def put_owner(self, owner: Owner) -> None:
        await self._put_doc("owner", owner.id, owner_record(owner))

    async def get_owner(self, owner_id: str) -> Owner | None:
        return await self._typed_get("owner", owner_id, owner_from_record)

    async def list_owners(self) -> list[Owner]:
        return [owner_from_record(d) for d in await self._list_docs("owner")]

    async def delete_owner(self, owner_id: str) -> bool:
        return await self._delete_doc("owner", owner_id)

    async def put_site(self, site: Site) -> None:
        await self._put_doc("site", site.id, site_record(site))

    async def get_site(self, site_id: str) -> Site | None:
        return await self._typed_get("site", site_id, site_from_record)

    async def list_sites(self) -> list[Site]:
        return [site_from_record(d) for d in await self._list_docs("site")]

    async def delete_site(self, site_id: str) -> bool:
        return await self._delete_doc("site", site_id)

    async def put_agent(self, agent: Agent) -> None:
        await self._put_doc("agent", agent.id, agent_record(agent))

    async def get_agent(self, agent_id: str) -> Agent | None:
        return await self._typed_get("agent", agent_id, agent_from_record)

    async def list_agents(self) -> list[Agent]:
        return [agent_from_record(d) for d in await self._list_docs("agent")]

    async def delete_agent(self, agent_id: str) -> bool:
        return await self._delete_doc("agent", agent_id)
