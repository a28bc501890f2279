"""The tamper-evident audit log.

Append-only (triggers refuse UPDATE and DELETE, on SQLite and on PostgreSQL); every entry
carries the hash of the previous entry and its own hash over all its fields, so an altered,
deleted or reordered entry breaks the chain. ``verify_chain`` walks it. Times are UTC with
millisecond resolution.

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

import functools
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from rtcc.db import SqlConnection
from rtcc.errors import AuditWriteError, RtccError
from rtcc.offload import StoreClosed
from security.audit_chain import (
    GENESIS,
    KEYED_FROM,
    AuditChainBroken,
    AuditEntry,
    VerifyResult,
    boundary_tag,
    check_chain,
    entry_hash,
    iso_utc,
    last_assigned_id,
    read_boundary,
    verify_copied_chain,
)
from security.secretbox import load_audit_key
from security.store import DATABASE_ERRORS, Clock, SecurityStore, SecurityTables

__all__ = [
    "GENESIS",
    "AuditChainBroken",
    "AuditEntry",
    "AuditKeyMissing",
    "AuditLog",
    "AuditWriter",
    "VerifyResult",
    "entry_hash",
    "iso_utc",
    "verify_chain",
    "verify_copied_chain",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_FIELD = 500
_WRITE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, ValueError)


class AuditKeyMissing(RtccError):
    """The log has keyed entries but the audit key is not available to check them."""


def _clip(value: str) -> str:
    return value if len(value) <= MAX_FIELD else value[:MAX_FIELD] + "..."


def _start_keyed_chain(conn: SqlConnection, key: bytes) -> int:
    """Record (once) that entries from the next id on are keyed; returns that first id."""
    found = read_boundary(conn)
    if found is not None:  # the usual case: no write lock taken
        return found[0]
    with conn.transaction() as tx:
        found = read_boundary(tx)
        last = tx.fetchone("SELECT * FROM audit ORDER BY id DESC LIMIT 1")
        if found is None and last is not None and hmac.compare_digest(
                AuditEntry.from_row(last).computed_hash(key), str(last["hash"])):
            # Keyed entries but no boundary: the record was removed. Recording a new one
            # would bless whatever was rewritten before it; leave it missing for verify.
            log.error("the audit metadata saying where keyed entries begin was removed; "
                      "`rtcc audit verify` reports it")
            first = 1
        elif found is None:
            first = last_assigned_id(tx) + 1
            tx.execute("INSERT INTO audit_meta (name, value) VALUES (?, ?)",
                       (KEYED_FROM, f"{first}:{boundary_tag(key, first)}"))
            if first > 1:
                log.info("audit log: entries 1-%d keep their unkeyed hashes; entries from %d on "
                         "are keyed (HMAC-SHA256)", first - 1, first)
        else:
            first = found[0]
    return first


class AuditWriter:
    """The audit log on an open ``SecurityTables``, used on the thread that owns it."""

    def __init__(self, store: SecurityTables, clock: Clock, key: bytes | None = None) -> None:
        """``key``: the audit key; by default loaded (created on first use) from the store's
        folder or ``RTCC_AUDIT_KEY``."""
        self._store = store
        self._clock = clock
        if key is None:
            key = load_audit_key(store.data_dir)
            assert key is not None  # created when missing
        self._key = key
        self._keyed_from = _start_keyed_chain(store.conn, key)
        head = store.conn.fetchone("SELECT last_id, last_hash FROM audit_head WHERE one = 1")
        self._head: tuple[int, str] | None = (
            None if head is None else (int(head["last_id"]), str(head["last_hash"])))

    @property
    def head(self) -> tuple[int, str] | None:
        """(id, hash) of the last entry this process wrote or found at start; no database call."""
        return self._head

    @property
    def conn(self) -> SqlConnection:
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
            # Everything is read inside the transaction, which admits one writer of the store
            # at a time (every process, either engine): the chain has one head.
            with self._store.transaction() as conn:
                head = conn.fetchone("SELECT last_id, last_hash FROM audit_head WHERE one = 1")
                last = conn.fetchone("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
                prev_hash = GENESIS if last is None else str(last["hash"])
                entry_id = last_assigned_id(conn) + 1
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
        except _WRITE_ERRORS as exc:
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
    if key is None:
        key = load_audit_key(store.data_dir, create=False)
    if key is None and read_boundary(store.conn) is not None:
        raise AuditKeyMissing(
            "the audit log has keyed entries but no audit key was found: set "
            f"RTCC_AUDIT_KEY or restore {store.data_dir / 'audit.key'} from the backup "
            "of the key")
    return check_chain(store.conn, key)
