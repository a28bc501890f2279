"""The audit chain's rules: how an entry is hashed and linked to the one before it, where the
keyed entries begin, and the walk that checks a whole log. Only the data layer is needed, so the
store's schema can name the walk as its integrity check (``SCHEMA.verify``, run after
``rtcc db copy``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from rtcc.db import Row, SqlConnection
from rtcc.errors import RtccError

GENESIS = "0" * 64
KEYED_FROM = "keyed_from"
VERIFY_PAGE = 5000
"""Entries read per statement while walking the chain."""


class AuditChainBroken(RtccError):
    """The audit chain does not verify (after a copy: rows were lost, reordered or changed)."""


def iso_utc(ts_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


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
    key: bytes | None = None,
) -> str:
    """HMAC-SHA256 under ``key``; plain SHA-256 for entries written before the key existed."""
    material = json.dumps(
        [entry_id, ts_ms, actor, role, action, target, camera_id, owner_id, outcome, source,
         details, prev_hash],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    if key is None:
        return hashlib.sha256(material).hexdigest()
    return hmac.new(key, material, hashlib.sha256).hexdigest()


def boundary_tag(key: bytes, first_keyed: int) -> str:
    return hmac.new(key, f"rtcc audit keyed from {first_keyed}".encode("ascii"),
                    hashlib.sha256).hexdigest()


def read_boundary(conn: SqlConnection) -> tuple[int, str] | None:
    """(first keyed entry id, its tag) as stored, or None when no key was ever set up."""
    row = conn.fetchone("SELECT value FROM audit_meta WHERE name = ?", (KEYED_FROM,))
    if row is None:
        return None
    first, _, tag = str(row["value"]).partition(":")
    try:
        return int(first), tag
    except ValueError:
        return -1, tag  # damaged: the tag check fails and reports it


def last_assigned_id(conn: SqlConnection) -> int:
    """The highest entry id ever handed out: the recorded head and the table's last row, and on
    SQLite its AUTOINCREMENT counter too. Ids are never reused, so entries removed from the end
    leave a gap that verify reports."""
    found = [conn.scalar("SELECT MAX(id) FROM audit"),
             conn.scalar("SELECT last_id FROM audit_head WHERE one = 1")]
    if conn.dialect == "sqlite":
        found.append(conn.scalar("SELECT seq FROM sqlite_sequence WHERE name = 'audit'"))
    return max((int(value) for value in found if value is not None), default=0)


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
    def from_row(cls, row: Row) -> AuditEntry:
        return cls(
            id=int(row["id"]), ts_ms=int(row["ts_ms"]), actor=row["actor"], role=row["role"],
            action=row["action"], target=row["target"], camera_id=row["camera_id"],
            owner_id=row["owner_id"], outcome=row["outcome"], source=row["source"],
            details=row["details"], prev_hash=row["prev_hash"], hash=row["hash"],
        )

    def computed_hash(self, key: bytes | None = None) -> str:
        return entry_hash(
            self.id, self.ts_ms, self.actor, self.role, self.action, self.target, self.camera_id,
            self.owner_id, self.outcome, self.source, self.details, self.prev_hash, key,
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
    keyed_from: int | None = None
    """The first entry hashed with the audit key; None when the log has no key yet."""

    def describe(self) -> str:
        if not self.ok:
            where = "" if self.entry_id is None else f" at entry {self.entry_id}"
            return f"audit log tampered{where}: {self.reason}"
        text = f"audit log intact: {self.entries} entries, head {self.head}"
        if self.keyed_from is None:
            return (text + "; NOT KEYED: no audit key exists yet (the server creates one at its "
                    "next start), so only the unkeyed SHA-256 chain was checked")
        unkeyed = min(self.entries, self.keyed_from - 1)
        if unkeyed <= 0:
            return text + "; every entry is keyed (HMAC-SHA256)"
        if unkeyed == self.entries:
            return (text + f"; all {self.entries} entries were written before the audit key "
                    f"existed and follow the unkeyed SHA-256 rule; entries from "
                    f"{self.keyed_from} on are keyed (HMAC-SHA256)")
        return (text + f"; entries 1-{unkeyed} were written before the audit key existed and "
                f"follow the unkeyed SHA-256 rule, entries {self.keyed_from}-{self.entries} are "
                "keyed (HMAC-SHA256)")


def check_chain(conn: SqlConnection, key: bytes | None, *,
                keyed_hashes: bool = True) -> VerifyResult:
    """The chain walk of ``verify_chain`` on an open connection. With ``keyed_hashes`` off
    (no key at hand) keyed entries are checked for their links, not their HMACs."""
    boundary = read_boundary(conn)
    has_entries = conn.fetchone("SELECT 1 FROM audit LIMIT 1") is not None
    keyed_from: int | None = None
    if boundary is not None:
        keyed_from, tag = boundary
        if keyed_hashes and (key is None or not hmac.compare_digest(
                tag, boundary_tag(key, keyed_from))):
            return VerifyResult(False, 0, GENESIS, None,
                                "the record of where the keyed entries begin (audit_meta "
                                f"{KEYED_FROM}) was altered, or the audit key is not this "
                                "log's key")
    elif key is not None and has_entries:
        return VerifyResult(False, 0, GENESIS, None,
                            f"the record of where the keyed entries begin (audit_meta "
                            f"{KEYED_FROM}) was removed although an audit key exists: the log "
                            "may have been rewritten under the unkeyed rule")
    expected_prev = GENESIS
    expected_id = 1
    count = 0
    after = 0
    while True:
        rows = conn.fetchall("SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?",
                             (after, VERIFY_PAGE))
        if not rows:
            break
        for row in rows:
            entry = AuditEntry.from_row(row)
            after = entry.id
            if entry.id != expected_id:
                missing = (str(expected_id) if entry.id == expected_id + 1
                           else f"{expected_id}-{entry.id - 1}")
                return VerifyResult(False, count, expected_prev, expected_id,
                                    f"entries {missing} are missing (deleted)", keyed_from)
            if entry.prev_hash != expected_prev:
                return VerifyResult(False, count, expected_prev, entry.id,
                                    "link to the previous entry is broken (an entry before it "
                                    "was altered, deleted or reordered)", keyed_from)
            keyed = keyed_from is not None and entry.id >= keyed_from
            if (keyed_hashes or not keyed) and not hmac.compare_digest(
                    entry.computed_hash(key if keyed else None), entry.hash):
                rule = ("keyed hash (HMAC-SHA256): it was altered, or rewritten by someone "
                        "without the audit key" if keyed else "hash (altered)")
                return VerifyResult(False, count, expected_prev, entry.id,
                                    f"contents do not match the entry's {rule}", keyed_from)
            expected_prev = entry.hash
            expected_id += 1
            count += 1
    last_id = expected_id - 1
    head = conn.fetchone("SELECT last_id, last_hash FROM audit_head WHERE one = 1")
    recorded_last = last_assigned_id(conn)
    if recorded_last > last_id:
        return VerifyResult(False, count, expected_prev, last_id + 1,
                            f"entries {last_id + 1}-{recorded_last} are missing (deleted from "
                            "the end)", keyed_from)
    if head is not None and str(head["last_hash"]) != expected_prev:
        return VerifyResult(False, count, expected_prev, last_id,
                            "the last entry does not match the recorded head hash (altered)",
                            keyed_from)
    return VerifyResult(True, count, expected_prev, keyed_from=keyed_from)


def verify_copied_chain(conn: SqlConnection) -> None:
    """``StoreSchema.verify`` of the security store: after ``rtcc db copy``, the copied log
    still forms one unbroken chain ending at the recorded head. Without the audit key the keyed
    entries' HMACs are not recomputed; ids, links, unkeyed hashes and the head are.
    Raises ``AuditChainBroken``."""
    result = check_chain(conn, None, keyed_hashes=False)
    if not result.ok:
        raise AuditChainBroken(
            f"the copied security tables fail the audit chain check: {result.describe()}; the "
            "copy is not usable as the department's audit log: copy again from the source")
