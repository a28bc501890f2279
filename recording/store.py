"""The store of recorded segments and legal holds: one SQLite file (WAL, synchronous=FULL).

It holds what is known about every recorded or uploaded segment (path, camera pts range, server
UTC range, size, frame count, SHA-256) and the legal holds that keep segments from eviction. The
video itself lives in files next to it; see ``recording.segments``. The server keeps these tables
in its evidence file (``evidence.store`` adds its own beside them); the owner's agent keeps them
in its rolling buffer's index.

A closed segment's row cannot be changed (a trigger refuses the UPDATE); it can only be deleted by
retention, which never touches a segment under an active hold.

One connection is shared by the threads that use the store (in the server: the evidence store's
own thread and the recorders' writer threads, never the event loop); every use holds ``lock``
(statements are short and indexed).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from rtcc.sqlite import connect, immediate_transaction

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera_id TEXT NOT NULL,
    profile TEXT NOT NULL DEFAULT 'main',
    origin TEXT NOT NULL,
    request_id TEXT,
    path TEXT NOT NULL UNIQUE,
    codec TEXT NOT NULL,
    state TEXT NOT NULL,
    pts_start INTEGER,
    pts_end INTEGER,
    utc_start REAL NOT NULL,
    utc_end REAL,
    bytes INTEGER NOT NULL DEFAULT 0,
    frames INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT,
    index_sha256 TEXT,
    discontinuity INTEGER NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    closed REAL
);
CREATE INDEX IF NOT EXISTS segments_camera_time ON segments(camera_id, utc_start);
CREATE INDEX IF NOT EXISTS segments_request ON segments(request_id);
CREATE TRIGGER IF NOT EXISTS segments_immutable BEFORE UPDATE ON segments
WHEN OLD.state != 'open'
BEGIN SELECT RAISE(ABORT, 'a closed segment cannot be changed'); END;
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    case_number TEXT NOT NULL,
    utc_start REAL NOT NULL,
    utc_end REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    released_by TEXT,
    released_at REAL
);
CREATE INDEX IF NOT EXISTS holds_camera ON holds(camera_id, utc_start);
"""


@dataclass(frozen=True, slots=True)
class SegmentRow:
    id: int
    camera_id: str
    profile: str
    origin: str
    request_id: str | None
    path: str
    codec: str
    state: str
    pts_start: int | None
    pts_end: int | None
    utc_start: float
    utc_end: float | None
    bytes: int
    frames: int
    sha256: str | None
    index_sha256: str | None
    discontinuity: bool
    note: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SegmentRow:
        return cls(
            id=int(row["id"]), camera_id=row["camera_id"], profile=row["profile"],
            origin=row["origin"], request_id=row["request_id"], path=row["path"],
            codec=row["codec"], state=row["state"], pts_start=row["pts_start"],
            pts_end=row["pts_end"], utc_start=float(row["utc_start"]),
            utc_end=None if row["utc_end"] is None else float(row["utc_end"]),
            bytes=int(row["bytes"]), frames=int(row["frames"]), sha256=row["sha256"],
            index_sha256=row["index_sha256"], discontinuity=bool(row["discontinuity"]),
            note=row["note"],
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "camera_id": self.camera_id, "profile": self.profile,
            "origin": self.origin, "request_id": self.request_id, "codec": self.codec,
            "state": self.state, "pts_start": self.pts_start, "pts_end": self.pts_end,
            "utc_start": self.utc_start, "utc_end": self.utc_end, "bytes": self.bytes,
            "frames": self.frames, "sha256": self.sha256,
            "discontinuity": self.discontinuity, "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class NewSegment:
    camera_id: str
    profile: str
    origin: str
    path: str
    codec: str
    utc_start: float
    pts_start: int | None
    discontinuity: bool
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClosedSegment:
    pts_start: int | None
    pts_end: int | None
    utc_start: float
    utc_end: float | None
    bytes: int
    frames: int
    sha256: str
    index_sha256: str
    path: str
    state: str = "complete"
    note: str = ""


class SegmentStore:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.lock = threading.RLock()

    @classmethod
    def open(cls, path: Path) -> Self:
        conn = connect(path, "journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                       setup=cls.create_schema)
        return cls(conn, path)

    @classmethod
    def create_schema(cls, conn: sqlite3.Connection) -> None:
        """Create the tables a new file lacks (a store with more tables adds its own)."""
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the lock, rolled back on any error."""
        with self.lock, immediate_transaction(self.conn) as conn:
            yield conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self.lock:
            return self.conn.execute(sql, params)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return list(self.conn.execute(sql, params).fetchall())

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self.lock:
            row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
            return row

    # -- segments -------------------------------------------------------------------------------

    def open_segment(self, new: NewSegment, now: float) -> int:
        cursor = self.execute(
            "INSERT INTO segments (camera_id, profile, origin, request_id, path, codec, state,"
            " pts_start, utc_start, discontinuity, created) VALUES (?, ?, ?, ?, ?, ?, 'open',"
            " ?, ?, ?, ?)",
            (new.camera_id, new.profile, new.origin, new.request_id, new.path, new.codec,
             new.pts_start, new.utc_start, int(new.discontinuity), now),
        )
        assert cursor.lastrowid is not None
        return int(cursor.lastrowid)

    def close_segment(self, segment_id: int, closed: ClosedSegment, now: float) -> None:
        self.execute(
            "UPDATE segments SET state = ?, path = ?, pts_start = ?, pts_end = ?, utc_start = ?,"
            " utc_end = ?, bytes = ?, frames = ?, sha256 = ?, index_sha256 = ?, note = ?,"
            " closed = ? WHERE id = ? AND state = 'open'",
            (closed.state, closed.path, closed.pts_start, closed.pts_end, closed.utc_start,
             closed.utc_end, closed.bytes, closed.frames, closed.sha256, closed.index_sha256,
             closed.note, now, segment_id),
        )

    def add_closed_segment(self, new: NewSegment, closed: ClosedSegment, now: float) -> int:
        """Record a segment that arrived complete (an agent's upload)."""
        with self.transaction():
            segment_id = self.open_segment(new, now)
            self.close_segment(segment_id, closed, now)
        return segment_id

    def segment(self, segment_id: int) -> SegmentRow | None:
        row = self.fetchone("SELECT * FROM segments WHERE id = ?", (segment_id,))
        return None if row is None else SegmentRow.from_row(row)

    def open_segments(self) -> list[SegmentRow]:
        rows = self.fetchall("SELECT * FROM segments WHERE state = 'open' ORDER BY id")
        return [SegmentRow.from_row(row) for row in rows]

    def segments_between(self, camera_id: str, start: float, end: float) -> list[SegmentRow]:
        """Closed segments of a camera that overlap [start, end], oldest first."""
        rows = self.fetchall(
            "SELECT * FROM segments WHERE camera_id = ? AND state IN ('complete', 'recovered')"
            " AND utc_start <= ? AND utc_end >= ? ORDER BY utc_start, id",
            (camera_id, end, start),
        )
        return [SegmentRow.from_row(row) for row in rows]

    def recent_segments(self, camera_id: str | None, limit: int) -> list[SegmentRow]:
        if camera_id is None:
            rows = self.fetchall("SELECT * FROM segments ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self.fetchall(
                "SELECT * FROM segments WHERE camera_id = ? ORDER BY id DESC LIMIT ?",
                (camera_id, limit),
            )
        return [SegmentRow.from_row(row) for row in rows]

    def evictable(self, camera_id: str, before: float, limit: int = 500) -> list[SegmentRow]:
        """Closed segments of a camera that ended before ``before`` and no active hold covers."""
        rows = self.fetchall(
            "SELECT * FROM segments s WHERE s.camera_id = ? AND s.state != 'open'"
            " AND s.utc_end < ? AND NOT EXISTS (SELECT 1 FROM holds h"
            " WHERE h.camera_id = s.camera_id AND h.released_at IS NULL"
            " AND h.utc_start <= s.utc_end AND h.utc_end >= s.utc_start)"
            " ORDER BY s.utc_start LIMIT ?",
            (camera_id, before, limit),
        )
        return [SegmentRow.from_row(row) for row in rows]

    def delete_segment(self, segment_id: int) -> None:
        self.execute("DELETE FROM segments WHERE id = ?", (segment_id,))

    def cameras_with_segments(self) -> list[str]:
        return [str(row[0]) for row in self.fetchall("SELECT DISTINCT camera_id FROM segments")]

    def is_held(self, camera_id: str, start: float, end: float) -> bool:
        row = self.fetchone(
            "SELECT 1 FROM holds WHERE camera_id = ? AND released_at IS NULL"
            " AND utc_start <= ? AND utc_end >= ? LIMIT 1",
            (camera_id, end, start),
        )
        return row is not None
