"""Signed checkpoints of the audit chain's head.

Every ``every_entries`` entries or ``every_seconds`` seconds (whichever comes first, and only when
the head moved) and at server stop, one JSON line is appended to
``<data_dir>/audit-checkpoints.jsonl`` (opened ``O_APPEND``, mode 0600): the last entry's id and
hash and the time, signed with Ed25519. ``verify_checkpoints`` checks each line's signature and
that the entry it names still exists with the same hash, so a truncation of the log, or a rewrite
of its history by someone who holds the HMAC key, is found at the first checkpoint after it.
Copy the file off the server (it only grows) to keep that evidence out of an intruder's reach.

The signing key is the audit's own (``<data_dir>/audit-signing-key.pem``, PKCS#8, mode 0600),
not the evidence key: the security package does not depend on the evidence package, and a
department can publish or rotate the two independently.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rtcc.errors import RtccError
from rtcc.files import append_private, open_private, private_file
from security.audit import iso_utc
from security.store import Clock, SecurityTables

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "audit-checkpoints.jsonl"


class ChainHead(Protocol):
    """The server's ``AuditLog`` or a command-line ``AuditWriter``."""

    @property
    def head(self) -> tuple[int, str] | None: ...

SIGNING_KEY_FILE = "audit-signing-key.pem"
_CONTEXT = b"rtcc audit checkpoint v1\n"
_POLL_SECONDS = 1.0


class CheckpointKeyError(RtccError):
    """The checkpoint signing key is missing or unreadable."""


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_signing_key(data_dir: Path, *, create: bool = True) -> Ed25519PrivateKey | None:
    """The key in ``data_dir/audit-signing-key.pem``, created (mode 0600) when missing and
    ``create`` is set; None when missing and not ``create``."""
    path = data_dir / SIGNING_KEY_FILE
    if not path.exists():
        if not create:
            return None
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            handle = open_private(path, exclusive=True)
        except FileExistsError:
            pass  # created at the same moment by another process: read theirs
        else:
            with handle:
                handle.write(pem)
            log.info("created the audit checkpoint signing key %s (fingerprint %s)", path,
                     key_fingerprint(key.public_key()))
    if create:
        private_file(path)  # an older copy restored with a looser mode is tightened
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CheckpointKeyError(f"{path}: cannot read the checkpoint signing key: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise CheckpointKeyError(f"{path}: the checkpoint signing key is not an Ed25519 key")
    return private


@dataclass(frozen=True, slots=True)
class Checkpoint:
    entry_id: int
    hash: str
    ts_ms: int

    def message(self) -> bytes:
        body = {"entry_id": self.entry_id, "hash": self.hash, "ts_ms": self.ts_ms}
        return _CONTEXT + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def signed_line(self, key: Ed25519PrivateKey) -> bytes:
        line = {"entry_id": self.entry_id, "hash": self.hash, "ts_ms": self.ts_ms,
                "time": iso_utc(self.ts_ms),
                "key_fingerprint": key_fingerprint(key.public_key()),
                "signature": base64.b64encode(key.sign(self.message())).decode("ascii")}
        return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def write_checkpoint(path: Path, key: Ed25519PrivateKey, checkpoint: Checkpoint) -> None:
    """Append one signed line and flush it to disk (blocking: call it off the event loop)."""
    append_private(path, checkpoint.signed_line(key))


class AuditCheckpoints:
    """Writes checkpoints of ``audit``'s head while the server runs, and one at ``aclose``.

    ``async with`` starts the task ``audit:checkpoints``; files are written in a worker thread."""

    def __init__(self, audit: ChainHead, data_dir: Path, key: Ed25519PrivateKey, *,
                 every_entries: int, every_seconds: float, clock: Clock = time.time) -> None:
        self._audit = audit
        self._path = data_dir / CHECKPOINT_FILE
        self._key = key
        self._every_entries = every_entries
        self._every_seconds = every_seconds
        self._clock = clock
        self._last: tuple[int, str] | None = None  # the head at start is checkpointed too
        self._last_at = time.monotonic()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def start(cls, audit: ChainHead, data_dir: Path, *, every_entries: int,
                    every_seconds: float, clock: Clock = time.time) -> AuditCheckpoints:
        """Load (or create) the signing key off the loop and start checkpointing."""
        key = await asyncio.to_thread(load_signing_key, data_dir)
        assert key is not None  # created when missing
        return await cls(audit, data_dir, key, every_entries=every_entries,
                         every_seconds=every_seconds, clock=clock).__aenter__()

    @property
    def path(self) -> Path:
        return self._path

    async def __aenter__(self) -> AuditCheckpoints:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="audit:checkpoints")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the task and checkpoint the head; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})  # a cancellation of aclose itself still propagates
            self._task = None
        try:
            await self.checkpoint()
        except OSError as exc:
            log.error("could not write the audit checkpoint at stop to %s: %s", self._path, exc)

    def _due(self) -> bool:
        head = self._audit.head
        if head is None or head == self._last:
            return False
        since = head[0] - (self._last[0] if self._last is not None else 0)
        return (since >= self._every_entries
                or time.monotonic() - self._last_at >= self._every_seconds)

    async def checkpoint(self) -> Checkpoint | None:
        """Checkpoint the head now, unless it has not moved since the last checkpoint."""
        async with self._lock:
            head = self._audit.head
            if head is None or head == self._last:
                return None
            checkpoint = Checkpoint(head[0], head[1], int(self._clock() * 1000))
            await asyncio.to_thread(write_checkpoint, self._path, self._key, checkpoint)
            self._last = head
            self._last_at = time.monotonic()
            return checkpoint

    async def _run(self) -> None:
        poll = min(_POLL_SECONDS, self._every_seconds)
        while True:
            await asyncio.sleep(poll)
            if not self._due():
                continue
            try:
                await self.checkpoint()
            except Exception:  # logged; the next tick tries again
                log.exception("could not write an audit checkpoint to %s", self._path)


@dataclass(frozen=True, slots=True)
class CheckpointReport:
    ok: bool
    checked: int
    line: int | None = None
    """The first bad checkpoint's line number (1-based)."""
    reason: str = ""
    latest: dict[str, Any] | None = None

    def describe(self) -> str:
        if not self.ok:
            return f"audit checkpoint {self.line} is bad: {self.reason}"
        if self.checked == 0:
            return "audit checkpoints: none written yet"
        latest = self.latest or {}
        return (f"audit checkpoints intact: {self.checked} checked, the latest at entry "
                f"{latest.get('entry_id')} ({latest.get('time')})")


def _signature_ok(public_key: Ed25519PublicKey, signature: object, message: bytes) -> bool:
    if not isinstance(signature, str):
        return False
    try:
        public_key.verify(base64.b64decode(signature.encode("ascii"), validate=True), message)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def verify_checkpoints(store: SecurityTables, data_dir: Path) -> CheckpointReport:
    """Check every checkpoint line: signature, and the named entry still has the same hash.

    Raises ``CheckpointKeyError`` when there are checkpoints but no key to check them with."""
    path = data_dir / CHECKPOINT_FILE
    if not path.exists():
        return CheckpointReport(True, 0)
    key = load_signing_key(data_dir, create=False)
    if key is None:
        raise CheckpointKeyError(
            f"{path} exists but the key that signed it ({data_dir / SIGNING_KEY_FILE}) is "
            "missing: restore it from the backup to check the checkpoints")
    public = key.public_key()
    fingerprint = key_fingerprint(public)
    checked = 0
    latest: dict[str, Any] | None = None
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            problem, line = _check_line(store, public, fingerprint, raw)
            if problem:
                return CheckpointReport(False, checked, number, problem)
            checked += 1
            latest = line
    return CheckpointReport(True, checked, latest=latest)


def _check_line(store: SecurityTables, public: Ed25519PublicKey, fingerprint: str,
                raw: bytes) -> tuple[str, dict[str, Any]]:
    try:
        line = json.loads(raw)
        if not isinstance(line, dict):
            raise ValueError("not an object")
        checkpoint = Checkpoint(int(line["entry_id"]), str(line["hash"]), int(line["ts_ms"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "the line is damaged (not a checkpoint): the file was edited", {}
    named = f"(entry {checkpoint.entry_id}, written {iso_utc(checkpoint.ts_ms)})"
    if line.get("key_fingerprint") != fingerprint:
        return (f"{named} was signed by another key (fingerprint {line.get('key_fingerprint')}), "
                "not this server's audit signing key"), line
    if not _signature_ok(public, line.get("signature"), checkpoint.message()):
        return f"{named}: the signature does not match: the line was altered", line
    row = store.conn.execute("SELECT hash FROM audit WHERE id = ?",
                             (checkpoint.entry_id,)).fetchone()
    if row is None:
        return (f"{named}: entry {checkpoint.entry_id} is missing from the log: it was truncated "
                "or its history rewritten after this checkpoint"), line
    if str(row["hash"]) != checkpoint.hash:
        return (f"{named}: entry {checkpoint.entry_id} no longer has the hash this checkpoint "
                "signed: the log up to it was rewritten"), line
    return "", line
