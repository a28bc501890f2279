"""Footage requests: an investigator asks camera owners for a time range, for a case.

One request names a case number, a reason, a time range and cameras; each camera is an item
decided by its owner (cameras of several owners can be in one request). An item is ``pending``
until its owner approves or declines it, or the owner's policy approves it at once
(``auto_approve``, optionally only for ranges up to ``max_hours``). Decisions are final.

Approving an item:
- records the approval with the security core (``rtcc.access.FootageGrants``) as a grant of the
  requested range of recorded footage, to the requester, valid for
  ``evidence.request_valid_days``; it never allows live video;
- places a legal hold on the camera's range for the case;
- lets the owner's agent upload that range (``evidence.uploads``).
A declined item accepts no upload at all.

The public methods that read or write are async: their statements (the ``_``-prefixed methods)
run on the evidence store's thread.

The request's overall status: ``pending`` (some owner has not decided), ``approved``,
``declined``, or ``partly_approved``; then, as the agents work, ``receiving`` (uploading),
``received`` (complete), ``failed`` or ``partly_received`` (some cameras failed). Each item
shows its own: ``approved`` -> ``receiving`` (the agent announced its first segment) ->
``received`` (the agent said every segment was sent) or ``failed`` (the agent could not
deliver; ``failure`` says why, e.g. the range is no longer in its buffer). A failed item
accepts no more uploads.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evidence.store import AsyncEvidenceStore, EvidenceStore
from recording.holds import add_hold
from rtcc.access import FootageApproval, FootageGrants
from rtcc.db import Row
from rtcc.policy import Role
from rtcc.principal import Principal

PENDING = "pending"
APPROVED = "approved"
DECLINED = "declined"
RECEIVING = "receiving"
RECEIVED = "received"
FAILED = "failed"
GRANTED = frozenset({APPROVED, RECEIVING, RECEIVED})
POLICY_MODES = frozenset({"manual", "auto_approve"})
SEES_ALL = frozenset({Role.ADMIN, Role.SUPERVISOR})


@dataclass(frozen=True, slots=True)
class Item:
    camera_id: str
    owner_id: str
    status: str
    decided_by: str | None
    decided_at: float | None
    auto: bool
    note: str
    valid_until: float | None
    uploaded_segments: int = 0
    uploaded_bytes: int = 0
    failure: str = ""
    recorded_segments: int = 0
    """Segments the server itself recorded of this camera over the requested range."""
    announced_bytes: int = 0
    """What the owner's agent announced it will upload (received so far: ``received_bytes``)."""
    received_bytes: int = 0

    @property
    def state(self) -> tuple[str, str]:
        """(state, what it means), from what the server knows, for both sides' screens."""
        if self.status == PENDING:
            return "waiting_for_owner", "waiting for the owner to decide"
        if self.status == DECLINED:
            return "declined", "the owner declined" + (f": {self.note}" if self.note else "")
        if self.status == FAILED:
            return "no_footage", ("no footage for that time: "
                                  + (self.failure or "the owner's agent could not deliver it"))
        if self.status == RECEIVED:
            return "uploaded_verified", (f"uploaded: {self.uploaded_segments} segment(s), each "
                                         "SHA-256 checked on arrival")
        if self.status == RECEIVING:
            percent = (100 * self.received_bytes // self.announced_bytes
                       if self.announced_bytes else 0)
            return "uploading", (f"approved, uploading: {self.uploaded_segments} segment(s) in,"
                                 f" {percent}% of what the agent announced")
        if self.recorded_segments:
            return "recorded", (f"approved; recorded on the server ({self.recorded_segments} "
                                "segment(s) over the range)")
        return "approved_no_footage", (
            "approved, but the server holds no recording of this camera for that time and "
            "nothing has been uploaded yet; waiting for the owner's agent to upload it (a "
            "camera without an agent buffer has no footage to send)")

    def as_json(self) -> dict[str, Any]:
        state, detail = self.state
        return {
            "camera_id": self.camera_id, "owner_id": self.owner_id, "status": self.status,
            "decided_by": self.decided_by, "decided_at": self.decided_at,
            "auto_approved": self.auto, "note": self.note, "valid_until": self.valid_until,
            "uploaded_segments": self.uploaded_segments, "uploaded_bytes": self.uploaded_bytes,
            "failure": self.failure, "state": state, "detail": detail,
            "recorded_segments": self.recorded_segments,
            "upload_progress": (round(self.received_bytes / self.announced_bytes, 4)
                                if self.announced_bytes else None),
        }


@dataclass(frozen=True)
class FootageRequest:
    id: str
    requester_id: int
    requester: str
    requester_role: str
    case_number: str
    reason: str
    incident: str
    start: float
    end: float
    created: float
    items: tuple[Item, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        return overall_status(self.items)

    def item(self, camera_id: str) -> Item | None:
        return next((item for item in self.items if item.camera_id == camera_id), None)

    def as_json(self, items: Sequence[Item] | None = None) -> dict[str, Any]:
        shown = self.items if items is None else tuple(items)
        return {
            "id": self.id, "status": overall_status(shown), "case": self.case_number,
            "reason": self.reason, "incident": self.incident, "start": self.start,
            "end": self.end, "requester": self.requester, "requester_role": self.requester_role,
            "created": self.created, "cameras": [item.as_json() for item in shown],
        }


def overall_status(items: Sequence[Item]) -> str:
    states = {item.status for item in items}
    if not states:
        return PENDING
    if PENDING in states:
        return PENDING
    if states <= {DECLINED}:
        return DECLINED
    if DECLINED in states:
        return "partly_approved"
    if states <= {RECEIVED}:
        return RECEIVED
    if FAILED in states and APPROVED not in states and RECEIVING not in states:
        # Nothing is still on its way and some camera's footage could not be delivered.
        return "partly_received" if RECEIVED in states else FAILED
    if RECEIVING in states or RECEIVED in states:
        return RECEIVING
    return APPROVED


@dataclass(frozen=True, slots=True)
class OwnerPolicy:
    owner_id: str
    mode: str = "manual"
    max_hours: float | None = None

    def approves(self, seconds: float) -> bool:
        if self.mode != "auto_approve":
            return False
        return self.max_hours is None or seconds <= self.max_hours * 3600.0

    def as_json(self) -> dict[str, Any]:
        return {"owner_id": self.owner_id, "mode": self.mode, "max_hours": self.max_hours}


class DecisionError(Exception):
    """A decision that cannot be taken (already decided, not the owner's camera)."""


class FootageRequests:
    def __init__(self, store: AsyncEvidenceStore, grants: FootageGrants, *,
                 valid_days: float) -> None:
        self._db = store
        self._store: EvidenceStore = store.tables
        self._grants = grants
        self._valid_seconds = valid_days * 86400.0

    # -- reading --------------------------------------------------------------------------------

    def _items(self, request_id: str) -> tuple[Item, ...]:
        rows = self._store.fetchall(
            "SELECT i.*, (SELECT COUNT(*) FROM segments s WHERE s.request_id = i.request_id"
            " AND s.camera_id = i.camera_id) AS segs, (SELECT COALESCE(SUM(s.bytes), 0) FROM"
            " segments s WHERE s.request_id = i.request_id AND s.camera_id = i.camera_id)"
            " AS seg_bytes,"
            " (SELECT COUNT(*) FROM segments s WHERE s.camera_id = i.camera_id"
            " AND s.origin = 'server' AND s.utc_start <= r.utc_end"
            " AND COALESCE(s.utc_end, s.utc_start) >= r.utc_start) AS recorded,"
            " (SELECT COALESCE(SUM(u.size), 0) FROM uploads u WHERE u.request_id = i.request_id"
            " AND u.camera_id = i.camera_id) AS announced,"
            " (SELECT COALESCE(SUM(u.received), 0) FROM uploads u"
            " WHERE u.request_id = i.request_id AND u.camera_id = i.camera_id) AS received"
            " FROM footage_request_items i JOIN footage_requests r ON r.id = i.request_id"
            " WHERE i.request_id = ? ORDER BY i.camera_id", (request_id,))
        return tuple(
            Item(camera_id=row["camera_id"], owner_id=row["owner_id"], status=row["status"],
                 decided_by=row["decided_by"], decided_at=row["decided_at"],
                 auto=bool(row["auto"]), note=row["note"], valid_until=row["valid_until"],
                 uploaded_segments=int(row["segs"]), uploaded_bytes=int(row["seg_bytes"]),
                 failure=row["failure"], recorded_segments=int(row["recorded"]),
                 announced_bytes=int(row["announced"]), received_bytes=int(row["received"]))
            for row in rows
        )

    def _from_row(self, row: Row) -> FootageRequest:
        return FootageRequest(
            id=row["id"], requester_id=int(row["requester_id"]), requester=row["requester"],
            requester_role=row["requester_role"], case_number=row["case_number"],
            reason=row["reason"], incident=row["incident"], start=float(row["utc_start"]),
            end=float(row["utc_end"]), created=float(row["created"]),
            items=self._items(row["id"]),
        )

    async def get(self, request_id: str) -> FootageRequest | None:
        return await self._db.run(self._get, request_id)

    def _get(self, request_id: str) -> FootageRequest | None:
        row = self._store.fetchone("SELECT * FROM footage_requests WHERE id = ?", (request_id,))
        return None if row is None else self._from_row(row)

    def visible_items(self, request: FootageRequest, principal: Principal) -> tuple[Item, ...]:
        """The items of a request this principal may see (empty: the request is not theirs)."""
        if principal.role in SEES_ALL:
            return request.items
        if principal.role == Role.INVESTIGATOR:
            return request.items if request.requester_id == principal.user_id else ()
        if principal.role in (Role.OWNER, Role.AGENT) and principal.owner_id:
            mine = tuple(item for item in request.items if item.owner_id == principal.owner_id)
            if principal.role == Role.AGENT:
                mine = tuple(item for item in mine if item.status in GRANTED)
            return mine
        return ()

    async def list_for(self, principal: Principal, *, limit: int = 200
                       ) -> list[FootageRequest]:
        return await self._db.run(self._list_for, principal, limit)

    def _list_for(self, principal: Principal, limit: int) -> list[FootageRequest]:
        limit = max(1, min(limit, 1000))
        if principal.role in SEES_ALL:
            rows = self._store.fetchall(
                "SELECT * FROM footage_requests ORDER BY created DESC LIMIT ?", (limit,))
        elif principal.role == Role.INVESTIGATOR:
            rows = self._store.fetchall(
                "SELECT * FROM footage_requests WHERE requester_id = ? ORDER BY created DESC"
                " LIMIT ?", (principal.user_id, limit))
        elif principal.role in (Role.OWNER, Role.AGENT) and principal.owner_id:
            rows = self._store.fetchall(
                "SELECT * FROM footage_requests WHERE id IN (SELECT request_id FROM"
                " footage_request_items WHERE owner_id = ?) ORDER BY created DESC LIMIT ?",
                (principal.owner_id, limit))
        else:
            rows = []
        return [self._from_row(row) for row in rows]

    # -- creating and deciding ------------------------------------------------------------------

    @staticmethod
    def new_id() -> str:
        return f"fr-{secrets.token_hex(6)}"

    async def create(self, request_id: str, requester: Principal,
                     cameras: Sequence[tuple[str, str]], *, start: float, end: float,
                     case_number: str, reason: str, incident: str, now: float
                     ) -> FootageRequest:
        """Store a new request (items pending), then apply each owner's policy."""
        await self._db.run(self._insert, request_id, requester, cameras, start, end,
                           case_number, reason, incident, now)
        for camera_id, owner_id in cameras:
            if (await self.policy(owner_id)).approves(end - start):
                await self._decide_one(request_id, camera_id, APPROVED, "owner's policy", "",
                                       now, auto=True)
        found = await self.get(request_id)
        assert found is not None
        return found

    def _insert(self, request_id: str, requester: Principal, cameras: Sequence[tuple[str, str]],
                start: float, end: float, case_number: str, reason: str, incident: str,
                now: float) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO footage_requests (id, requester_id, requester, requester_role,"
                " case_number, reason, incident, utc_start, utc_end, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (request_id, requester.user_id, requester.username, str(requester.role),
                 case_number, reason, incident, start, end, now),
            )
            for camera_id, owner_id in cameras:
                conn.execute(
                    "INSERT INTO footage_request_items (request_id, camera_id, owner_id)"
                    " VALUES (?, ?, ?)", (request_id, camera_id, owner_id))

    def choose(self, request: FootageRequest, principal: Principal, camera_ids: Sequence[str],
               owned: frozenset[str] | None = None) -> list[Item]:
        """The items a decision applies to (default: every pending item the principal may
        decide); raises DecisionError when one is not theirs or is already decided. ``owned``:
        the cameras the catalog says the principal owns now (None: trust the request's record).
        """
        mine = [item for item in request.items
                if principal.role == Role.ADMIN or (
                    item.owner_id == principal.owner_id
                    and (owned is None or item.camera_id in owned))]
        if camera_ids:
            chosen = []
            for camera_id in camera_ids:
                item = next((i for i in mine if i.camera_id == camera_id), None)
                if item is None:
                    raise DecisionError(f"camera {camera_id!r} is not one of your cameras in "
                                        "this request")
                chosen.append(item)
        else:
            chosen = [item for item in mine if item.status == PENDING]
        if not chosen and mine:
            raise DecisionError("every camera of yours in this request was already decided; "
                                "decisions are final")
        if not chosen:
            raise DecisionError("nothing of yours in this request is waiting for a decision")
        decided = [item for item in chosen if item.status != PENDING]
        if decided:
            raise DecisionError(f"camera {decided[0].camera_id!r} was already "
                                f"{decided[0].status}; decisions are final")
        return chosen

    async def decide(self, request: FootageRequest, items: Sequence[Item], approve: bool,
                     by: str, note: str, now: float) -> list[Item]:
        """Apply a decision to items returned by ``choose``; returns them updated."""
        status = APPROVED if approve else DECLINED
        for item in items:
            await self._decide_one(request.id, item.camera_id, status, by, note, now)
        updated = await self.get(request.id)
        assert updated is not None
        cameras = {item.camera_id for item in items}
        return [item for item in updated.items if item.camera_id in cameras]

    async def _decide_one(self, request_id: str, camera_id: str, status: str, by: str,
                          note: str, now: float, *, auto: bool = False) -> None:
        valid_until = now + self._valid_seconds if status == APPROVED else None
        request = await self._db.run(self._record_decision, request_id, camera_id, status, by,
                                     note, now, auto, valid_until)
        if request is None:
            return
        await self._grants.record_approval(FootageApproval(
            f"{request_id}:{camera_id}", camera_id, request.requester_id,
            purpose=f"case {request.case_number}: {request.reason}"[:300], decided_by=by,
            decided_at=now, valid_until=valid_until, start=request.start, end=request.end,
            owner_id=next((item.owner_id for item in request.items
                           if item.camera_id == camera_id), ""),
        ))
        await self._db.call(add_hold, camera_id=camera_id, case_number=request.case_number,
                            start=request.start, end=request.end,
                            reason=f"footage request {request_id}", created_by=by, now=now)

    def _record_decision(self, request_id: str, camera_id: str, status: str, by: str,
                         note: str, now: float, auto: bool, valid_until: float | None
                         ) -> FootageRequest | None:
        """Decide a pending item; returns its request when that approved it."""
        cursor = self._store.execute(
            "UPDATE footage_request_items SET status = ?, decided_by = ?, decided_at = ?,"
            " note = ?, auto = ?, valid_until = ? WHERE request_id = ? AND camera_id = ?"
            " AND status = 'pending'",
            (status, by, now, note[:500], int(auto), valid_until, request_id, camera_id),
        )
        if cursor.rowcount == 0 or status != APPROVED:
            return None
        request = self._get(request_id)
        assert request is not None
        return request

    async def mark(self, request_id: str, camera_id: str, status: str) -> None:
        """Upload progress on a granted item: ``receiving`` or ``received``."""
        await self._db.run(self._mark, request_id, camera_id, status)

    async def mark_failed(self, request_id: str, camera_id: str, reason: str) -> bool:
        """The agent cannot deliver a granted item that is not complete yet; False when the
        item was not in that state."""
        return await self._db.run(self._mark_failed, request_id, camera_id, reason)

    async def policy(self, owner_id: str) -> OwnerPolicy:
        return await self._db.run(self._policy, owner_id)

    async def set_policy(self, policy: OwnerPolicy, by: str, now: float) -> None:
        if policy.mode not in POLICY_MODES:
            raise ValueError(f"mode must be one of {sorted(POLICY_MODES)}")
        await self._db.run(self._set_policy, policy, by, now)

    def _mark(self, request_id: str, camera_id: str, status: str) -> None:
        self._store.execute(
            "UPDATE footage_request_items SET status = ? WHERE request_id = ? AND camera_id = ?"
            " AND status IN ('approved', 'receiving', 'received')",
            (status, request_id, camera_id),
        )

    def _mark_failed(self, request_id: str, camera_id: str, reason: str) -> bool:
        cursor = self._store.execute(
            "UPDATE footage_request_items SET status = 'failed', failure = ?"
            " WHERE request_id = ? AND camera_id = ? AND status IN ('approved', 'receiving')",
            (reason[:500], request_id, camera_id),
        )
        return cursor.rowcount > 0

    # -- owners' policies -----------------------------------------------------------------------

    def _policy(self, owner_id: str) -> OwnerPolicy:
        row = self._store.fetchone("SELECT * FROM owner_policies WHERE owner_id = ?",
                                   (owner_id,))
        if row is None:
            return OwnerPolicy(owner_id)
        return OwnerPolicy(owner_id, row["mode"], row["max_hours"])

    def _set_policy(self, policy: OwnerPolicy, by: str, now: float) -> None:
        self._store.execute(
            "INSERT INTO owner_policies (owner_id, mode, max_hours, updated_by, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(owner_id) DO UPDATE SET mode = excluded.mode,"
            " max_hours = excluded.max_hours, updated_by = excluded.updated_by,"
            " updated_at = excluded.updated_at",
            (policy.owner_id, policy.mode, policy.max_hours, by, now),
        )
