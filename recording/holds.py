"""Legal holds: a camera and time range tied to a case; retention never evicts what they cover.

On the server, holds are placed automatically on every export (the exported range) and on every
approved footage request (the requested range), and by hand through ``POST /api/holds``; the
owner's agent holds the range of a footage request it is uploading. A hold is released, never
deleted, so its history stays.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from recording.store import SegmentStore
from rtcc.db import Row


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    camera_id: str
    case_number: str
    utc_start: float
    utc_end: float
    reason: str
    created_by: str
    created_at: float
    released_by: str | None
    released_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> Hold:
        return cls(
            id=row["id"], camera_id=row["camera_id"], case_number=row["case_number"],
            utc_start=float(row["utc_start"]), utc_end=float(row["utc_end"]),
            reason=row["reason"], created_by=row["created_by"],
            created_at=float(row["created_at"]), released_by=row["released_by"],
            released_at=None if row["released_at"] is None else float(row["released_at"]),
        )

    @property
    def active(self) -> bool:
        return self.released_at is None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "camera_id": self.camera_id, "case": self.case_number,
            "start": self.utc_start, "end": self.utc_end, "reason": self.reason,
            "created_by": self.created_by, "created_at": self.created_at,
            "released_by": self.released_by, "released_at": self.released_at,
            "active": self.active,
        }


def add_hold(store: SegmentStore, *, camera_id: str, case_number: str, start: float,
             end: float, reason: str, created_by: str, now: float) -> Hold:
    hold_id = f"hold-{secrets.token_hex(6)}"
    store.execute(
        "INSERT INTO holds (id, camera_id, case_number, utc_start, utc_end, reason, created_by,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (hold_id, camera_id, case_number, start, end, reason, created_by, now),
    )
    found = get_hold(store, hold_id)
    assert found is not None
    return found


def get_hold(store: SegmentStore, hold_id: str) -> Hold | None:
    row = store.fetchone("SELECT * FROM holds WHERE id = ?", (hold_id,))
    return None if row is None else Hold.from_row(row)


def list_holds(store: SegmentStore, *, camera_id: str | None = None, active_only: bool = True,
               limit: int = 200) -> list[Hold]:
    clauses, params = [], []
    if camera_id is not None:
        clauses.append("camera_id = ?")
        params.append(camera_id)
    if active_only:
        clauses.append("released_at IS NULL")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = store.fetchall(
        "SELECT * FROM holds" + where + " ORDER BY created_at DESC LIMIT ?",  # noqa: S608
        (*params, max(1, min(limit, 1000))),
    )
    return [Hold.from_row(row) for row in rows]


def release_hold(store: SegmentStore, hold_id: str, released_by: str, now: float) -> bool:
    cursor = store.execute(
        "UPDATE holds SET released_by = ?, released_at = ? WHERE id = ? AND released_at IS NULL",
        (released_by, now, hold_id),
    )
    return cursor.rowcount > 0
