"""The tamper-evident audit log.

Append-only (SQLite triggers refuse UPDATE and DELETE); every entry carries the hash of the
previous entry and its own hash over all its fields, so an altered, deleted or reordered entry
breaks the chain. ``verify_chain`` walks it. Times are UTC with millisecond resolution.

Entry hashes are HMAC-SHA256 under the audit key (``RTCC_AUDIT_KEY`` or ``<data_dir>/audit.key``,
kept outside the database), so whoever can write the database but does not hold the key cannot
recompute a rewritten chain. Entries written before the key existed keep their plain SHA-256
hashes: the id of the first keyed entry is recorded once (``audit_meta.keyed_from``, with an HMAC
tag so it cannot be moved) and entries before it are checked under the unkeyed rule. Signed
checkpoints of the chain's head (``security.audit_checkpoints``) catch a truncation or a rewrite
by someone who has the key.

A write that fails raises ``AuditWriteError``: the caller must refuse what it was about to do.

``AuditWriter`` issues the statements on the thread it is called from: a command-line program's
own, or the security store's thread, where the server's ``AuditLog`` runs it so that no audit
write ever holds up the event loop.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from rtcc.errors import AuditWriteError, RtccError
from rtcc.offload import StoreClosed
from security.secretbox import load_audit_key
from security.store import Clock, SecurityStore, SecurityTables

log = logging.getLogger(__name__)

T = TypeVar("T")

GENESIS = "0" * 64
MAX_FIELD = 500
KEYED_FROM = "keyed_from"

_META_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_meta_no_update BEFORE UPDATE ON audit_meta
BEGIN SELECT RAISE(ABORT, 'the audit metadata is written once'); END;
CREATE TRIGGER IF NOT EXISTS audit_meta_no_delete BEFORE DELETE ON audit_meta
BEGIN SELECT RAISE(ABORT, 'the audit metadata is written once'); END;
"""


class AuditKeyMissing(RtccError):
    """The log has keyed entries but the audit key is not available to check them."""


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


def _boundary_tag(key: bytes, first_keyed: int) -> str:
    return hmac.new(key, f"rtcc audit keyed from {first_keyed}".encode("ascii"),
                    hashlib.sha256).hexdigest()


def _read_boundary(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """(first keyed entry id, its tag) as stored, or None when no key was ever set up."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_meta'").fetchone()
    if exists is None:
        return None
    row = conn.execute("SELECT value FROM audit_meta WHERE name = ?", (KEYED_FROM,)).fetchone()
    if row is None:
        return None
    first, _, tag = str(row["value"]).partition(":")
    try:
        return int(first), tag
    except ValueError:
        return -1, tag  # damaged: the tag check fails and reports it


def _start_keyed_chain(conn: sqlite3.Connection, key: bytes) -> int:
    """Record (once) that entries from the next id on are keyed; returns that first id."""
    found = _read_boundary(conn)
    if found is not None:  # the usual case: no write lock taken
        return found[0]
    conn.executescript(_META_SCHEMA)
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = _read_boundary(conn)
        last = conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        if found is None and last is not None and hmac.compare_digest(
                AuditEntry.from_row(last).computed_hash(key), str(last["hash"])):
            # Keyed entries but no boundary: the record was removed. Recording a new one
            # would bless whatever was rewritten before it; leave it missing for verify.
            log.error("the audit metadata saying where keyed entries begin was removed; "
                      "`rtcc audit verify` reports it")
            first = 1
        elif found is None:
            seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
            first = (0 if seq is None else int(seq[0])) + 1
            conn.execute("INSERT INTO audit_meta (name, value) VALUES (?, ?)",
                         (KEYED_FROM, f"{first}:{_boundary_tag(key, first)}"))
            if first > 1:
                log.info("audit log: entries 1-%d keep their unkeyed hashes; entries from %d on "
                         "are keyed (HMAC-SHA256)", first - 1, first)
        else:
            first = found[0]
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return first


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


class AuditWriter:
    """The audit log on an open ``SecurityTables``, used on the thread that owns it."""

    def __init__(self, store: SecurityTables, clock: Clock, key: bytes | None = None) -> None:
        """``key``: the audit key; by default loaded (created on first use) from the store's
        folder or ``RTCC_AUDIT_KEY``."""
        self._store = store
        self._clock = clock
        if key is None:
            key = load_audit_key(store.path.parent)
            assert key is not None  # created when missing
        self._key = key
        self._keyed_from = _start_keyed_chain(store.conn, key)
        head = store.conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
        self._head: tuple[int, str] | None = (
            None if head is None else (int(head["last_id"]), str(head["last_hash"])))

    @property
    def head(self) -> tuple[int, str] | None:
        """(id, hash) of the last entry this process wrote or found at start; no database call."""
        return self._head

    @property
    def conn(self) -> sqlite3.Connection:
        """The store's connection, for reads on the thread that owns it."""
        return self._store.conn

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
                digest = entry_hash(entry_id, ts_ms, *fields, detail_text, prev_hash,
                                    self._key if entry_id >= self._keyed_from else None)
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
        self._head = (entry_id, digest)
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

    def __init__(self, store: SecurityStore, clock: Clock, key: bytes | None = None) -> None:
        """Made once at start, before anything is served: setting up the keyed chain reads
        (and on first start writes) the store on the calling thread."""
        self._store = store
        self._writer = AuditWriter(store.tables, clock, key)

    @property
    def head(self) -> tuple[int, str] | None:
        """(id, hash) of the last entry written or found at start; no database call."""
        return self._writer.head

    async def run_with_writer(self, fn: Callable[[AuditWriter], T]) -> T:
        """``fn(writer)`` on the security store's thread, after every write queued before it."""
        return await self._store.run(functools.partial(fn, self._writer))

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


def verify_chain(store: SecurityTables, key: bytes | None = None) -> VerifyResult:
    """Walk the whole log; report the first entry that was altered, removed or moved.

    ``key``: the audit key; by default looked up (never created) in the store's folder or
    ``RTCC_AUDIT_KEY``. Raises ``AuditKeyMissing`` when the log has keyed entries and no key is
    available."""
    conn = store.conn
    if key is None:
        key = load_audit_key(store.path.parent, create=False)
    boundary = _read_boundary(conn)
    has_entries = conn.execute("SELECT 1 FROM audit LIMIT 1").fetchone() is not None
    keyed_from: int | None = None
    if boundary is not None:
        if key is None:
            raise AuditKeyMissing(
                "the audit log has keyed entries but no audit key was found: set "
                f"RTCC_AUDIT_KEY or restore {store.path.parent / 'audit.key'} from the backup "
                "of the key")
        keyed_from, tag = boundary
        if not hmac.compare_digest(tag, _boundary_tag(key, keyed_from)):
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
    for row in conn.execute("SELECT * FROM audit ORDER BY id"):
        entry = AuditEntry.from_row(row)
        if entry.id != expected_id:
            missing = (str(expected_id) if entry.id == expected_id + 1
                       else f"{expected_id}-{entry.id - 1}")
            return VerifyResult(False, count, expected_prev, expected_id,
                                f"entries {missing} are missing (deleted)", keyed_from)
        if entry.prev_hash != expected_prev:
            return VerifyResult(False, count, expected_prev, entry.id,
                                "link to the previous entry is broken (an entry before it was "
                                "altered, deleted or reordered)", keyed_from)
        keyed = keyed_from is not None and entry.id >= keyed_from
        if not hmac.compare_digest(entry.computed_hash(key if keyed else None), entry.hash):
            rule = ("keyed hash (HMAC-SHA256): it was altered, or rewritten by someone "
                    "without the audit key" if keyed else "hash (altered)")
            return VerifyResult(False, count, expected_prev, entry.id,
                                f"contents do not match the entry's {rule}", keyed_from)
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
                            "the end)", keyed_from)
    if head is not None and str(head["last_hash"]) != expected_prev:
        return VerifyResult(False, count, expected_prev, last_id,
                            "the last entry does not match the recorded head hash (altered)",
                            keyed_from)
    return VerifyResult(True, count, expected_prev, keyed_from=keyed_from)
