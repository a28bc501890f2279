"""The evidence store: one SQLite file (``data_dir/evidence.sqlite3``, WAL, synchronous=FULL).

Beside the recorded segments and legal holds (the tables of ``recording.store``) it holds
exports and their download tokens, footage requests, owners' approval policies and resumable
uploads. The video itself lives in files next to it (``data_dir/evidence/``); see
``recording.segments``.

One connection is shared by the event loop and the recorders' writer threads; every use holds
``lock`` (statements are short and indexed).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from recording.store import SegmentStore

STORE_FILE = "evidence.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
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
    downloads INTEGER NOT NULL DEFAULT 0
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


_ADDED_COLUMNS = (
    ("footage_request_items", "failure", "TEXT NOT NULL DEFAULT ''"),
)
"""Columns newer than some stores already on disk: added when such a store is opened."""


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, column, declaration in _ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


class EvidenceStore(SegmentStore):
    """The segment store with the evidence tables beside it, in one file and connection."""

    @classmethod
    def create_schema(cls, conn: sqlite3.Connection) -> None:
        super().create_schema(conn)
        conn.executescript(_SCHEMA)
        _add_missing_columns(conn)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @classmethod
    def open_in(cls, data_dir: Path) -> EvidenceStore:
        return cls.open(data_dir / STORE_FILE)
