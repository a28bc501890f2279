"""The tamper-evident audit log.

Append-only (SQLite triggers refuse UPDATE and DELETE); every entry carries the SHA-256 hash of
the previous entry and its own hash over all its fields, so an altered, deleted or reordered entry
breaks the chain. ``verify_chain`` walks it. Times are UTC with millisecond resolution.

A write that fails raises ``AuditWriteError``: the caller must refuse what it was about to do.

``AuditWriter`` issues the statements on the thread it is called from: a command-line program's
own, or the security store's thread, where the server's ``AuditLog`` runs it so that no audit
write ever holds up the event loop.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rtcc.errors import AuditWriteError
from rtcc.offload import StoreClosed
from security.store import Clock, SecurityStore, SecurityTables

log = logging.getLogger(__name__)

GENESIS = "0" * 64
MAX_FIELD = 500


def iso_utc(ts_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def _clip(value: str) -> str:
    return value if len(value) <= MAX_FIELD else value[:MAX_FIELD] + "..."


def entry_hash(
    entry_id: int,
    ts_ms: int,
    actor: str,
    role: str,
    action: str,
    target: str,
    camera_id: str,
    owner_id: str,
    outcome: str,
    source: str,
    details: str,
    prev_hash: str,
) -> str:
    material = json.dumps(
        [entry_id, ts_ms, actor, role, action, target, camera_id, owner_id, outcome, source,
         details, prev_hash],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts_ms: int
    actor: str
    role: str
    action: str
    target: str
    camera_id: str
    owner_id: str
    outcome: str
    source: str
    details: str
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AuditEntry:
        return cls(
            id=int(row["id"]), ts_ms=int(row["ts_ms"]), actor=row["actor"], role=row["role"],
            action=row["action"], target=row["target"], camera_id=row["camera_id"],
            owner_id=row["owner_id"], outcome=row["outcome"], source=row["source"],
            details=row["details"], prev_hash=row["prev_hash"], hash=row["hash"],
        )

    def computed_hash(self) -> str:
        return entry_hash(
            self.id, self.ts_ms, self.actor, self.role, self.action, self.target, self.camera_id,
            self.owner_id, self.outcome, self.source, self.details, self.prev_hash,
        )

    def as_json(self) -> dict[str, Any]:
        try:
            details: Any = json.loads(self.details)
        except ValueError:
            details = self.details
        return {
            "id": self.id,
            "time": iso_utc(self.ts_ms),
            "ts_ms": self.ts_ms,
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "target": self.target,
            "camera_id": self.camera_id,
            "owner_id": self.owner_id,
            "outcome": self.outcome,
            "source": self.source,
            "details": details,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    head: str
    entry_id: int | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"audit log intact: {self.entries} entries, head {self.head}"
        return f"audit log tampered at entry {self.entry_id}: {self.reason}"


class AuditWriter:
    """The audit log on an open ``SecurityTables``, used on the thread that owns it."""

    def __init__(self, store: SecurityTables, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def append(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str = "",
        camera_id: str = "",
        owner_id: str = "",
        outcome: str = "ok",
        source: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Write one entry durably or raise ``AuditWriteError``."""
        ts_ms = int(self._clock() * 1000)
        detail_text = json.dumps(
            dict(details or {}), ensure_ascii=False, sort_keys=True, separators=(",", ":"),
            default=str,
        )
        fields = (_clip(actor), _clip(role), _clip(action), _clip(target), _clip(camera_id),
                  _clip(owner_id), _clip(outcome), _clip(source))
        try:
            with self._store.transaction() as conn:
                head = conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
                last = conn.execute(
                    "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1"
                ).fetchone()
                prev_hash = GENESIS if last is None else str(last["hash"])
                seq = conn.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'audit'"
                ).fetchone()
                entry_id = (0 if seq is None else int(seq["seq"])) + 1
                if head is not None and (last is None or int(head["last_id"]) != int(last["id"])):
                    # The stored head disagrees with the table: someone removed entries. Keep
                    # chaining from the recorded head so verify() still reports the gap.
                    prev_hash = str(head["last_hash"])
                digest = entry_hash(entry_id, ts_ms, *fields, detail_text, prev_hash)
                conn.execute(
                    "INSERT INTO audit (id, ts_ms, actor, role, action, target, camera_id,"
                    " owner_id, outcome, source, details, prev_hash, hash)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (entry_id, ts_ms, *fields, detail_text, prev_hash, digest),
                )
                conn.execute(
                    "INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, ?, ?)"
                    " ON CONFLICT(one) DO UPDATE SET last_id = excluded.last_id,"
                    " last_hash = excluded.last_hash",
                    (entry_id, digest),
                )
        except (sqlite3.Error, ValueError) as exc:
            log.error("AUDIT WRITE FAILED (action %s by %s): %s", action, actor, exc)
            raise AuditWriteError(
                f"the audit log could not record {action!r}; the action was refused"
            ) from exc
        return AuditEntry(entry_id, ts_ms, *fields, detail_text, prev_hash, digest)

    def query(
        self,
        *,
        camera_id: str | None = None,
        owner_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since_ms: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Newest first."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("camera_id", camera_id), ("owner_id", owner_id),
                              ("actor", actor), ("action", action)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since_ms is not None:
            clauses.append("ts_ms >= ?")
            params.append(since_ms)
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        params.append(max(1, min(limit, 1000)))
        rows = self._store.conn.execute(
            "SELECT * FROM audit" + where + " ORDER BY id DESC LIMIT ?",  # noqa: S608 (fixed columns)
            params,
        ).fetchall()
        return [AuditEntry.from_row(row) for row in rows]


class AuditLog:
    """``rtcc.access.AuditSink``: the server's audit log. Each write runs on the security
    store's thread, in the order the calls were made."""

    def __init__(self, store: SecurityStore, clock: Clock) -> None:
        self._store = store
        self._writer = AuditWriter(store.tables, clock)

    async def append(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str = "",
        camera_id: str = "",
        owner_id: str = "",
        outcome: str = "ok",
        source: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Write one entry durably or raise ``AuditWriteError``."""
        write = functools.partial(
            self._writer.append, actor=actor, role=role, action=action, target=target,
            camera_id=camera_id, owner_id=owner_id, outcome=outcome, source=source,
            details=details)
        try:
            return await self._store.run(write)
        except StoreClosed as exc:
            log.error("AUDIT WRITE FAILED (action %s by %s): %s", action, actor, exc)
            raise AuditWriteError(
                f"the audit log could not record {action!r}; the action was refused"
            ) from exc

    async def query(
        self,
        *,
        camera_id: str | None = None,
        owner_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since_ms: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Newest first."""
        return await self._store.run(functools.partial(
            self._writer.query, camera_id=camera_id, owner_id=owner_id, actor=actor,
            action=action, since_ms=since_ms, before_id=before_id, limit=limit))


def verify_chain(store: SecurityTables) -> VerifyResult:
    """Walk the whole log; report the first entry that was altered, removed or moved."""
    conn = store.conn
    expected_prev = GENESIS
    expected_id = 1
    count = 0
    for row in conn.execute("SELECT * FROM audit ORDER BY id"):
        entry = AuditEntry.from_row(row)
        if entry.id != expected_id:
            missing = (str(expected_id) if entry.id == expected_id + 1
                       else f"{expected_id}-{entry.id - 1}")
            return VerifyResult(False, count, expected_prev, expected_id,
                                f"entries {missing} are missing (deleted)")
        if entry.prev_hash != expected_prev:
            return VerifyResult(False, count, expected_prev, entry.id,
                                "link to the previous entry is broken (an entry before it was "
                                "altered, deleted or reordered)")
        if entry.computed_hash() != entry.hash:
            return VerifyResult(False, count, expected_prev, entry.id,
                                "contents do not match the entry's hash (altered)")
        expected_prev = entry.hash
        expected_id += 1
        count += 1
    last_id = expected_id - 1
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
    head = conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
    recorded_last = max(int(seq["seq"]) if seq is not None else 0,
                        int(head["last_id"]) if head is not None else 0)
    if recorded_last > last_id:
        return VerifyResult(False, count, expected_prev, last_id + 1,
                            f"entries {last_id + 1}-{recorded_last} are missing (deleted from "
                            "the end)")
    if head is not None and str(head["last_hash"]) != expected_prev:
        return VerifyResult(False, count, expected_prev, last_id,
                            "the last entry does not match the recorded head hash (altered)")
    return VerifyResult(True, count, expected_prev)
