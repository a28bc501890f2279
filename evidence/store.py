"""The evidence store: on SQLite one file (``data_dir/evidence.sqlite3``, WAL,
synchronous=FULL), on PostgreSQL the ``evidence`` schema (``rtcc.db``).

Beside the recorded segments and legal holds (the tables of ``recording.store``) it holds
exports and their download tokens, footage requests, owners' approval policies and resumable
uploads. The video itself lives in files next to it (``data_dir/evidence/``); see
``recording.segments``.

``EvidenceStore`` is the synchronous store: one connection, shared by the threads that use it
under ``lock`` (statements are short and indexed). In the server it is used only off the event
loop: ``AsyncEvidenceStore`` runs its calls on the store's own thread (``rtcc.offload``) and the
recorders' writer threads write their segment rows themselves, so a lock on the file held by
another process (``rtcc export``) holds up only the evidence store's callers, never the video.
The command-line programs use ``EvidenceStore`` directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Concatenate, ParamSpec, TypeVar

from recording import store as segments
from recording.store import SegmentStore
from rtcc.db import Database, Migration, SqlConnection, StoreSchema
from rtcc.offload import OffloadedStore, StoreClosed

P = ParamSpec("P")
T = TypeVar("T")

STORE_FILE = "evidence.sqlite3"

_SQLITE_TABLES = """
CREATE TABLE IF NOT EXISTS exports (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    file_name TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    case_number TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_by_id INTEGER,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    downloads INTEGER NOT NULL DEFAULT 0,
    grant_kind TEXT NOT NULL DEFAULT '',
    grant_id TEXT NOT NULL DEFAULT '',
    range_start REAL,
    range_end REAL
);
CREATE TABLE IF NOT EXISTS footage_requests (
    id TEXT PRIMARY KEY,
    requester_id INTEGER NOT NULL,
    requester TEXT NOT NULL,
    requester_role TEXT NOT NULL,
    case_number TEXT NOT NULL,
    reason TEXT NOT NULL,
    incident TEXT NOT NULL DEFAULT '',
    utc_start REAL NOT NULL,
    utc_end REAL NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS footage_request_items (
    request_id TEXT NOT NULL REFERENCES footage_requests(id) ON DELETE CASCADE,
    camera_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    decided_by TEXT,
    decided_at REAL,
    auto INTEGER NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT '',
    valid_until REAL,
    failure TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (request_id, camera_id)
);
CREATE INDEX IF NOT EXISTS footage_items_owner ON footage_request_items(owner_id, status);
CREATE TABLE IF NOT EXISTS owner_policies (
    owner_id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    max_hours REAL,
    updated_by TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    codec TEXT NOT NULL,
    meta TEXT NOT NULL,
    received INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'receiving',
    segment_id INTEGER,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    UNIQUE (request_id, camera_id, sequence)
);
"""

_POSTGRESQL_TABLES = """
CREATE TABLE IF NOT EXISTS exports (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    file_name TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    case_number TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_by_id BIGINT,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    downloads BIGINT NOT NULL DEFAULT 0,
    grant_kind TEXT NOT NULL DEFAULT '',
    grant_id TEXT NOT NULL DEFAULT '',
    range_start DOUBLE PRECISION,
    range_end DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS footage_requests (
    id TEXT PRIMARY KEY,
    requester_id BIGINT NOT NULL,
    requester TEXT NOT NULL,
    requester_role TEXT NOT NULL,
    case_number TEXT NOT NULL,
    reason TEXT NOT NULL,
    incident TEXT NOT NULL DEFAULT '',
    utc_start DOUBLE PRECISION NOT NULL,
    utc_end DOUBLE PRECISION NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS footage_request_items (
    request_id TEXT NOT NULL REFERENCES footage_requests(id) ON DELETE CASCADE,
    camera_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    decided_by TEXT,
    decided_at DOUBLE PRECISION,
    auto BIGINT NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT '',
    valid_until DOUBLE PRECISION,
    failure TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (request_id, camera_id)
);
CREATE INDEX IF NOT EXISTS footage_items_owner ON footage_request_items(owner_id, status);
CREATE TABLE IF NOT EXISTS owner_policies (
    owner_id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    max_hours DOUBLE PRECISION,
    updated_by TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    codec TEXT NOT NULL,
    meta TEXT NOT NULL,
    received BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'receiving',
    segment_id BIGINT,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    UNIQUE (request_id, camera_id, sequence)
);
"""

_ADDED_COLUMNS = (
    ("footage_request_items", "failure", "TEXT NOT NULL DEFAULT ''"),
    ("exports", "grant_kind", "TEXT NOT NULL DEFAULT ''"),
    ("exports", "grant_id", "TEXT NOT NULL DEFAULT ''"),
    ("exports", "range_start", "REAL"),
    ("exports", "range_end", "REAL"),
)
"""Columns newer than some SQLite files already on disk (which predate migrations)."""


def _first_schema_sqlite(conn: SqlConnection) -> None:
    """The tables as the current release creates them; files made by older releases get the
    columns added since (idempotent, so it stays part of migration 1)."""
    conn.run_script(segments.SQLITE_TABLES)
    conn.run_script(_SQLITE_TABLES)
    for table, column, declaration in _ADDED_COLUMNS:
        present = {row[1] for row in conn.fetchall(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


_CASE_MARKS_SQLITE = """
CREATE TABLE IF NOT EXISTS case_marks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_number TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    utc_at REAL NOT NULL,
    utc_end REAL,
    text TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_by_id INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS case_marks_case ON case_marks(case_number, utc_at);
"""

_CASE_MARKS_POSTGRESQL = """
CREATE TABLE IF NOT EXISTS case_marks (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    case_number TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    utc_at DOUBLE PRECISION NOT NULL,
    utc_end DOUBLE PRECISION,
    text TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_by_id BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS case_marks_case ON case_marks(case_number, utc_at);
"""
"""Bookmarks and notes an investigator puts on a camera's timeline, kept with the case."""

_ITEM_TABLES = """
CREATE TABLE IF NOT EXISTS evidence_items (
    id TEXT PRIMARY KEY,
    media_type TEXT NOT NULL,
    file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    case_number TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    source TEXT NOT NULL,
    promoted_by TEXT NOT NULL,
    promoted_role TEXT NOT NULL,
    reason TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    hold_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence_custody (
    item_id TEXT NOT NULL REFERENCES evidence_items(id),
    seq BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (item_id, seq)
);
"""
"""Evidence items made from files (``evidence.items``) and their chain of custody."""

_EXPORT_JOBS_SQLITE = """
CREATE TABLE IF NOT EXISTS export_jobs (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    case_number TEXT NOT NULL,
    cameras TEXT NOT NULL,
    node TEXT NOT NULL,
    state TEXT NOT NULL,
    results TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    ended REAL
);
CREATE INDEX IF NOT EXISTS export_jobs_running ON export_jobs(node, state);
"""

_EXPORT_JOBS_POSTGRESQL = """
CREATE TABLE IF NOT EXISTS export_jobs (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    case_number TEXT NOT NULL,
    cameras TEXT NOT NULL,
    node TEXT NOT NULL,
    state TEXT NOT NULL,
    results TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    created DOUBLE PRECISION NOT NULL,
    ended DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS export_jobs_running ON export_jobs(node, state);
"""
"""The investigator's background exports (``evidence.export_jobs``): state and results (JSON,
without download tokens), so a job outlives the server that ran it."""

SCHEMA = StoreSchema(
    name="evidence",
    migrations=(Migration(1, "segments, holds, exports, footage requests and uploads",
                          sqlite=_first_schema_sqlite,
                          postgresql=segments.POSTGRESQL_TABLES + _POSTGRESQL_TABLES),
                Migration(2, "bookmarks and notes of a case", sqlite=_CASE_MARKS_SQLITE,
                          postgresql=_CASE_MARKS_POSTGRESQL),
                Migration(3, "evidence items from files and their chain of custody",
                          sqlite=_ITEM_TABLES, postgresql=_ITEM_TABLES),
                Migration(4, "the investigator's background export jobs",
                          sqlite=_EXPORT_JOBS_SQLITE, postgresql=_EXPORT_JOBS_POSTGRESQL)),
    tables=(*segments.TABLES, "exports", "footage_requests", "footage_request_items",
            "owner_policies", "uploads", "case_marks", "evidence_items", "evidence_custody",
            "export_jobs"),
    sqlite_file=STORE_FILE,
)
"""One store for the segment index, the legal holds and the evidence tables: exports join
segments to holds, and an upload records its segment in the same transaction, so they share one
connection (and, on PostgreSQL, one schema)."""


class EvidenceStore(SegmentStore):
    """The segment store with the evidence tables beside it, in one store and connection."""

    schema: ClassVar[StoreSchema] = SCHEMA

    @classmethod
    def open_in(cls, data_dir: Path) -> EvidenceStore:
        """The embedded store: ``data_dir/evidence.sqlite3``."""
        return cls.open_on(Database.embedded(data_dir))


class AsyncEvidenceStore(OffloadedStore):
    """The evidence store of a running server: every call runs on the store's thread."""

    def __init__(self) -> None:
        super().__init__("evidence-store")
        self._opened: EvidenceStore | None = None

    @classmethod
    async def open(cls, database: Database) -> AsyncEvidenceStore:
        store = cls()
        try:
            store._opened = await store.run(EvidenceStore.open_on, database)
        except BaseException:
            await store.aclose()
            raise
        return store

    @classmethod
    async def open_in(cls, data_dir: Path) -> AsyncEvidenceStore:
        """The embedded store in ``data_dir``."""
        return await cls.open(Database.embedded(data_dir))

    @property
    def tables(self) -> EvidenceStore:
        """The synchronous store, for the threads that may block on it (the store's own, a
        recorder's writer, an export)."""
        if self._opened is None:
            raise StoreClosed("evidence")
        return self._opened

    def _release(self) -> None:
        tables, self._opened = self._opened, None
        if tables is not None:
            tables.close()

    async def call(self, fn: Callable[Concatenate[EvidenceStore, P], T], *args: P.args,
                   **kwargs: P.kwargs) -> T:
        """``fn(store, *args, **kwargs)`` on the store's thread."""
        return await self.run(functools.partial(fn, self.tables, *args, **kwargs))
