"""The embedded catalog engine: one SQLite file in WAL mode with two R*Tree indexes.

``camera_points`` indexes each camera's position (near, radius, polygon and route queries);
``camera_cones`` indexes the bounding box of each camera's view cone, so "which cameras can see
this point" is one R*Tree lookup of the boxes that hold the point (``cid = rid * 2 + part``: a
cone that crosses the antimeridian has two boxes). All SQLite calls run on two dedicated threads,
one writer and one reader, each with its own connection, so the event loop never blocks and a
long import does not hold up searches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from catalog.errors import CameraExists, ImportConflict, ImportRejected, RowError
from catalog.geo import Box, Circle, cone_boxes
from catalog.model import Camera, CameraStatus, camera_from_record, camera_record
from catalog.query import Candidate, Filters
from catalog.store import EntityKind, ImportMode, StoreBase

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
CREATE VIRTUAL TABLE IF NOT EXISTS camera_points
    USING rtree(rid, min_lat, max_lat, min_lon, max_lon);
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
    "c.id, c.lat, c.lon, c.heading, c.fov, c.range_m, c.sharing, c.kind, c.owner_id, c.status"
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
_CHUNK = 500
"""Ids per ``IN (...)`` list (well under SQLite's bound-parameter limit)."""


def _row_values(camera: Camera) -> tuple[Any, ...]:
    doc = json.dumps(camera_record(camera), separators=(",", ":"))
    return (camera.id, camera.lat, camera.lon, camera.heading, camera.fov, camera.range_m,
            str(camera.sharing), str(camera.kind), camera.owner_id, doc)


def _cone_rows(rid: int, camera: Camera) -> list[tuple[int, float, float, float, float]]:
    boxes = cone_boxes(camera.lat, camera.lon, camera.heading, camera.fov, camera.range_m)
    return [(rid * 2 + i, b.min_lat, b.max_lat, b.min_lon, b.max_lon)
            for i, b in enumerate(boxes)]


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


def _from_row(row: Sequence[Any]) -> Camera:
    doc, status, last_frame_time = row
    return camera_from_record(json.loads(doc), CameraStatus(status), last_frame_time)


class SqliteCatalog(StoreBase):
    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="catalog-sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="catalog-sqlite-reader")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._closed = False

    @classmethod
    async def open(cls, path: Path) -> SqliteCatalog:
        store = cls(path)
        try:
            await store._open()
        except BaseException:
            await store.aclose()
            raise
        return store

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=10.0)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def writer() -> sqlite3.Connection:
            conn = self._connect()
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                         (SCHEMA_VERSION,))
            return conn

        self._wconn = await loop.run_in_executor(self._writer, writer)
        self._rconn = await loop.run_in_executor(self._reader, self._connect)
        log.info("catalog: SQLite store %s opened", self.path)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._wconn
        if conn is None:
            raise RuntimeError("the catalog store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._writer, work, conn)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._rconn
        if conn is None:
            raise RuntimeError("the catalog store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._reader, work, conn)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        for executor, conn in ((self._writer, self._wconn), (self._reader, self._rconn)):
            if conn is not None:
                await loop.run_in_executor(executor, conn.close)
            executor.shutdown(wait=True)
        self._wconn = self._rconn = None

    # -- writes ---------------------------------------------------------------------------------

    @staticmethod
    def _transaction(conn: sqlite3.Connection, work: Callable[[], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    @staticmethod
    def _index(conn: sqlite3.Connection, items: Sequence[tuple[int, Camera]], fresh: bool) -> None:
        if not fresh:
            conn.executemany("DELETE FROM camera_points WHERE rid = ?",
                             [(rid,) for rid, _ in items])
            conn.executemany("DELETE FROM camera_cones WHERE cid = ?",
                             [(rid * 2 + i,) for rid, _ in items for i in (0, 1)])
        conn.executemany("INSERT INTO camera_points VALUES (?, ?, ?, ?, ?)",
                         [(rid, c.lat, c.lat, c.lon, c.lon) for rid, c in items])
        conn.executemany("INSERT INTO camera_cones VALUES (?, ?, ?, ?, ?)",
                         [row for rid, c in items for row in _cone_rows(rid, c)])

    def _upsert_many(
        self, conn: sqlite3.Connection, cameras: Sequence[Camera], mode: ImportMode
    ) -> tuple[int, int]:
        """(inserted, replaced) inside the caller's transaction."""
        existing: dict[str, int] = {}
        for chunk in _chunks([c.id for c in cameras]):
            rows = conn.execute(
                f"SELECT id, rid FROM cameras WHERE id IN ({','.join('?' * len(chunk))})", chunk  # noqa: S608 (constants and ? placeholders only)
            ).fetchall()
            existing.update(rows)
        if existing and mode == "create":
            raise ImportConflict(sorted(existing))
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

    async def import_cameras(self, cameras: Sequence[Camera], mode: ImportMode = "create") -> int:
        seen: dict[str, int] = {}
        errors: list[RowError] = []
        for row, camera in enumerate(cameras, start=1):
            if camera.id in seen:
                errors.append(RowError(row, "id", f"duplicate of row {seen[camera.id]}"))
            seen.setdefault(camera.id, row)
        if errors:
            raise ImportRejected(errors)
        cameras = list(cameras)
        await self._write(lambda conn: self._transaction(
            conn, lambda: self._upsert_many(conn, cameras, mode)))
        return len(cameras)

    async def create(self, camera: Camera) -> None:
        try:
            await self._write(lambda conn: self._transaction(
                conn, lambda: self._upsert_many(conn, [camera], "create")))
        except ImportConflict:
            raise CameraExists(camera.id) from None

    async def put(self, camera: Camera) -> bool:
        inserted, _ = await self._write(lambda conn: self._transaction(
            conn, lambda: self._upsert_many(conn, [camera], "upsert")))
        return inserted == 0

    async def delete(self, camera_id: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT rid FROM cameras WHERE id = ?", (camera_id,)).fetchone()
            if row is None:
                return False
            rid = row[0]
            conn.execute("DELETE FROM camera_points WHERE rid = ?", (rid,))
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
            row = conn.execute("SELECT doc, status, last_frame_time FROM cameras WHERE id = ?",
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
                    "SELECT id, doc, status, last_frame_time FROM cameras "  # noqa: S608 (constants and ? placeholders only)
                    f"WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
                for row in rows:
                    out[row[0]] = _from_row(row[1:])
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
                f"SELECT c.doc, c.status, c.last_frame_time FROM cameras c WHERE c.id > ?{where} "  # noqa: S608 (constants and ? placeholders only)
                "ORDER BY c.id LIMIT ?", (after, *params, limit)).fetchall()
            return [_from_row(row) for row in rows]

        return await self._read(work)

    async def iter_cameras(self, batch: int = 1000) -> AsyncIterator[Camera]:
        after = ""
        while True:
            cameras = await self.list_cameras(after=after, limit=batch)
            for camera in cameras:
                yield camera
            if len(cameras) < batch:
                return
            after = cameras[-1].id

    async def _candidates(
        self, boxes: list[Box], circles: list[Circle], filters: Filters
    ) -> list[Candidate]:
        where, params = _filter_sql(filters)
        sql = (
            f"SELECT {_CANDIDATE_COLUMNS} FROM camera_points p JOIN cameras c ON c.rid = p.rid "  # noqa: S608 (constants and ? placeholders only)
            "WHERE p.max_lat >= ? AND p.min_lat <= ? AND p.max_lon >= ? AND p.min_lon <= ?"
            + where
        )

        def work(conn: sqlite3.Connection) -> list[Candidate]:
            out: list[Candidate] = []
            for b in boxes:
                rows = conn.execute(sql, (b.min_lat, b.max_lat, b.min_lon, b.max_lon, *params))
                out += map(Candidate._make, rows)
            return out

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
