"""Incidents and panic alerts: while one is active, the cameras linked to it that are shared
``live_emergency`` may be viewed live."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from rtcc.db import Row
from security.store import Clock, SecurityStore, SecurityTables

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
    """The public methods are async: their statements (the ``_``-prefixed methods) run on the
    security store's thread."""

    def __init__(self, store: SecurityStore, clock: Clock) -> None:
        self._store = store
        self._db: SecurityTables = store.tables
        self._clock = clock

    async def get(self, incident_id: str) -> Incident | None:
        return await self._store.run(self._get, incident_id)

    async def recent(self, *, active_only: bool = True, limit: int = 200) -> list[Incident]:
        return await self._store.run(self._recent, active_only, limit)

    async def open(self, opened_by: str, *, incident_id: str | None = None,
                   kind: str = "incident", title: str = "", cameras: tuple[str, ...] = ()
                   ) -> Incident:
        return await self._store.run(self._open, opened_by, incident_id, kind, title, cameras)

    async def link(self, incident_id: str, cameras: tuple[str, ...], linked_by: str) -> None:
        await self._store.run(self._link, incident_id, cameras, linked_by)

    async def close(self, incident_id: str, closed_by: str) -> bool:
        return await self._store.run(self._close, incident_id, closed_by)

    async def approve(self, incident_id: str, approved_by: str, reason: str) -> bool:
        """Record a supervisor's approval (two-person rule); False when approved already."""
        return await self._store.run(self._approve, incident_id, approved_by, reason)

    async def approval_of(self, incident_id: str) -> dict[str, Any] | None:
        return await self._store.run(self._approval_of, incident_id)

    async def active_for_camera(self, camera_id: str) -> list[str]:
        """Ids of active incidents (or panic alerts) the camera is linked to, newest first."""
        return await self._store.run(self._active_for_camera, camera_id)

    def _cameras(self, incident_id: str) -> tuple[str, ...]:
        rows = self._db.conn.execute(
            "SELECT camera_id FROM incident_cameras WHERE incident_id = ? ORDER BY camera_id",
            (incident_id,),
        ).fetchall()
        return tuple(str(row[0]) for row in rows)

    def _from_row(self, row: Row) -> Incident:
        return Incident(
            id=row["id"], kind=row["kind"], title=row["title"], active=bool(row["active"]),
            opened_by=row["opened_by"], opened_at=float(row["opened_at"]),
            closed_by=row["closed_by"],
            closed_at=None if row["closed_at"] is None else float(row["closed_at"]),
            cameras=self._cameras(row["id"]),
        )

    def _get(self, incident_id: str) -> Incident | None:
        row = self._db.conn.execute(
            "SELECT * FROM incidents WHERE id = ?", (incident_id,)
        ).fetchone()
        return None if row is None else self._from_row(row)

    def _recent(self, active_only: bool, limit: int) -> list[Incident]:
        query = "SELECT * FROM incidents"
        if active_only:
            query += " WHERE active = 1"
        rows = self._db.conn.execute(
            query + " ORDER BY opened_at DESC LIMIT ?", (max(1, min(limit, 1000)),)
        ).fetchall()
        return [self._from_row(row) for row in rows]

    def _open(self, opened_by: str, incident_id: str | None, kind: str, title: str,
              cameras: tuple[str, ...]) -> Incident:
        new_id = incident_id or f"inc-{secrets.token_hex(6)}"
        now = self._clock()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO incidents (id, kind, title, active, opened_by, opened_at)"
                " VALUES (?, ?, ?, 1, ?, ?)",
                (new_id, kind, title, opened_by, now),
            )
            for camera_id in cameras:
                conn.execute(
                    "INSERT INTO incident_cameras (incident_id, camera_id, linked_by, linked_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (new_id, camera_id, opened_by, now),
                )
        found = self._get(new_id)
        assert found is not None
        return found

    def _link(self, incident_id: str, cameras: tuple[str, ...], linked_by: str) -> None:
        now = self._clock()
        with self._db.transaction() as conn:
            for camera_id in cameras:
                conn.execute(
                    "INSERT INTO incident_cameras (incident_id, camera_id, linked_by, linked_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (incident_id, camera_id, linked_by, now),
                )

    def _close(self, incident_id: str, closed_by: str) -> bool:
        cursor = self._db.conn.execute(
            "UPDATE incidents SET active = 0, closed_by = ?, closed_at = ?"
            " WHERE id = ? AND active = 1",
            (closed_by, self._clock(), incident_id),
        )
        return cursor.rowcount > 0

    def _approve(self, incident_id: str, approved_by: str, reason: str) -> bool:
        cursor = self._db.conn.execute(
            "INSERT OR IGNORE INTO incident_approvals (incident_id, approved_by, approved_at,"
            " reason) VALUES (?, ?, ?, ?)", (incident_id, approved_by, self._clock(), reason))
        return cursor.rowcount > 0

    def _approval_of(self, incident_id: str) -> dict[str, Any] | None:
        row = self._db.conn.execute(
            "SELECT approved_by, approved_at, reason FROM incident_approvals"
            " WHERE incident_id = ?", (incident_id,)).fetchone()
        return None if row is None else {"approved_by": row["approved_by"],
                                         "approved_at": float(row["approved_at"]),
                                         "reason": row["reason"]}

    def _active_for_camera(self, camera_id: str) -> list[str]:
        rows = self._db.conn.execute(
            "SELECT i.id FROM incidents i JOIN incident_cameras c ON c.incident_id = i.id"
            " WHERE c.camera_id = ? AND i.active = 1 ORDER BY i.opened_at DESC",
            (camera_id,),
        ).fetchall()
        return [str(row[0]) for row in rows]
