"""The shared catalog engine: PostgreSQL with PostGIS, one store for every node.

``cameras.geog`` (geography Point, GiST) serves nearest-N (KNN ``<->`` ordering, index-assisted)
and circles (``ST_DWithin`` on the sphere: radius and the route's buffer); an expression GiST
index on ``geog::geometry`` serves longitude/latitude boxes (polygons); ``cameras.cone`` holds the
bounding boxes of the camera's view cone (one, or two across the antimeridian) as a geometry with
its own GiST index, so "which cameras can see this point" is one index lookup of the boxes that
hold the point, as in the SQLite store's R*Tree. Every query returns a small superset of the
answer; ``catalog.search`` applies the exact test, so the three engines answer identically.

Statements go through the data layer (``rtcc.db``, ``?`` placeholders) on two store threads, one
writer and one reader. Small writes insert their cameras as arrays (``unnest``) in one statement;
imports of 1,000 cameras or more stream them with ``COPY`` (``catalog.pg_copy``), inside the same
transaction.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import PoolTimeout

from catalog.errors import ImportConflict, StoreUnavailable
from catalog.geo import EARTH_RADIUS_M, Box, Circle, cone_boxes
from catalog.model import Camera, CameraStatus, camera_doc, camera_from_parts, status_from
from catalog.pg_copy import copy_rows
from catalog.query import Candidate, Filters
from catalog.store import EntityKind, ImportMode, StoreBase
from rtcc.db import Database, DatabaseUnavailable, Migration, SqlConnection, StoreSchema
from rtcc.db.connection import to_format_style
from rtcc.db.postgres import PostgresConnection
from rtcc.errors import ConfigError
from rtcc.offload import StoreThread

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENTS_CHANNEL = "rtcc_catalog_events"
"""The PostgreSQL ``NOTIFY`` channel of the catalog's change events (``catalog.events.PgBus``)."""


def _postgresql_only(_conn: SqlConnection) -> None:
    raise ConfigError(
        "the PostGIS catalog schema exists only on PostgreSQL; with SQLite the catalog keeps its "
        "own file (store: sqlite:///PATH, catalog/sqlite_store.py) and needs no migration here")


_SCHEMA_V1 = """
CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public;
CREATE TABLE IF NOT EXISTS cameras (
    id TEXT COLLATE "C" PRIMARY KEY,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    heading DOUBLE PRECISION NOT NULL,
    fov DOUBLE PRECISION NOT NULL,
    range_m DOUBLE PRECISION NOT NULL,
    sharing TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'unknown',
    last_frame_time DOUBLE PRECISION,
    doc TEXT NOT NULL,
    geog geography(Point, 4326) NOT NULL,
    cone geometry(MultiPolygon, 4326) NOT NULL
);
CREATE INDEX IF NOT EXISTS cameras_geog ON cameras USING gist (geog);
CREATE INDEX IF NOT EXISTS cameras_geom ON cameras USING gist ((geog::geometry));
CREATE INDEX IF NOT EXISTS cameras_cone ON cameras USING gist (cone);
CREATE TABLE IF NOT EXISTS entities (
    kind TEXT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, id)
)
"""

SCHEMA = StoreSchema(
    name="catalog",
    migrations=(Migration(1, "cameras with a geography point and view-cone boxes",
                          sqlite=_postgresql_only, postgresql=_SCHEMA_V1),),
    tables=("cameras", "entities"),
)
"""``CREATE EXTENSION postgis`` needs a role allowed to create it (a superuser, or the owner of
the database on PostgreSQL 13+ where PostGIS is trusted); ``rtcc db upgrade`` runs it once."""

_COLUMNS = (
    "c.id, c.lat, c.lon, c.heading, c.fov, c.range_m, c.sharing, c.kind, c.owner_id, c.status, "
    "c.doc, c.last_frame_time"
)
"""In ``Candidate`` order."""
_POINT = "ST_SetSRID(ST_MakePoint(?, ?), 4326)"
_GEOG_POINT = f"{_POINT}::geography"
_ROW_COLUMNS = ("id", "lat", "lon", "heading", "fov", "range_m", "sharing", "kind", "owner_id",
                "doc", "status", "last_frame_time", "geog", "cone")
_UPDATE_SET = """
ON CONFLICT (id) DO UPDATE SET
    lat = excluded.lat, lon = excluded.lon, heading = excluded.heading, fov = excluded.fov,
    range_m = excluded.range_m, sharing = excluded.sharing, kind = excluded.kind,
    owner_id = excluded.owner_id, doc = excluded.doc, geog = excluded.geog,
    cone = excluded.cone
"""
"""An upsert keeps the live status and last frame time."""
_INSERT = f"""
INSERT INTO cameras ({", ".join(_ROW_COLUMNS)})
SELECT {", ".join(_ROW_COLUMNS[:-2])}, geog::geography, cone::geometry
FROM unnest(?::text[], ?::float8[], ?::float8[], ?::float8[], ?::float8[], ?::float8[],
            ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::float8[], ?::text[],
            ?::text[]) AS u({", ".join(_ROW_COLUMNS)})
{_UPDATE_SET}"""  # noqa: S608 (constants and ? placeholders only)
_COPY_FROM = 1000
"""From this many cameras a write streams them with COPY (see ``catalog.pg_copy``)."""
_METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180.0
_SLACK = 1.01
"""Circles are widened by 1 % (and 1 cm): PostGIS and ``catalog.geo`` compute distances in
different floating-point steps, and a superset is what the exact test expects."""


def _cone_wkt(camera: Camera) -> str:
    boxes = cone_boxes(camera.lat, camera.lon, camera.heading, camera.fov, camera.range_m)
    rings = [
        f"(({b.min_lon!r} {b.min_lat!r},{b.max_lon!r} {b.min_lat!r},{b.max_lon!r} {b.max_lat!r},"
        f"{b.min_lon!r} {b.max_lat!r},{b.min_lon!r} {b.min_lat!r}))"
        for b in boxes
    ]
    return f"MULTIPOLYGON({','.join(rings)})"


def _rows(cameras: Sequence[Camera]) -> list[tuple[Any, ...]]:
    """One row per camera in ``_ROW_COLUMNS`` order; the point and the cone as EWKT text."""
    out: list[tuple[Any, ...]] = []
    for c in cameras:
        doc = camera_doc(c)
        lat, lon = float(c.lat), float(c.lon)
        out.append((c.id, lat, lon, float(c.heading), float(c.fov), float(c.range_m),
                    str(c.sharing), str(c.kind), c.owner_id, doc, str(c.status),
                    None if c.last_frame_time is None else float(c.last_frame_time),
                    f"SRID=4326;POINT({lon!r} {lat!r})", f"SRID=4326;{_cone_wkt(c)}"))
    return out


def _filter_sql(filters: Filters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in (("sharing", filters.sharing), ("status", filters.status),
                           ("kind", filters.kind), ("owner_id", filters.owner)):
        if values:
            clauses.append(f"c.{column} = ANY(?::text[])")
            params.append(sorted(str(v) for v in values))
    return "".join(f" AND {c}" for c in clauses), params


def _from_row(row: Sequence[Any]) -> Camera:
    (camera_id, lat, lon, heading, fov, range_m, sharing, kind, owner_id, status, doc,
     last_frame_time) = row
    return camera_from_parts(camera_id, lat, lon, heading, fov, range_m, sharing, kind, owner_id,
                             json.loads(doc), status_from(status), last_frame_time)


def _candidates(rows: Iterable[Sequence[Any]]) -> list[Candidate]:
    return [Candidate._make(row) for row in rows]


def _box_area(boxes: Sequence[Box]) -> float:
    """Square degrees of latitude, longitudes scaled to the box's middle latitude."""
    return sum((b.max_lat - b.min_lat) * (b.max_lon - b.min_lon)
               * math.cos(math.radians((b.min_lat + b.max_lat) / 2)) for b in boxes)


def _circle_area(circles: Sequence[Circle]) -> float:
    """Square degrees of latitude."""
    return sum(math.pi * (c.radius_m / _METRES_PER_DEGREE) ** 2 for c in circles)


def region_sql(boxes: Sequence[Box], circles: Sequence[Circle],
               filters: Filters) -> tuple[str, list[Any]]:
    """Cameras inside the union of the boxes or of the circles, whichever covers less (both
    are supersets of the region): circles through the geography index, boxes through the
    geometry one."""
    where, extra = _filter_sql(filters)
    params: list[Any] = []
    tests: list[str] = []
    if circles and (not boxes or _circle_area(circles) <= _box_area(boxes)):
        for c in circles:
            tests.append(f"ST_DWithin(c.geog, {_GEOG_POINT}, ?, false)")
            params += [c.lon, c.lat, c.radius_m * _SLACK + 0.01]
    else:
        for b in boxes:
            tests.append("c.geog::geometry && ST_MakeEnvelope(?, ?, ?, ?, 4326)")
            params += [b.min_lon, b.min_lat, b.max_lon, b.max_lat]
    if not tests:
        tests.append("false")
    sql = (f"SELECT {_COLUMNS} FROM cameras c WHERE ({' OR '.join(tests)}){where}")  # noqa: S608 (constants and ? placeholders only)
    return sql, params + extra


def nearest_sql(lat: float, lon: float, want: int, radius_m: float,
                filters: Filters) -> tuple[str, list[Any]]:
    """The ``want`` nearest by the index's KNN order, then every camera no farther than the
    last of them (with slack) and within the radius, so ties and rounding at the edge are
    decided by the exact ranking. The KNN part has no radius condition: with one, the planner
    prices the scan as the whole circle and compiles the query (JIT) for a lookup of 20 rows."""
    where, extra = _filter_sql(filters)
    point = [lon, lat]
    sql = (
        f"WITH k AS (SELECT c.geog <-> {_GEOG_POINT} AS d FROM cameras c "  # noqa: S608 (constants and ? placeholders only)
        f"WHERE true{where} ORDER BY c.geog <-> {_GEOG_POINT} LIMIT ?) "
        f"SELECT {_COLUMNS} FROM cameras c WHERE ST_DWithin(c.geog, {_GEOG_POINT}, "
        f"least((SELECT coalesce(max(d), 0) FROM k) * {_SLACK} + 0.01, ?::float8), false){where}"
    )
    params = [*point, *extra, *point, want, *point, radius_m * _SLACK + 0.01, *extra]
    return sql, params


def covering_sql(lat: float, lon: float, filters: Filters) -> tuple[str, list[Any]]:
    where, extra = _filter_sql(filters)
    sql = (f"SELECT {_COLUMNS} FROM cameras c "  # noqa: S608 (constants and ? placeholders only)
           f"WHERE ST_Intersects(c.cone, {_POINT}){where}")
    return sql, [lon, lat, *extra]


class PostgisCatalog(StoreBase):
    engine = "postgis"

    def __init__(self, database: Database, *, owns_database: bool = False) -> None:
        self.database = database
        self._owns_database = owns_database
        self._writer = StoreThread("catalog-postgis-writer")
        self._reader = StoreThread("catalog-postgis-reader")
        self._wconn: SqlConnection | None = None
        self._rconn: SqlConnection | None = None
        self._pinned: psycopg.Connection[Any] | None = None
        """The reader's own pooled connection, kept between searches (see ``_rows``)."""

    @classmethod
    async def open(cls, database: Database, *, owns_database: bool = False,
                   migrate: bool | None = None) -> PostgisCatalog:
        """Connects (and upgrades the schema when ``migrate``, by default the database's
        ``migrate_on_start``). ``owns_database``: ``aclose`` closes ``database`` too."""
        if database.dialect != "postgresql":
            raise ConfigError("the PostGIS catalog store needs a postgresql:// database URL, "
                              f"not {database.describe()}")
        store = cls(database, owns_database=owns_database)
        try:
            store._wconn = await store._writer.run(
                lambda: database.open_store(SCHEMA, migrate=migrate))
            store._rconn = await store._reader.run(database.connect, SCHEMA.name)
        except BaseException:
            await store.aclose()
            raise
        log.info("catalog: PostGIS store opened (%s)", database.describe())
        return store

    async def _write(self, work: Callable[[SqlConnection], T]) -> T:
        conn = self._wconn
        if conn is None:
            raise StoreUnavailable("the catalog store is closed")
        return await self._writer.run(work, conn)

    async def _read(self, work: Callable[[SqlConnection], T]) -> T:
        conn = self._rconn
        if conn is None:
            raise StoreUnavailable("the catalog store is closed")
        return await self._reader.run(work, conn)

    async def _compute(self, work: Callable[[], T]) -> T:
        return await self._read(lambda _conn: work())

    def _unpin(self) -> None:
        pinned, self._pinned = self._pinned, None
        if pinned is not None and isinstance(self._rconn, PostgresConnection):
            self._rconn.pool.putconn(pinned)  # the pool drops it if it is broken

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """A search's rows as plain tuples, on the reader thread, over a connection the reader
        keeps: taking one from the pool per search costs a round trip of its own (the pool's
        health check) and the pool's locking, a third of a nearest-20 search. A connection
        lost in between is given back and the search run once more on a fresh one."""
        rconn = self._rconn
        if rconn is None:
            raise StoreUnavailable("the catalog store is closed")
        if not isinstance(rconn, PostgresConnection):
            return [tuple(row) for row in rconn.fetchall(sql, params)]
        statement = to_format_style(sql)
        for attempt in (1, 2):
            try:
                if self._pinned is None:
                    timeout = self.database.settings.connect_timeout
                    self._pinned = rconn.pool.getconn(timeout=timeout)
                with self._pinned.cursor(row_factory=tuple_row) as cursor:
                    return cursor.execute(statement, tuple(params)).fetchall()
            except (psycopg.OperationalError, PoolTimeout) as exc:
                self._unpin()
                if attempt == 2:
                    raise DatabaseUnavailable(
                        f"the catalog's PostgreSQL at {self.database.describe()} did not answer "
                        f"a search ({exc}); the catalog answers again once it is back") from exc
        raise AssertionError("unreachable")

    async def _search_rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._rconn is None:
            raise StoreUnavailable("the catalog store is closed")
        return await self._reader.run(self._rows, sql, params)

    async def aclose(self) -> None:
        wconn, rconn = self._wconn, self._rconn

        def close_reader() -> None:
            self._unpin()
            if rconn is not None:
                rconn.close()

        self._wconn = None
        await self._writer.aclose(wconn.close if wconn is not None else None)
        await self._reader.aclose(close_reader)
        self._rconn = None
        if self._owns_database:
            self._owns_database = False
            closer = StoreThread("catalog-postgis-close")
            await closer.aclose(self.database.close)

    # -- writes ---------------------------------------------------------------------------------

    @staticmethod
    def _write_many(conn: SqlConnection, cameras: Sequence[Camera], mode: ImportMode) -> int:
        """One transaction (the store's advisory lock serializes writers on every node); a
        create that meets a registered id writes nothing. Large writes are streamed with COPY
        (into a scratch table first when they may replace cameras)."""
        with conn.transaction() as tx:
            found = tx.fetchall("SELECT id FROM cameras WHERE id = ANY(?::text[])",
                                ([c.id for c in cameras],))
            existing = sorted(row[0] for row in found)
            if mode == "create" and existing:
                raise ImportConflict(existing)
            rows = _rows(cameras)
            if len(rows) < _COPY_FROM:
                tx.execute(_INSERT, [list(column) for column in zip(*rows, strict=True)])
            elif not existing:
                copy_rows(tx, "cameras", _ROW_COLUMNS, rows)
            else:
                tx.execute("CREATE TEMPORARY TABLE camera_import "
                           "(LIKE cameras INCLUDING DEFAULTS) ON COMMIT DROP")
                copy_rows(tx, "camera_import", _ROW_COLUMNS, rows)
                tx.execute(f"INSERT INTO cameras ({', '.join(_ROW_COLUMNS)}) "  # noqa: S608 (constants only)
                           f"SELECT {', '.join(_ROW_COLUMNS)} FROM camera_import {_UPDATE_SET}")
            return len(existing)

    async def _write_cameras(self, cameras: Sequence[Camera], mode: ImportMode) -> int:
        return await self._write(lambda conn: self._write_many(conn, cameras, mode))

    async def delete(self, camera_id: str) -> bool:
        cursor = await self._write(
            lambda conn: conn.execute("DELETE FROM cameras WHERE id = ?", (camera_id,)))
        return cursor.rowcount > 0

    async def set_status(
        self, camera_id: str, status: CameraStatus, last_frame_time: float | None
    ) -> bool:
        cursor = await self._write(lambda conn: conn.execute(
            "UPDATE cameras SET status = ?, "
            "last_frame_time = coalesce(?::float8, last_frame_time) WHERE id = ?",
            (str(status), last_frame_time, camera_id)))
        return cursor.rowcount > 0

    # -- reads ----------------------------------------------------------------------------------

    async def get(self, camera_id: str) -> Camera | None:
        rows = await self._search_rows(
            f"SELECT {_COLUMNS} FROM cameras c WHERE c.id = ?", (camera_id,))  # noqa: S608 (constants and ? placeholders only)
        return _from_row(rows[0]) if rows else None

    async def _load(self, ids: Sequence[str]) -> dict[str, Camera]:
        if not ids:
            return {}
        rows = await self._search_rows(
            f"SELECT {_COLUMNS} FROM cameras c WHERE c.id = ANY(?::text[])",  # noqa: S608 (constants and ? placeholders only)
            (list(ids),))
        return {row[0]: _from_row(row) for row in rows}

    async def count(self) -> int:
        return int(await self._read(lambda conn: conn.scalar("SELECT count(*) FROM cameras")))

    async def list_cameras(
        self, filters: Filters = Filters(), *, after: str = "", limit: int = 100  # noqa: B008
    ) -> list[Camera]:
        where, params = _filter_sql(filters)
        rows = await self._read(lambda conn: conn.fetchall(
            f"SELECT {_COLUMNS} FROM cameras c WHERE c.id > ?{where} "  # noqa: S608 (constants and ? placeholders only)
            "ORDER BY c.id LIMIT ?", (after, *params, limit)))
        return [_from_row(row) for row in rows]

    async def _candidates(
        self, boxes: list[Box], circles: list[Circle], filters: Filters
    ) -> list[Candidate]:
        sql, params = region_sql(boxes, circles, filters)
        return _candidates(await self._search_rows(sql, params))

    async def _nearest_candidates(
        self, lat: float, lon: float, want: int, radius_m: float, filters: Filters
    ) -> list[Candidate]:
        sql, params = nearest_sql(lat, lon, want, radius_m, filters)
        return _candidates(await self._search_rows(sql, params))

    async def _covering(self, lat: float, lon: float, filters: Filters) -> list[Candidate]:
        sql, params = covering_sql(lat, lon, filters)
        return _candidates(await self._search_rows(sql, params))

    # -- documents (owners, sites, agents) -------------------------------------------------------

    async def _put_doc(self, kind: EntityKind, doc_id: str, doc: Mapping[str, Any]) -> None:
        text = json.dumps(doc, separators=(",", ":"))
        await self._write(lambda conn: conn.execute(
            "INSERT INTO entities (kind, id, doc) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc", (kind, doc_id, text)))

    async def _get_doc(self, kind: EntityKind, doc_id: str) -> dict[str, Any] | None:
        row = await self._read(lambda conn: conn.fetchone(
            "SELECT doc FROM entities WHERE kind = ? AND id = ?", (kind, doc_id)))
        return json.loads(row[0]) if row is not None else None

    async def _list_docs(self, kind: EntityKind) -> list[dict[str, Any]]:
        rows = await self._read(lambda conn: conn.fetchall(
            "SELECT doc FROM entities WHERE kind = ? ORDER BY id", (kind,)))
        return [json.loads(row[0]) for row in rows]

    async def _delete_doc(self, kind: EntityKind, doc_id: str) -> bool:
        cursor = await self._write(lambda conn: conn.execute(
            "DELETE FROM entities WHERE kind = ? AND id = ?", (kind, doc_id)))
        return cursor.rowcount > 0
