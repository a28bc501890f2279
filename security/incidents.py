"""Incidents and panic alerts: while one is active, the cameras linked to it that are shared
``live_emergency`` may be viewed live."""

from __future__ import annotations

import re
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from security.store import Clock, SecurityStore

INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KINDS = frozenset({"incident", "panic"})


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    kind: str
    title: str
    active: bool
    opened_by: str
    opened_at: float
    closed_by: str | None
    closed_at: float | None
    cameras: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "title": self.title, "active": self.active,
            "opened_by": self.opened_by, "opened_at": self.opened_at,
            "closed_by": self.closed_by, "closed_at": self.closed_at,
            "cameras": list(self.cameras),
        }


class IncidentBook:
    def __init__(self, store: SecurityStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def _cameras(self, incident_id: str) -> tuple[str, ...]:
        rows = self._store.conn.execute(
            "SELECT camera_id FROM incident_cameras WHERE incident_id = ? ORDER BY camera_id",
            (incident_id,),
        ).fetchall()
        return tuple(str(row[0]) for row in rows)

    def _from_row(self, row: sqlite3.Row) -> Incident:
        return Incident(
            id=row["id"], kind=row["kind"], title=row["title"], active=bool(row["active"]),
            opened_by=row["opened_by"], opened_at=float(row["opened_at"]),
            closed_by=row["closed_by"],
            closed_at=None if row["closed_at"] is None else float(row["closed_at"]),
            cameras=self._cameras(row["id"]),
        )

    def get(self, incident_id: str) -> Incident | None:
        row = self._store.conn.execute(
            "SELECT * FROM incidents WHERE id = ?", (incident_id,)
        ).fetchone()
        return None if row is None else self._from_row(row)

    def recent(self, *, active_only: bool = True, limit: int = 200) -> list[Incident]:
        query = "SELECT * FROM incidents"
        if active_only:
            query += " WHERE active = 1"
        rows = self._store.conn.execute(
            query + " ORDER BY opened_at DESC LIMIT ?", (max(1, min(limit, 1000)),)
        ).fetchall()
        return [self._from_row(row) for row in rows]

    def open(self, opened_by: str, *, incident_id: str | None = None, kind: str = "incident",
             title: str = "", cameras: tuple[str, ...] = ()) -> Incident:
        new_id = incident_id or f"inc-{secrets.token_hex(6)}"
        now = self._clock()
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO incidents (id, kind, title, active, opened_by, opened_at)"
                " VALUES (?, ?, ?, 1, ?, ?)",
                (new_id, kind, title, opened_by, now),
            )
            for camera_id in cameras:
                conn.execute(
                    "INSERT OR IGNORE INTO incident_cameras"
                    " (incident_id, camera_id, linked_by, linked_at) VALUES (?, ?, ?, ?)",
                    (new_id, camera_id, opened_by, now),
                )
        found = self.get(new_id)
        assert found is not None
        return found

    def link(self, incident_id: str, cameras: tuple[str, ...], linked_by: str) -> None:
        now = self._clock()
        with self._store.transaction() as conn:
            for camera_id in cameras:
                conn.execute(
                    "INSERT OR IGNORE INTO incident_cameras"
                    " (incident_id, camera_id, linked_by, linked_at) VALUES (?, ?, ?, ?)",
                    (incident_id, camera_id, linked_by, now),
                )

    def close(self, incident_id: str, closed_by: str) -> bool:
        cursor = self._store.conn.execute(
            "UPDATE incidents SET active = 0, closed_by = ?, closed_at = ?"
            " WHERE id = ? AND active = 1",
            (closed_by, self._clock(), incident_id),
        )
        return cursor.rowcount > 0

    def active_for_camera(self, camera_id: str) -> list[str]:
        """Ids of active incidents (or panic alerts) the camera is linked to, newest first."""
        rows = self._store.conn.execute(
            "SELECT i.id FROM incidents i JOIN incident_cameras c ON c.incident_id = i.id"
            " WHERE c.camera_id = ? AND i.active = 1 ORDER BY i.opened_at DESC",
            (camera_id,),
        ).fetchall()
        return [str(row[0]) for row in rows]
