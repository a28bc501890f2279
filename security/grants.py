"""Grants: what allows each media access beyond the owner's standing consent.

Every media access is allowed by exactly one grant:

- ``sharing``: the owner's sharing level and window (``live_always`` cameras, within their
  windows). Derived from the catalog's consent; no row is stored.
- ``footage_request``: an owner's approval of a footage request; a ``recorded`` grant of the
  requested range, to the requester, for ``evidence.request_valid_days``. Never live video.
- ``incident``: a camera linked to an active incident or panic alert; a ``live`` grant to the
  incident (every staff viewer working it), for ``security.emergency_grant_minutes``. Linking
  the camera again renews it; closing the incident ends it.

The stored grants live in the security store (table ``grants``); the ``_``-free functions taking
``SecurityTables`` run on the store's thread, ``GrantBook`` is their async face.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rtcc.access import FootageApproval
from rtcc.db import Row
from security.store import Clock, SecurityStore, SecurityTables

LIVE = "live"
RECORDED = "recorded"
PTZ = "ptz"
FOOTAGE_REQUEST = "footage_request"
INCIDENT = "incident"
SHARING = "sharing"
INCIDENT_CLOSED = "the incident was closed"
"""The revoke reason of an incident's grants when it closes (any other is a withdrawal)."""

Change = Literal["create", "renew", "refused"]


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    subject_kind: str
    """``user`` (a user id), ``role`` (a role name) or ``incident`` (an incident id)."""
    subject: str
    camera_id: str
    kind: str
    basis: str
    basis_id: str
    """The approved request item or the incident the grant comes from."""
    range_start: float | None
    range_end: float | None
    valid_from: float
    valid_until: float | None
    approved_by: str
    purpose: str
    created: float
    revoked: float | None
    revoked_by: str | None
    revoke_reason: str

    def valid_at(self, now: float) -> bool:
        return (self.revoked is None and self.valid_from <= now
                and (self.valid_until is None or self.valid_until > now))

    def state(self, now: float) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.valid_until is not None and self.valid_until <= now:
            return "expired"
        return "active" if self.valid_from <= now else "pending"

    def summary(self) -> dict[str, Any]:
        """The grant as a view's audit entries name it."""
        return {"id": self.id, "basis": self.basis, "kind": self.kind,
                "subject": f"{self.subject_kind}:{self.subject}",
                "valid_until": self.valid_until}

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id, "subject": {"kind": self.subject_kind, "id": self.subject},
            "camera_id": self.camera_id, "kind": self.kind, "basis": self.basis,
            "basis_id": self.basis_id,
            "range": (None if self.range_start is None
                      else {"from": self.range_start, "to": self.range_end}),
            "valid_from": self.valid_from, "valid_until": self.valid_until,
            "approved_by": self.approved_by, "purpose": self.purpose, "created": self.created,
            "revoked": self.revoked, "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason, "state": self.state(now),
            "description": describe(self),
        }


def describe(grant: Grant) -> str:
    """The grant in words, for the owner."""
    if grant.basis == FOOTAGE_REQUEST:
        return (f"Recorded footage of the requested time only, for footage request "
                f"{grant.basis_id.rsplit(':', 1)[0]} ({grant.purpose}); approved by "
                f"{grant.approved_by}. Never live video.")
    if grant.basis == INCIDENT:
        return (f"Live video for staff working incident {grant.subject}, linked by "
                f"{grant.approved_by}; it ends by itself unless linked again, and when the "
                "incident closes.")
    return f"{grant.kind} access ({grant.basis})"


def _grant(row: Row) -> Grant:
    return Grant(
        id=row["id"], subject_kind=row["subject_kind"], subject=row["subject"],
        camera_id=row["camera_id"], kind=row["kind"], basis=row["basis"],
        basis_id=row["basis_id"], range_start=row["range_start"], range_end=row["range_end"],
        valid_from=float(row["valid_from"]), valid_until=row["valid_until"],
        approved_by=row["approved_by"], purpose=row["purpose"], created=float(row["created"]),
        revoked=row["revoked"], revoked_by=row["revoked_by"],
        revoke_reason=row["revoke_reason"],
    )


def new_id() -> str:
    return f"g-{secrets.token_hex(8)}"


def get(tables: SecurityTables, grant_id: str) -> Grant | None:
    row = tables.conn.execute("SELECT * FROM grants WHERE id = ?", (grant_id,)).fetchone()
    return None if row is None else _grant(row)


def of_camera(tables: SecurityTables, camera_id: str, limit: int = 500) -> list[Grant]:
    rows = tables.conn.execute(
        "SELECT * FROM grants WHERE camera_id = ? ORDER BY created DESC LIMIT ?",
        (camera_id, limit),
    ).fetchall()
    return [_grant(row) for row in rows]


def of_incident(tables: SecurityTables, incident_id: str) -> list[Grant]:
    rows = tables.conn.execute(
        "SELECT * FROM grants WHERE basis = 'incident' AND basis_id = ?"
        " ORDER BY camera_id, created DESC",
        (incident_id,),
    ).fetchall()
    return [_grant(row) for row in rows]


def record_footage_approval(tables: SecurityTables, approval: FootageApproval) -> Grant | None:
    """A ``recorded`` grant of the approved range; None when this approval is recorded already."""
    with tables.transaction() as conn:
        found = conn.execute(
            "SELECT 1 FROM grants WHERE basis = 'footage_request' AND basis_id = ?",
            (approval.approval_id,),
        ).fetchone()
        if found is not None:
            return None
        grant_id = new_id()
        conn.execute(
            "INSERT INTO grants (id, subject_kind, subject, camera_id, kind, basis, basis_id,"
            " range_start, range_end, valid_from, valid_until, approved_by, purpose, created)"
            " VALUES (?, 'user', ?, ?, 'recorded', 'footage_request', ?, ?, ?, ?, ?, ?, ?, ?)",
            (grant_id, str(approval.user_id), approval.camera_id, approval.approval_id,
             approval.start, approval.end, approval.decided_at, approval.valid_until,
             approval.decided_by, approval.purpose, approval.decided_at),
        )
    return get(tables, grant_id)


def recorded_grant_for(tables: SecurityTables, camera_id: str, user_id: int, start: float,
                       end: float, now: float) -> str | None:
    row = tables.conn.execute(
        "SELECT id FROM grants WHERE camera_id = ? AND subject_kind = 'user' AND subject = ?"
        " AND kind = 'recorded' AND revoked IS NULL AND valid_from <= ?"
        " AND (valid_until IS NULL OR valid_until > ?) AND range_start <= ? AND range_end >= ?"
        " ORDER BY created DESC LIMIT 1",
        (camera_id, str(user_id), now, now, start, end),
    ).fetchone()
    return None if row is None else str(row["id"])


def recorded_ranges_for(tables: SecurityTables, camera_id: str, user_id: int, now: float
                        ) -> list[tuple[float, float]]:
    rows = tables.conn.execute(
        "SELECT range_start, range_end FROM grants WHERE camera_id = ? AND subject_kind = 'user'"
        " AND subject = ? AND kind = 'recorded' AND revoked IS NULL AND valid_from <= ?"
        " AND (valid_until IS NULL OR valid_until > ?) AND range_start IS NOT NULL"
        " ORDER BY range_start",
        (camera_id, str(user_id), now, now),
    ).fetchall()
    return [(float(row["range_start"]), float(row["range_end"])) for row in rows]


def incident_grant_for(tables: SecurityTables, camera_id: str, incident_id: str, start: float,
                       end: float) -> str | None:
    """The incident's grant on the camera whose validity covers ``start``..``end``: from its
    creation to its expiry or, when revoked (the incident closed, the owner withdrew it), to its
    revocation. Footage recorded then is footage the camera was opened for."""
    row = tables.conn.execute(
        "SELECT id FROM grants WHERE basis = 'incident' AND basis_id = ? AND camera_id = ?"
        " AND valid_from <= ? AND COALESCE(valid_until, ?) >= ? AND COALESCE(revoked, ?) >= ?"
        " ORDER BY created DESC LIMIT 1",
        (incident_id, camera_id, start, end, end, end, end),
    ).fetchone()
    return None if row is None else str(row["id"])


def grant_incident(tables: SecurityTables, incident_id: str, cameras: Sequence[str],
                   approved_by: str, purpose: str, now: float, seconds: float
                   ) -> list[tuple[Grant, Change]]:
    """Create or renew the incident's live grant on each camera, valid ``seconds`` from now.
    A grant the owner revoked is not renewed (``refused``). A grant that already expired is not
    stretched over the gap: a new one starts now, so footage from the gap stays uncovered."""
    changes: list[tuple[str, Change]] = []
    with tables.transaction() as conn:
        for camera_id in cameras:
            row = conn.execute(
                "SELECT id, revoked, revoked_by, valid_until FROM grants WHERE basis = 'incident'"
                " AND basis_id = ? AND camera_id = ? ORDER BY created DESC LIMIT 1",
                (incident_id, camera_id),
            ).fetchone()
            if row is not None and row["revoked"] is not None:
                changes.append((str(row["id"]), "refused"))
                continue
            if row is not None and (row["valid_until"] is None or float(row["valid_until"]) > now):
                conn.execute(
                    "UPDATE grants SET valid_until = ?, expiry_audited = 0 WHERE id = ?",
                    (now + seconds, row["id"]),
                )
                changes.append((str(row["id"]), "renew"))
                continue
            grant_id = new_id()
            conn.execute(
                "INSERT INTO grants (id, subject_kind, subject, camera_id, kind, basis, basis_id,"
                " valid_from, valid_until, approved_by, purpose, created)"
                " VALUES (?, 'incident', ?, ?, 'live', 'incident', ?, ?, ?, ?, ?, ?)",
                (grant_id, incident_id, camera_id, incident_id, now, now + seconds, approved_by,
                 purpose, now),
            )
            changes.append((grant_id, "create"))
    out: list[tuple[Grant, Change]] = []
    for grant_id, change in changes:
        grant = get(tables, grant_id)
        if grant is not None:
            out.append((grant, change))
    return out


def revoke(tables: SecurityTables, grant_id: str, by: str, reason: str, now: float
           ) -> Grant | None:
    """Revoke one grant; None when it did not exist or was revoked already."""
    cursor = tables.conn.execute(
        "UPDATE grants SET revoked = ?, revoked_by = ?, revoke_reason = ?"
        " WHERE id = ? AND revoked IS NULL",
        (now, by, reason[:300], grant_id),
    )
    return get(tables, grant_id) if cursor.rowcount else None


def revoke_incident(tables: SecurityTables, incident_id: str, by: str, reason: str, now: float
                    ) -> list[Grant]:
    """Revoke every grant of an incident that is still in force (it closed)."""
    rows = tables.conn.execute(
        "SELECT id FROM grants WHERE basis = 'incident' AND basis_id = ? AND revoked IS NULL"
        " AND (valid_until IS NULL OR valid_until > ?)",
        (incident_id, now),
    ).fetchall()
    revoked = [revoke(tables, str(row["id"]), by, reason, now) for row in rows]
    return [grant for grant in revoked if grant is not None]


def incident_grants_for(tables: SecurityTables, camera_id: str, now: float) -> list[Grant]:
    """The valid incident grants on a camera whose incident is still active, newest first."""
    rows = tables.conn.execute(
        "SELECT g.* FROM grants g JOIN incidents i ON i.id = g.basis_id"
        " WHERE g.basis = 'incident' AND g.camera_id = ? AND g.revoked IS NULL"
        " AND g.valid_from <= ? AND (g.valid_until IS NULL OR g.valid_until > ?)"
        " AND i.active = 1 ORDER BY i.opened_at DESC",
        (camera_id, now, now),
    ).fetchall()
    return [_grant(row) for row in rows]


def take_expired(tables: SecurityTables, now: float) -> list[Grant]:
    """Grants that expired and whose expiry is not audited yet; marked as audited."""
    with tables.transaction() as conn:
        rows = conn.execute(
            "SELECT * FROM grants WHERE revoked IS NULL AND valid_until IS NOT NULL"
            " AND valid_until <= ? AND expiry_audited = 0 ORDER BY valid_until, id",
            (now,),
        ).fetchall()
        conn.executemany("UPDATE grants SET expiry_audited = 1 WHERE id = ?",
                         [(row["id"],) for row in rows])
    return [_grant(row) for row in rows]


class GrantBook:
    """The grants, from the event loop: every statement runs on the store's thread."""

    def __init__(self, store: SecurityStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def get(self, grant_id: str) -> Grant | None:
        return await self._store.call(get, grant_id)

    async def of_camera(self, camera_id: str) -> list[Grant]:
        return await self._store.call(of_camera, camera_id)

    async def of_incident(self, incident_id: str) -> list[Grant]:
        return await self._store.call(of_incident, incident_id)

    async def record_footage_approval(self, approval: FootageApproval) -> Grant | None:
        return await self._store.call(record_footage_approval, approval)

    async def recorded_grant_for(self, camera_id: str, user_id: int, start: float, end: float,
                                 now: float) -> str | None:
        return await self._store.call(recorded_grant_for, camera_id, user_id, start, end, now)

    async def incident_grant_for(self, camera_id: str, incident_id: str, start: float,
                                 end: float) -> str | None:
        return await self._store.call(incident_grant_for, camera_id, incident_id, start, end)

    async def recorded_ranges_for(self, camera_id: str, user_id: int, now: float
                                  ) -> list[tuple[float, float]]:
        return await self._store.call(recorded_ranges_for, camera_id, user_id, now)

    async def grant_incident(self, incident_id: str, cameras: Sequence[str], approved_by: str,
                             purpose: str, seconds: float) -> list[tuple[Grant, Change]]:
        return await self._store.call(grant_incident, incident_id, cameras, approved_by,
                                      purpose, self._clock(), seconds)

    async def revoke(self, grant_id: str, by: str, reason: str) -> Grant | None:
        return await self._store.call(revoke, grant_id, by, reason, self._clock())

    async def revoke_incident(self, incident_id: str, by: str, reason: str) -> list[Grant]:
        return await self._store.call(revoke_incident, incident_id, by, reason, self._clock())

    async def incident_grants_for(self, camera_id: str, now: float) -> list[Grant]:
        return await self._store.call(incident_grants_for, camera_id, now)
