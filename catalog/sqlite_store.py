"""The embedded catalog engine: one SQLite file in WAL mode with an R*Tree index.

``camera_cones`` holds the bounding box of each camera's view cone, which always contains the
camera itself. "Which cameras can see this point" is one lookup of the boxes that hold the point;
region queries (near, radius, polygon, route) look up the boxes that overlap the region's boxes,
a small superset of the cameras inside, which the exact test then trims. ``cid = rid * 2 + part``:
a cone that crosses the antimeridian has two boxes. All SQLite calls run on two store threads
(``rtcc.offload``), one writer and one reader, each with its own connection, so the event loop
never blocks and a long import does not hold up searches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from catalog.errors import (
    ImportConflict,
    StoreUnavailable,
)
from catalog.geo import EARTH_RADIUS_M, Box, Circle, circle_boxes, cone_boxes, haversine_m
from catalog.model import Camera, CameraStatus, camera_doc, camera_from_parts, status_from
from catalog.query import Candidate, Filters, Page, SearchResult
from catalog.search import FIRST_RADIUS_M, decoded_point_hits
from catalog.store import EntityKind, ImportMode, StoreBase
from rtcc.offload import StoreThread
from rtcc.sqlite import connect, immediate_transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cameras (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    heading REAL NOT NULL,
    fov REAL NOT NULL,
    range_m REAL NOT NULL,
    sharing TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'unknown',
    last_frame_time REAL,
    doc TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS camera_cones
    USING rtree(cid, min_lat, max_lat, min_lon, max_lon);
CREATE TABLE IF NOT EXISTS entities (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
"""
_CANDIDATE_COLUMNS = (
    "c.id, c.lat, c.lon, c.heading, c.fov, c.range_m, c.sharing, c.kind, c.owner_id, c.status, "
    "c.doc, c.last_frame_time"
)
_CAMERA_COLUMNS = "id, lat, lon, heading, fov, range_m, sharing, kind, owner_id, doc"
_INSERT = (
    f"INSERT INTO cameras (rid, {_CAMERA_COLUMNS}, status, last_frame_time) "  # noqa: S608 (constants and ? placeholders only)
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE = (
    "UPDATE cameras SET id = ?, lat = ?, lon = ?, heading = ?, fov = ?, range_m = ?, "
    "sharing = ?, kind = ?, owner_id = ?, doc = ? WHERE rid = ?"
)
_SHRINK_FROM = 4
"""A nearest-N circle holding more than this many times N cameras is shrunk before reading."""
_CHUNK = 500
_MMAP_BYTES = 1 << 30
"""Address space each connection maps the file into (a million cameras take about 270 MB)."""
_READERS = 2
"""Reader threads, each with its connection (the machines this runs on have two cores or more)."""
_PIPELINE_FROM = 4000
"""From this many cameras a write is encoded on a worker thread while it is inserted."""
_PIPELINE_CHUNK = 5000
"""Ids per ``IN (...)`` list (well under SQLite's bound-parameter limit)."""


def _row_values(camera: Camera) -> tuple[Any, ...]:
    doc = camera_doc(camera)
    return (camera.id, camera.lat, camera.lon, camera.heading, camera.fov, camera.range_m,
            str(camera.sharing), str(camera.kind), camera.owner_id, doc)


def _cone_rows(rid: int, camera: Camera) -> list[tuple[int, float, float, float, float]]:
    boxes = cone_boxes(camera.lat, camera.lon, camera.heading, camera.fov, camera.range_m)
    return [(rid * 2 + i, b.min_lat, b.max_lat, b.min_lon, b.max_lon)
            for i, b in enumerate(boxes)]


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Rows of consecutive cameras of one write, numbered from 1 for the whole write (the
    writer adds the highest rid in use)."""

    rows: list[tuple[Any, ...]]
    cones: list[tuple[int, float, float, float, float]]


def _encode_into(cameras: Sequence[Camera], out: queue.SimpleQueue[_Chunk | BaseException | None],
                 stop: threading.Event) -> None:
    """Encode ``cameras`` chunk by chunk into ``out``, then None (or the error); ``stop``: the
    writer no longer reads them."""
    try:
        for start in range(0, len(cameras), _PIPELINE_CHUNK):
            if stop.is_set():
                return
            part = cameras[start:start + _PIPELINE_CHUNK]
            numbered = list(enumerate(part, start=start + 1))
            cones = [row for rid, c in numbered for row in _cone_rows(rid, c)]
            cones.sort(key=_morton)
            out.put(_Chunk([(rid, *_row_values(c), str(c.status), c.last_frame_time)
                            for rid, c in numbered], cones))
    except Exception as exc:  # noqa: BLE001 (handed to the writer, which rolls back and raises it)
        out.put(exc)
    else:
        out.put(None)


def _spread(value: int) -> int:
    value &= 0xFFFF
    value = (value | (value << 8)) & 0x00FF00FF
    value = (value | (value << 4)) & 0x0F0F0F0F
    value = (value | (value << 2)) & 0x33333333
    return (value | (value << 1)) & 0x55555555


def _morton(row: tuple[int, float, float, float, float]) -> int:
    """Z-order position of a box's corner on a 65536 x 65536 grid of the globe."""
    return _spread(int((row[1] + 90.0) * 364.0)) | (_spread(int((row[3] + 180.0) * 182.0)) << 1)


def _filter_sql(filters: Filters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in (("sharing", filters.sharing), ("status", filters.status),
                           ("kind", filters.kind), ("owner_id", filters.owner)):
        if values:
            clauses.append(f"c.{column} IN ({','.join('?' * len(values))})")
            params += sorted(str(v) for v in values)
    return "".join(f" AND {c}" for c in clauses), params


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


_READ_COLUMNS = (
    "c.id, c.lat, c.lon, c.heading, c.fov, c.range_m, c.sharing, c.kind, c.owner_id, c.doc, "
    "c.status, c.last_frame_time"
)


_DISTANCE = (
    "(? * asin(min(1.0, sqrt(pow(sin((radians(c.lat) - ?) / 2.0), 2) "
    "+ ? * cos(radians(c.lat)) * pow(sin(radians(c.lon - ?) / 2.0), 2)))))"
)
"""``catalog.geo.haversine_m`` in SQL, operation for operation (SQLite's math functions call
the same C library as Python's ``math``, so the distances are the same numbers): parameters
2 R, the query point's latitude in radians and its cosine, its longitude."""


def _distance_params(lat: float, lon: float) -> tuple[float, float, float, float]:
    p1 = math.radians(lat)
    return 2.0 * EARTH_RADIUS_M, p1, math.cos(p1), float(lon)


def _radius_sql(boxes: int, filters: Filters) -> tuple[str, list[Any]]:
    """Cameras in the index boxes, within a distance, nearest first (ties by id), one page,
    each row ending with its distance and the count of every row within the distance."""
    where, params = _filter_sql(filters)
    box = ("SELECT cid >> 1 FROM camera_cones "
           "WHERE max_lat >= ? AND min_lat <= ? AND max_lon >= ? AND min_lon <= ?")
    # The cone boxes reach up to a camera's range past it: the cameras themselves outside the
    # circle's boxes are dropped with four comparisons before the distance is computed.
    inside = " OR ".join(["(c.lat BETWEEN ? AND ? AND c.lon BETWEEN ? AND ?)"] * boxes)
    return (
        f"SELECT *, count(*) OVER () FROM (SELECT {_CANDIDATE_COLUMNS}, {_DISTANCE} AS d "  # noqa: S608 (constants and ? placeholders only)
        f"FROM cameras c WHERE c.rid IN ({' UNION '.join([box] * boxes)}) "
        f"AND ({inside}){where}) "
        "WHERE d <= ? ORDER BY d, id LIMIT ? OFFSET ?", params)


def _ranked_query(lat: float, lon: float, boxes: list[Box], radius_m: float, filters: Filters,
                  page: Page) -> tuple[str, list[Any]]:
    """``_radius_sql`` and its parameters for the cameras in ``boxes`` within ``radius_m``."""
    sql, filter_params = _radius_sql(len(boxes), filters)
    params: list[Any] = [*_distance_params(lat, lon)]
    for _ in range(2):  # the index's boxes, then the cameras' positions
        for b in boxes:
            params += (b.min_lat, b.max_lat, b.min_lon, b.max_lon)
    return sql, [*params, *filter_params, radius_m, page.limit, page.offset]


def _has_math(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite has its math functions (built with them since 3.35, not always)."""
    try:
        conn.execute("SELECT asin(0.5), sqrt(2.0), pow(2.0, 2), sin(1.0), cos(1.0), "
                     "radians(1.0)").fetchone()
    except sqlite3.OperationalError:
        return False
    return True


def _from_row(row: Sequence[Any]) -> Camera:
    (camera_id, lat, lon, heading, fov, range_m, sharing, kind, owner_id, doc, status,
     last_frame_time) = row
    return camera_from_parts(camera_id, lat, lon, heading, fov, range_m, sharing, kind, owner_id,
                             json.loads(doc), status_from(status), last_frame_time)


class SqliteCatalog(StoreBase):
    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = StoreThread("catalog-sqlite-writer")
        self._readers = [StoreThread(f"catalog-sqlite-reader-{n}") for n in range(_READERS)]
        self._busy = [0] * _READERS
        """Calls queued or running on each reader."""
        self._wconn: sqlite3.Connection | None = None
        self._rconns: list[sqlite3.Connection] = []
        self.ranks_in_sql = False
        """Whether SQLite ranks radius queries itself (``_DISTANCE``)."""

    @classmethod
    async def open(cls, path: Path) -> SqliteCatalog:
        store = cls(path)
        try:
            await store._open()
        except BaseException:
            await store.aclose()
            raise
        return store

    def _connect(self, setup: Callable[[sqlite3.Connection], object] | None = None
                 ) -> sqlite3.Connection:
        # cache_size: 64 MiB, for the R*Tree of a large registry; mmap_size: a query reads its
        # rows from the file's pages in place rather than copying each into the cache (a
        # 500 m query at a million cameras takes a third less time)
        return connect(self.path, "synchronous = NORMAL", "cache_size = -65536",
                       f"mmap_size = {_MMAP_BYTES}", setup=setup, named_rows=False)

    async def _open(self) -> None:
        def create_schema(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                         (SCHEMA_VERSION,))

        self._wconn = await self._writer.run(self._connect, create_schema)
        for reader in self._readers:
            self._rconns.append(await reader.run(self._connect))
        self.ranks_in_sql = await self._readers[0].run(_has_math, self._rconns[0])
        log.info("catalog: SQLite store %s opened", self.path)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._wconn
        if conn is None:
            raise StoreUnavailable("the catalog store is closed")
        return await self._writer.run(work, conn)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """On the least busy reader: WAL lets readers run side by side, and SQLite's search
        work runs outside the interpreter lock, so one slow query does not queue the rest."""
        if len(self._rconns) < _READERS:
            raise StoreUnavailable("the catalog store is closed")
        n = self._busy.index(min(self._busy))
        self._busy[n] += 1
        try:
            return await self._readers[n].run(work, self._rconns[n])
        finally:
            self._busy[n] -= 1

    async def _compute(self, work: Callable[[], T]) -> T:
        return await self._read(lambda _conn: work())

    async def aclose(self) -> None:
        wconn, rconns = self._wconn, self._rconns
        self._wconn, self._rconns = None, []
        await self._writer.aclose(wconn.close if wconn is not None else None)
        for n, reader in enumerate(self._readers):
            await reader.aclose(rconns[n].close if n < len(rconns) else None)

    # -- writes ---------------------------------------------------------------------------------

    @staticmethod
    def _transaction(conn: sqlite3.Connection, work: Callable[[], T]) -> T:
        with immediate_transaction(conn):
            return work()

    @staticmethod
    def _index(conn: sqlite3.Connection, items: Sequence[tuple[int, Camera]], fresh: bool) -> None:
        if not fresh:
            conn.executemany("DELETE FROM camera_cones WHERE cid = ?",
                             [(rid * 2 + i,) for rid, _ in items for i in (0, 1)])
        rows = [row for rid, c in items for row in _cone_rows(rid, c)]
        if len(rows) > 64:  # R*Tree inserts are much cheaper in space-filling-curve order
            rows.sort(key=_morton)
        conn.executemany("INSERT INTO camera_cones VALUES (?, ?, ?, ?, ?)", rows)

    @staticmethod
    def _existing(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, int]:
        existing: dict[str, int] = {}
        for chunk in _chunks(ids):
            rows = conn.execute(
                f"SELECT id, rid FROM cameras WHERE id IN ({','.join('?' * len(chunk))})", chunk  # noqa: S608 (constants and ? placeholders only)
            ).fetchall()
            existing.update(rows)
        return existing

    def _write_many(
        self, conn: sqlite3.Connection, cameras: Sequence[Camera], mode: ImportMode
    ) -> tuple[int, int]:
        """One transaction; a create that meets a registered id is rolled back and reported."""
        try:
            return self._transaction(conn, lambda: self._upsert_many(conn, cameras, mode))
        except sqlite3.IntegrityError:
            if mode != "create":
                raise
            existing = self._existing(conn, [c.id for c in cameras])
            if not existing:
                raise
            raise ImportConflict(sorted(existing)) from None

    def _upsert_many(
        self, conn: sqlite3.Connection, cameras: Sequence[Camera], mode: ImportMode
    ) -> tuple[int, int]:
        """(inserted, replaced) inside the caller's transaction. A create inserts blindly: the
        unique id constraint refuses a registered id (IntegrityError, the caller rolls back)."""
        existing = {} if mode == "create" else self._existing(conn, [c.id for c in cameras])
        (top,) = conn.execute("SELECT coalesce(max(rid), 0) FROM cameras").fetchone()
        new: list[tuple[int, Camera]] = []
        old: list[tuple[int, Camera]] = []
        for camera in cameras:
            rid = existing.get(camera.id)
            if rid is None:
                top += 1
                new.append((top, camera))
            else:
                old.append((rid, camera))
        conn.executemany(_INSERT, [(rid, *_row_values(c), str(c.status), c.last_frame_time)
                                   for rid, c in new])
        conn.executemany(_UPDATE, [(*_row_values(c), rid) for rid, c in old])
        self._index(conn, new, fresh=True)
        self._index(conn, old, fresh=False)
        return len(new), len(old)

    async def _write_cameras(self, cameras: Sequence[Camera], mode: ImportMode) -> int:
        if len(cameras) >= _PIPELINE_FROM:
            chunks: queue.SimpleQueue[_Chunk | BaseException | None] = queue.SimpleQueue()
            stop = threading.Event()
            encoding = asyncio.create_task(
                asyncio.to_thread(_encode_into, cameras, chunks, stop),
                name="catalog:sqlite:encode")
            try:
                written = await self._write(
                    lambda conn: self._write_fresh(conn, cameras, mode, chunks))
            finally:
                stop.set()
                await encoding
            if written:
                return 0
        _, replaced = await self._write(lambda conn: self._write_many(conn, cameras, mode))
        return replaced

    def _write_fresh(self, conn: sqlite3.Connection, cameras: Sequence[Camera], mode: ImportMode,
                     chunks: queue.SimpleQueue[_Chunk | BaseException | None]) -> bool:
        """A large write of cameras none of which is registered, in one transaction, inserting
        each chunk while a worker thread encodes the next (SQLite's inserts run outside the
        interpreter lock, so encoding and R*Tree inserts share two cores). The rows are the
        ones ``_upsert_many`` writes, rid for rid. False, having written nothing, when an
        upsert meets registered ids: the caller then takes the general path."""
        try:
            with immediate_transaction(conn):
                if mode == "upsert" and self._existing(conn, [c.id for c in cameras]):
                    return False
                (top,) = conn.execute("SELECT coalesce(max(rid), 0) FROM cameras").fetchone()
                top = int(top)  # an integer from SQLite, formatted into the statements below
                insert = _INSERT.replace("VALUES (?,", f"VALUES (? + {top},", 1)
                index = f"INSERT INTO camera_cones VALUES (? + {top * 2}, ?, ?, ?, ?)"  # noqa: S608 (an integer and ? placeholders only)
                while (chunk := chunks.get()) is not None:
                    if isinstance(chunk, BaseException):
                        raise chunk
                    conn.executemany(insert, chunk.rows)
                    conn.executemany(index, chunk.cones)
                return True
        except sqlite3.IntegrityError:
            if mode != "create":
                raise
            existing = self._existing(conn, [c.id for c in cameras])
            if not existing:
                raise
            raise ImportConflict(sorted(existing)) from None

    async def delete(self, camera_id: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT rid FROM cameras WHERE id = ?", (camera_id,)).fetchone()
            if row is None:
                return False
            rid = row[0]
            conn.execute("DELETE FROM camera_cones WHERE cid IN (?, ?)", (rid * 2, rid * 2 + 1))
            conn.execute("DELETE FROM cameras WHERE rid = ?", (rid,))
            return True

        return await self._write(lambda conn: self._transaction(conn, lambda: work(conn)))

    async def set_status(
        self, camera_id: str, status: CameraStatus, last_frame_time: float | None
    ) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE cameras SET status = ?, last_frame_time = coalesce(?, last_frame_time) "
                "WHERE id = ?", (str(status), last_frame_time, camera_id))
            return cursor.rowcount > 0

        return await self._write(work)

    # -- reads ----------------------------------------------------------------------------------

    async def get(self, camera_id: str) -> Camera | None:
        def work(conn: sqlite3.Connection) -> Camera | None:
            row = conn.execute(f"SELECT {_READ_COLUMNS} FROM cameras c WHERE c.id = ?",  # noqa: S608 (constants and ? placeholders only)
                               (camera_id,)).fetchone()
            return _from_row(row) if row is not None else None

        return await self._read(work)

    async def _load(self, ids: Sequence[str]) -> dict[str, Camera]:
        if not ids:
            return {}

        def work(conn: sqlite3.Connection) -> dict[str, Camera]:
            out: dict[str, Camera] = {}
            for chunk in _chunks(list(ids)):
                rows = conn.execute(
                    f"SELECT {_READ_COLUMNS} FROM cameras c "  # noqa: S608 (constants and ? placeholders only)
                    f"WHERE c.id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
                for row in rows:
                    out[row[0]] = _from_row(row)
            return out

        return await self._read(work)

    async def count(self) -> int:
        def work(conn: sqlite3.Connection) -> int:
            (total,) = conn.execute("SELECT count(*) FROM cameras").fetchone()
            return int(total)

        return await self._read(work)

    async def list_cameras(
        self, filters: Filters = Filters(), *, after: str = "", limit: int = 100  # noqa: B008
    ) -> list[Camera]:
        where, params = _filter_sql(filters)

        def work(conn: sqlite3.Connection) -> list[Camera]:
            rows = conn.execute(
                f"SELECT {_READ_COLUMNS} FROM cameras c WHERE c.id > ?{where} "  # noqa: S608 (constants and ? placeholders only)
                "ORDER BY c.id LIMIT ?", (after, *params, limit)).fetchall()
            return [_from_row(row) for row in rows]

        return await self._read(work)

    @staticmethod
    def _region_sql(filters: Filters, select: str) -> tuple[str, list[Any]]:
        where, params = _filter_sql(filters)
        join = " JOIN cameras c ON c.rid = (k.cid >> 1)" if where or select != "count(*)" else ""
        return (
            f"SELECT {select} FROM camera_cones k{join} "  # noqa: S608 (constants and ? placeholders only)
            "WHERE k.max_lat >= ? AND k.min_lat <= ? AND k.max_lon >= ? AND k.min_lon <= ?"
            + where, params)

    @staticmethod
    def _fetch(conn: sqlite3.Connection, sql: str, params: list[Any],
               boxes: Iterable[Box]) -> list[Candidate]:
        out: list[Candidate] = []
        for b in boxes:
            out += map(Candidate._make, conn.execute(
                sql, (b.min_lat, b.max_lat, b.min_lon, b.max_lon, *params)))
        return out

    async def _radius_page(
        self, lat: float, lon: float, radius_m: float, filters: Filters, page: Page
    ) -> SearchResult:
        """Ranked, counted and paged by SQLite, so only the page becomes Python objects; the
        answer is built on the reader thread."""
        if not self.ranks_in_sql:
            return await super()._radius_page(lat, lon, radius_m, filters, page)
        sql, params = _ranked_query(lat, lon, circle_boxes(lat, lon, radius_m), radius_m,
                                    filters, page)

        def work(conn: sqlite3.Connection) -> SearchResult:
            rows = conn.execute(sql, params).fetchall()
            if rows:
                total = rows[0][-1]
            elif page.offset:  # past the last page: count them
                total = len(conn.execute(sql, [*params[:-2], -1, 0]).fetchall())
            else:
                total = 0
            ranked = [(row[12], row[0], Candidate._make(row[:12])) for row in rows]
            return SearchResult(decoded_point_hits(lat, lon, ranked), total)

        return await self._read(work)

    async def _candidates(
        self, boxes: list[Box], circles: list[Circle], filters: Filters
    ) -> list[Candidate]:
        sql, params = self._region_sql(filters, _CANDIDATE_COLUMNS)
        return await self._read(lambda conn: self._fetch(conn, sql, params, boxes))

    def _sized_circle(
        self, conn: sqlite3.Connection, lat: float, lon: float, want: int, radius_m: float,
        filters: Filters, take: Callable[[list[Box], float], tuple[T, int]],
    ) -> T:
        """Widens a circle until ``take`` (what it reads in the circle's boxes, and how many
        matching cameras lie within the radius) finds ``want`` of them, sizing the circle
        with index-only counts first."""
        count_sql, params = self._region_sql(filters, "count(*)")

        def count_in(boxes: list[Box]) -> int:
            return sum(conn.execute(count_sql, (b.min_lat, b.max_lat, b.min_lon, b.max_lon,
                                                *params)).fetchone()[0] for b in boxes)

        radius = min(radius_m, FIRST_RADIUS_M)
        shrunk = False
        while True:
            boxes = circle_boxes(lat, lon, radius)
            if radius < radius_m or not shrunk:
                count = count_in(boxes)
                if count < want and radius < radius_m:
                    grow = math.sqrt(want / max(1, count)) * 1.3
                    radius = min(radius_m, radius * max(2.0, min(16.0, grow)))
                    continue
                if count > _SHRINK_FROM * want and not shrunk:
                    # A dense downtown: every row read becomes a Python object, so aim for
                    # a circle holding about twice what is wanted (counting is index-only
                    # and cheap); keep the wider one if the smaller falls short.
                    smaller = radius * math.sqrt(2.0 * want / count)
                    small_boxes = circle_boxes(lat, lon, smaller)
                    if count_in(small_boxes) >= want:
                        radius, boxes = smaller, small_boxes
                shrunk = True
            found, inside = take(boxes, radius)
            if inside >= want or radius >= radius_m:
                return found
            radius = min(radius_m, radius * 1.5)

    async def _nearest_candidates(
        self, lat: float, lon: float, want: int, radius_m: float, filters: Filters
    ) -> list[Candidate]:
        sql, params = self._region_sql(filters, _CANDIDATE_COLUMNS)

        def work(conn: sqlite3.Connection) -> list[Candidate]:
            def take(boxes: list[Box], radius: float) -> tuple[list[Candidate], int]:
                found = self._fetch(conn, sql, params, boxes)
                return found, sum(1 for c in found if filters.matches(c)
                                  and haversine_m(lat, lon, c.lat, c.lon) <= radius)

            return self._sized_circle(conn, lat, lon, want, radius_m, filters, take)

        return await self._read(work)

    async def _nearest_page(
        self, lat: float, lon: float, limit: int, offset: int, radius_m: float,
        filters: Filters,
    ) -> SearchResult:
        """Once the circle holds ``offset + limit`` cameras, the nearest of them (every camera
        nearer than the last of those is in the circle too) ranked by SQLite, as radius
        queries are."""
        if not self.ranks_in_sql:
            return await super()._nearest_page(lat, lon, limit, offset, radius_m, filters)
        want = offset + limit

        def work(conn: sqlite3.Connection) -> SearchResult:
            def take(boxes: list[Box], radius: float) -> tuple[list[Any], int]:
                sql, params = _ranked_query(lat, lon, boxes, radius, filters, Page(0, want))
                rows = conn.execute(sql, params).fetchall()
                return rows, len(rows)

            rows = self._sized_circle(conn, lat, lon, want, radius_m, filters, take)
            ranked = [(row[12], row[0], Candidate._make(row[:12])) for row in rows[offset:]]
            return SearchResult(decoded_point_hits(lat, lon, ranked))

        return await self._read(work)

    async def _covering(self, lat: float, lon: float, filters: Filters) -> list[Candidate]:
        where, params = _filter_sql(filters)
        sql = (
            f"SELECT {_CANDIDATE_COLUMNS} FROM camera_cones k JOIN cameras c "  # noqa: S608 (constants and ? placeholders only)
            "ON c.rid = (k.cid >> 1) "
            "WHERE k.min_lat <= ? AND k.max_lat >= ? AND k.min_lon <= ? AND k.max_lon >= ?"
            + where
        )

        def work(conn: sqlite3.Connection) -> list[Candidate]:
            rows = conn.execute(sql, (lat, lat, lon, lon, *params))
            return list(map(Candidate._make, rows))

        return await self._read(work)

    # -- documents (owners, sites, agents) -------------------------------------------------------

    async def _put_doc(self, kind: EntityKind, doc_id: str, doc: Mapping[str, Any]) -> None:
        text = json.dumps(doc, separators=(",", ":"))
        await self._write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO entities VALUES (?, ?, ?)", (kind, doc_id, text)))

    async def _get_doc(self, kind: EntityKind, doc_id: str) -> dict[str, Any] | None:
        def work(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute("SELECT doc FROM entities WHERE kind = ? AND id = ?",
                               (kind, doc_id)).fetchone()
            return json.loads(row[0]) if row is not None else None

        return await self._read(work)

    async def _list_docs(self, kind: EntityKind) -> list[dict[str, Any]]:
        def work(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute("SELECT doc FROM entities WHERE kind = ? ORDER BY id",
                                (kind,)).fetchall()
            return [json.loads(row[0]) for row in rows]

        return await self._read(work)

    async def _delete_doc(self, kind: EntityKind, doc_id: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("DELETE FROM entities WHERE kind = ? AND id = ?",
                                  (kind, doc_id))
            return cursor.rowcount > 0

        return await self._write(work)
