"""The security store: accounts, sessions, tokens, incidents, grants (approved footage
requests, incident grants) and the audit log, in the department's database (``rtcc.db``): the
file ``security.sqlite3`` (WAL) on SQLite, the schema ``security`` on PostgreSQL.

``SecurityTables`` is the open connection: its SQL runs on one thread only. In the server that is
the store's own thread (``SecurityStore``, ``rtcc.offload``), so a lock held by another process
(``rtcc user``, ``rtcc export``) makes the security store's callers wait, never the event loop; a
command-line program uses ``SecurityTables`` directly. Multi-statement changes go through
``transaction()`` so they are atomic (and, on PostgreSQL, serialized with every other writer of
the store, like SQLite's ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import psycopg

from rtcc.db import Database, DatabaseUnavailable, Migration, SqlConnection, StoreSchema
from rtcc.offload import OffloadedStore, StoreClosed
from security.audit_chain import verify_copied_chain

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``); injectable so tests can move time."""

P = ParamSpec("P")
T = TypeVar("T")

STORE_FILE = "security.sqlite3"

DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error, DatabaseUnavailable)
"""What a statement of this store raises when the database refuses it or does not answer."""
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)
"""A unique or foreign key constraint refused the row, on either engine."""

# Migration 1 is the schema installations already have (made with IF NOT EXISTS, so an existing
# security.sqlite3 opens unchanged), with the audit metadata table that used to be created on
# first use folded in. The old PRAGMA user_version (1) is left as it is.
_SQLITE_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS audit_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_meta_no_update BEFORE UPDATE ON audit_meta
BEGIN SELECT RAISE(ABORT, 'the audit metadata is written once'); END;
CREATE TRIGGER IF NOT EXISTS audit_meta_no_delete BEFORE DELETE ON audit_meta
BEGIN SELECT RAISE(ABORT, 'the audit metadata is written once'); END;
"""


_POSTGRESQL_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL,
    owner_id TEXT,
    password_hash TEXT,
    totp_secret TEXT,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    locked_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    disabled BIGINT NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL,
    last_login DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS login_failures (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_user ON login_failures(user_id, at);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    source TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'api',
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION,
    last_used DOUBLE PRECISION,
    revoked DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'incident',
    title TEXT NOT NULL DEFAULT '',
    active BIGINT NOT NULL DEFAULT 1,
    opened_by TEXT NOT NULL,
    opened_at DOUBLE PRECISION NOT NULL,
    closed_by TEXT,
    closed_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS incident_cameras (
    incident_id TEXT NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    camera_id TEXT NOT NULL,
    linked_by TEXT NOT NULL,
    linked_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (incident_id, camera_id)
);
CREATE INDEX IF NOT EXISTS incident_cameras_camera ON incident_cameras(camera_id);
CREATE TABLE IF NOT EXISTS footage_requests (
    id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'pending',
    purpose TEXT NOT NULL DEFAULT '',
    decided_by TEXT,
    decided_at DOUBLE PRECISION,
    valid_until DOUBLE PRECISION
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
    range_start DOUBLE PRECISION,
    range_end DOUBLE PRECISION,
    valid_from DOUBLE PRECISION NOT NULL,
    valid_until DOUBLE PRECISION,
    approved_by TEXT NOT NULL,
    purpose TEXT NOT NULL DEFAULT '',
    created DOUBLE PRECISION NOT NULL,
    revoked DOUBLE PRECISION,
    revoked_by TEXT,
    revoke_reason TEXT NOT NULL DEFAULT '',
    expiry_audited BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS grants_camera ON grants(camera_id, kind);
CREATE INDEX IF NOT EXISTS grants_basis ON grants(basis, basis_id);
CREATE TABLE IF NOT EXISTS audit (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
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
    last_id BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_username_nocase ON users (lower(username));
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END; $$;
CREATE OR REPLACE TRIGGER audit_no_update BEFORE UPDATE ON audit
FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_no_delete BEFORE DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TABLE IF NOT EXISTS audit_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE OR REPLACE FUNCTION audit_meta_written_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit metadata is written once'; END; $$;
CREATE OR REPLACE TRIGGER audit_meta_no_update BEFORE UPDATE ON audit_meta
FOR EACH ROW EXECUTE FUNCTION audit_meta_written_once();
CREATE OR REPLACE TRIGGER audit_meta_no_delete BEFORE DELETE ON audit_meta
FOR EACH ROW EXECUTE FUNCTION audit_meta_written_once();
CREATE OR REPLACE TRIGGER audit_meta_no_truncate BEFORE TRUNCATE ON audit_meta
FOR EACH STATEMENT EXECUTE FUNCTION audit_meta_written_once();
"""


_INCIDENT_APPROVALS = """
CREATE TABLE IF NOT EXISTS incident_approvals (
    incident_id TEXT PRIMARY KEY REFERENCES incidents(id) ON DELETE CASCADE,
    approved_by TEXT NOT NULL,
    approved_at {real} NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
)
"""

SCHEMA = StoreSchema(
    name="security",
    migrations=(
        Migration(1, "first schema", sqlite=_SQLITE_SCHEMA, postgresql=_POSTGRESQL_SCHEMA),
        Migration(2, "supervisor approvals of incidents (two-person rule)",
                  sqlite=_INCIDENT_APPROVALS.format(real="REAL"),
                  postgresql=_INCIDENT_APPROVALS.format(real="DOUBLE PRECISION")),
    ),
    tables=("users", "login_failures", "sessions", "api_tokens", "incidents",
            "incident_cameras", "incident_approvals", "footage_requests", "grants", "audit",
            "audit_head", "audit_meta"),
    sqlite_file=STORE_FILE,
    verify=verify_copied_chain,
)


class SecurityTables:
    """The open connection and the schema. Feature modules issue their own statements, on the
    thread that owns this object. ``data_dir`` is where the keys kept outside the database live
    (the audit key)."""

    def __init__(self, conn: SqlConnection, data_dir: Path) -> None:
        self.conn = conn
        self.data_dir = data_dir

    @classmethod
    def open(cls, database: Database, data_dir: Path | None = None) -> SecurityTables:
        """The store's tables in ``database`` (blocking: call it on the thread that will use
        them). ``data_dir`` defaults to the database's data directory."""
        conn = database.open_store(SCHEMA)
        return cls(conn, database.sqlite_dir if data_dir is None else data_dir)

    @classmethod
    def open_in(cls, data_dir: Path) -> SecurityTables:
        """The SQLite file ``security.sqlite3`` in ``data_dir`` (tests, backups)."""
        return cls.open(Database.embedded(data_dir), data_dir)

    def close(self) -> None:
        self.conn.close()

    def transaction(self) -> contextlib.AbstractContextManager[SqlConnection]:
        """Atomic: committed at the end, rolled back on any error; one writer at a time."""
        return self.conn.transaction()

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

    def __init__(self, database: Database) -> None:
        super().__init__("security-store")
        self.database = database
        self._opened: SecurityTables | None = None

    @classmethod
    async def open(cls, database: Database, data_dir: Path | None = None) -> SecurityStore:
        """``database``'s security tables, on a thread of their own."""
        store = cls(database)
        try:
            store._opened = await store.run(SecurityTables.open, database, data_dir)
        except BaseException:
            await store.aclose()
            raise
        return store

    @classmethod
    async def open_in(cls, data_dir: Path) -> SecurityStore:
        """The SQLite file ``security.sqlite3`` in ``data_dir`` (tests)."""
        return await cls.open(Database.embedded(data_dir), data_dir)

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
