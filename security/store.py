"""The security store: one SQLite file (WAL) holding accounts, sessions, tokens, incidents,
grants (approved footage requests, incident grants) and the audit log.

``SecurityTables`` is the open connection: its SQL runs on one thread only. In the server that is
the store's own thread (``SecurityStore``, ``rtcc.offload``), so a lock on the file held by another
process (``rtcc user``, ``rtcc export``) makes the security store's callers wait, never the event
loop; a command-line program uses ``SecurityTables`` directly. Multi-statement changes go through
``transaction()`` so they are atomic.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from rtcc.files import private_database
from rtcc.offload import OffloadedStore, StoreClosed

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``); injectable so tests can move time."""

P = ParamSpec("P")
T = TypeVar("T")

STORE_FILE = "security.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL,
    owner_id TEXT,
    password_hash TEXT,
    totp_secret TEXT,
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    last_login REAL
);
CREATE TABLE IF NOT EXISTS login_failures (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_user ON login_failures(user_id, at);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created REAL NOT NULL,
    last_seen REAL NOT NULL,
    source TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'api',
    created REAL NOT NULL,
    expires REAL,
    last_used REAL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'incident',
    title TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1,
    opened_by TEXT NOT NULL,
    opened_at REAL NOT NULL,
    closed_by TEXT,
    closed_at REAL
);
CREATE TABLE IF NOT EXISTS incident_cameras (
    incident_id TEXT NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    camera_id TEXT NOT NULL,
    linked_by TEXT NOT NULL,
    linked_at REAL NOT NULL,
    PRIMARY KEY (incident_id, camera_id)
);
CREATE INDEX IF NOT EXISTS incident_cameras_camera ON incident_cameras(camera_id);
CREATE TABLE IF NOT EXISTS incident_approvals (
    incident_id TEXT PRIMARY KEY REFERENCES incidents(id) ON DELETE CASCADE,
    approved_by TEXT NOT NULL,
    approved_at REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS footage_requests (
    id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'pending',
    purpose TEXT NOT NULL DEFAULT '',
    decided_by TEXT,
    decided_at REAL,
    valid_until REAL
);
CREATE INDEX IF NOT EXISTS footage_requests_camera ON footage_requests(camera_id, user_id);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    basis TEXT NOT NULL,
    basis_id TEXT NOT NULL,
    range_start REAL,
    range_end REAL,
    valid_from REAL NOT NULL,
    valid_until REAL,
    approved_by TEXT NOT NULL,
    purpose TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    revoked REAL,
    revoked_by TEXT,
    revoke_reason TEXT NOT NULL DEFAULT '',
    expiry_audited INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS grants_camera ON grants(camera_id, kind);
CREATE INDEX IF NOT EXISTS grants_basis ON grants(basis, basis_id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    source TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_camera ON audit(camera_id, id);
CREATE INDEX IF NOT EXISTS audit_owner ON audit(owner_id, id);
CREATE TABLE IF NOT EXISTS audit_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    last_id INTEGER NOT NULL,
    last_hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class SecurityTables:
    """The open SQLite connection and the schema. Feature modules issue their own statements,
    on the thread that owns this object."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path) -> SecurityTables:
        private_database(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error:
            conn.close()
            raise
        return cls(conn, path)

    @classmethod
    def open_in(cls, data_dir: Path) -> SecurityTables:
        return cls.open(data_dir / STORE_FILE)

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def user_count(self) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM users").fetchone()
        return int(row[0])

    # -- grants (security/grants.py writes them) --

    def approved_request_for(self, camera_id: str, user_id: int, now: float) -> str | None:
        """The id of an approved, unexpired footage request of this user for this camera (it
        grants the requested range of recorded footage)."""
        row = self.conn.execute(
            "SELECT basis_id FROM grants WHERE camera_id = ? AND subject_kind = 'user'"
            " AND subject = ? AND basis = 'footage_request' AND kind = 'recorded'"
            " AND revoked IS NULL AND valid_from <= ? AND (valid_until IS NULL OR valid_until > ?)"
            " ORDER BY created DESC LIMIT 1",
            (camera_id, str(user_id), now, now),
        ).fetchone()
        return None if row is None else str(row["basis_id"])


class SecurityStore(OffloadedStore):
    """The security store of a running server: every statement runs on the store's thread."""

    def __init__(self, path: Path) -> None:
        super().__init__("security-store")
        self.path = path
        self._opened: SecurityTables | None = None

    @classmethod
    async def open(cls, path: Path) -> SecurityStore:
        store = cls(path)
        try:
            store._opened = await store.run(SecurityTables.open, path)
        except BaseException:
            await store.aclose()
            raise
        return store

    @classmethod
    async def open_in(cls, data_dir: Path) -> SecurityStore:
        return await cls.open(data_dir / STORE_FILE)

    @property
    def tables(self) -> SecurityTables:
        if self._opened is None:
            raise StoreClosed("security")
        return self._opened

    def _release(self) -> None:
        tables, self._opened = self._opened, None
        if tables is not None:
            tables.close()

    async def call(self, fn: Callable[Concatenate[SecurityTables, P], T], *args: P.args,
                   **kwargs: P.kwargs) -> T:
        """``fn(tables, *args, **kwargs)`` on the store's thread."""
        return await self.run(functools.partial(fn, self.tables, *args, **kwargs))

    async def user_count(self) -> int:
        return await self.call(SecurityTables.user_count)

    async def approved_request_for(self, camera_id: str, user_id: int, now: float) -> str | None:
        """The id of an approved, unexpired footage request of this user for this camera."""
        return await self.call(SecurityTables.approved_request_for, camera_id, user_id, now)
