"""The tip line's records: tips, their messages and their files (``tips.sqlite3``), and the
files themselves under ``<data_dir>/tips/``.

Every statement is plain SQL that PostgreSQL runs too (``?`` placeholders, TEXT ids made here,
``ON CONFLICT`` and ``RETURNING``, TEXT/REAL/INTEGER/BLOB columns). All of it runs on the store's
own thread (``rtcc.offload``). No column holds a network address, a browser's user agent or a
cookie: the tip line never learns them, so there is nothing to store.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from rtcc.db import Database, Migration, Row, SqlConnection, StoreSchema
from rtcc.db.store import TableStore
from rtcc.errors import RtccError
from rtcc.files import open_private, private_dir
from tips import vault

STATUSES = ("new", "in_review", "linked", "closed")

_SCHEMA_V1 = (
    """CREATE TABLE IF NOT EXISTS tips (
        id TEXT PRIMARY KEY,
        number TEXT NOT NULL UNIQUE,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        status TEXT NOT NULL,
        what TEXT NOT NULL,
        place TEXT NOT NULL,
        lat REAL,
        lon REAL,
        happened TEXT NOT NULL,
        contact_sealed TEXT NOT NULL,
        passphrase_hash TEXT NOT NULL,
        incident_id TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS tips_by_status ON tips (status, created)",
    """CREATE TABLE IF NOT EXISTS tip_messages (
        id TEXT PRIMARY KEY,
        tip_id TEXT NOT NULL REFERENCES tips (id),
        seq INTEGER NOT NULL,
        created REAL NOT NULL,
        author TEXT NOT NULL,
        staff_name TEXT NOT NULL,
        body TEXT NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS tip_messages_by_tip ON tip_messages (tip_id, seq)",
    """CREATE TABLE IF NOT EXISTS tip_media (
        id TEXT PRIMARY KEY,
        tip_id TEXT NOT NULL REFERENCES tips (id),
        created REAL NOT NULL,
        status TEXT NOT NULL,
        declared_size INTEGER NOT NULL,
        received INTEGER NOT NULL,
        file_bytes INTEGER NOT NULL,
        chunks INTEGER NOT NULL,
        wrapped_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        label TEXT NOT NULL,
        view_mime TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        seconds REAL NOT NULL,
        note TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS tip_media_by_tip ON tip_media (tip_id, created)",
)


SCHEMA = StoreSchema(
    name="tips",
    migrations=(Migration(
        1, "tips, messages and files",
        sqlite=";\n".join(_SCHEMA_V1),
        postgresql=";\n".join(_SCHEMA_V1).replace(" REAL", " DOUBLE PRECISION")
        .replace(" INTEGER", " BIGINT")),
        Migration(2, "the evidence item a file was promoted to",
                  sqlite="ALTER TABLE tip_media ADD COLUMN evidence_id TEXT NOT NULL DEFAULT ''",
                  postgresql="ALTER TABLE tip_media ADD COLUMN IF NOT EXISTS evidence_id TEXT "
                             "NOT NULL DEFAULT ''")),
    tables=("tips", "tip_messages", "tip_media"),
)


class TipNotFound(RtccError):
    pass


class OffsetMismatch(RtccError):
    """A chunk that does not start where the upload stands; ``received`` says where."""

    def __init__(self, media_id: str, received: int) -> None:
        super().__init__(f"upload {media_id} holds {received} bytes; send from there")
        self.received = received


class UploadClosed(RtccError):
    def __init__(self, media_id: str, status: str) -> None:
        super().__init__(f"upload {media_id} is {status} and takes no more bytes")
        self.status = status


@dataclass(frozen=True, slots=True)
class Tip:
    id: str
    number: str
    created: float
    updated: float
    status: str
    what: str
    place: str
    lat: float | None
    lon: float | None
    happened: str
    contact_sealed: str
    passphrase_hash: str
    incident_id: str


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    created: float
    author: str
    staff_name: str
    body: str


@dataclass(frozen=True, slots=True)
class Media:
    id: str
    tip_id: str
    created: float
    status: str
    """``receiving``, ``ready`` or ``refused`` (nothing of it kept)."""
    declared_size: int
    received: int
    file_bytes: int
    chunks: int
    wrapped_key: str
    kind: str
    label: str
    view_mime: str
    width: int
    height: int
    seconds: float
    note: str
    evidence_id: str = ""
    """The evidence item the original was promoted to, if it was."""


def new_id() -> str:
    return secrets.token_urlsafe(18)


_NUMBER_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_tip_number() -> str:
    """``T-XXXX-XXXX``: random (numbers in order would tell when and how many tips came)."""
    chars = "".join(secrets.choice(_NUMBER_ALPHABET) for _ in range(8))
    return f"T-{chars[:4]}-{chars[4:]}"


def _tip(row: Row) -> Tip:
    return Tip(**{key: row[key] for key in row.keys()})  # noqa: SIM118 -- a database row


def _media(row: Row) -> Media:
    return Media(**{key: row[key] for key in row.keys()})  # noqa: SIM118 -- a database row


class TipStore(TableStore):
    def __init__(self, database: Database, data_dir: Path) -> None:
        super().__init__(database, SCHEMA)
        self.files = data_dir / "tips"

    async def open(self) -> None:
        await self.open_tables()

    def _open_tables(self) -> None:
        private_dir(self.files)
        for leftover in self.files.glob("*.work"):  # plain bytes left by a crash mid-copy
            leftover.unlink()
        super()._open_tables()

    @property
    def _db(self) -> SqlConnection:
        return self.conn

    def original_path(self, media_id: str) -> Path:
        return self.files / f"{media_id}.sealed"

    def view_path(self, media_id: str) -> Path:
        return self.files / f"{media_id}.view"

    def work_path(self, media_id: str) -> Path:
        return self.files / f"{media_id}.work"

    # -- tips --

    async def create_tip(self, *, created: float, what: str, place: str, lat: float | None,
                         lon: float | None, happened: str, contact_sealed: str,
                         passphrase_hash: str) -> Tip:
        def work() -> Tip:
            for _ in range(5):  # a number already taken: draw another
                row = self._db.execute(
                    "INSERT INTO tips (id, number, created, updated, status, what, place, "
                    "lat, lon, happened, contact_sealed, passphrase_hash, incident_id) "
                    "VALUES (?, ?, ?, ?, 'new', ?, ?, ?, ?, ?, ?, ?, '') "
                    "ON CONFLICT (number) DO NOTHING RETURNING *",
                    (new_id(), new_tip_number(), created, created, what, place, lat, lon,
                     happened, contact_sealed, passphrase_hash)).fetchone()
                if row is not None:
                    return _tip(row)
            raise RtccError("could not draw a free tip number; try again")

        return await self.run(work)

    async def tip_by_number(self, number: str) -> Tip | None:
        def work() -> Tip | None:
            row = self._db.execute("SELECT * FROM tips WHERE number = ?",
                                   (number.strip().upper(),)).fetchone()
            return _tip(row) if row is not None else None

        return await self.run(work)

    async def tip(self, tip_id: str) -> Tip:
        def work() -> Tip:
            row = self._db.execute("SELECT * FROM tips WHERE id = ?", (tip_id,)).fetchone()
            if row is None:
                raise TipNotFound(f"no tip {tip_id}")
            return _tip(row)

        return await self.run(work)

    async def tips(self, status: str | None, limit: int = 500) -> list[Tip]:
        def work() -> list[Tip]:
            if status is None:
                rows = self._db.execute("SELECT * FROM tips ORDER BY created DESC LIMIT ?",
                                        (limit,))
            else:
                rows = self._db.execute(
                    "SELECT * FROM tips WHERE status = ? ORDER BY created DESC LIMIT ?",
                    (status, limit))
            return [_tip(row) for row in rows]

        return await self.run(work)

    async def update_tip(self, tip_id: str, now: float, *, status: str | None = None,
                         incident_id: str | None = None) -> Tip:
        def work() -> Tip:
            row = self._db.execute(
                "UPDATE tips SET status = COALESCE(?, status), "
                "incident_id = COALESCE(?, incident_id), updated = ? WHERE id = ? RETURNING *",
                (status, incident_id, now, tip_id)).fetchone()
            if row is None:
                raise TipNotFound(f"no tip {tip_id}")
            return _tip(row)

        return await self.run(work)

    # -- messages --

    async def add_message(self, tip_id: str, now: float, author: str, staff_name: str,
                          body: str) -> Message:
        def work() -> Message:
            with self._db.transaction() as db:
                row = db.execute(
                    # Times are kept to the minute only: ``seq`` keeps the order.
                    "INSERT INTO tip_messages (id, tip_id, seq, created, author, staff_name, "
                    "body) VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM tip_messages "
                    "WHERE tip_id = ?), ?, ?, ?, ?) "
                    "RETURNING id, created, author, staff_name, body",
                    (new_id(), tip_id, tip_id, now, author, staff_name, body)).fetchone()
                db.execute("UPDATE tips SET updated = ? WHERE id = ?", (now, tip_id))
            return Message(**{key: row[key] for key in row.keys()})  # noqa: SIM118

        return await self.run(work)

    async def messages(self, tip_id: str) -> list[Message]:
        def work() -> list[Message]:
            rows = self._db.execute(
                "SELECT id, created, author, staff_name, body FROM tip_messages "
                "WHERE tip_id = ? ORDER BY seq", (tip_id,))
            return [Message(**{key: row[key] for key in row.keys()}) for row in rows]  # noqa: SIM118

        return await self.run(work)

    # -- media --

    async def create_media(self, tip_id: str, now: float, declared_size: int,
                           wrapped_key: str, max_files: int) -> Media | None:
        """A new upload for the tip; None when the tip already has ``max_files`` files."""
        def work() -> Media | None:
            with self._db.transaction() as db:
                (count,) = db.execute(
                    "SELECT COUNT(*) FROM tip_media WHERE tip_id = ? AND status <> 'refused'",
                    (tip_id,)).fetchone()
                if count >= max_files:
                    return None
                row = db.execute(
                    "INSERT INTO tip_media (id, tip_id, created, status, declared_size, "
                    "received, file_bytes, chunks, wrapped_key, kind, label, view_mime, width, "
                    "height, seconds, note) VALUES (?, ?, ?, 'receiving', ?, 0, 0, 0, ?, '', "
                    "'', '', 0, 0, 0, '') RETURNING *",
                    (new_id(), tip_id, now, declared_size, wrapped_key)).fetchone()
            return _media(row)

        return await self.run(work)

    async def media(self, media_id: str) -> Media | None:
        def work() -> Media | None:
            row = self._db.execute("SELECT * FROM tip_media WHERE id = ?",
                                   (media_id,)).fetchone()
            return _media(row) if row is not None else None

        return await self.run(work)

    async def media_of(self, tip_id: str) -> list[Media]:
        def work() -> list[Media]:
            rows = self._db.execute(
                "SELECT * FROM tip_media WHERE tip_id = ? ORDER BY created, id", (tip_id,))
            return [_media(row) for row in rows]

        return await self.run(work)

    async def append_chunk(self, media_id: str, offset: int, data: bytes, key: bytes,
                           kind: str, label: str) -> Media:
        """Seal ``data`` onto the upload's original and record it, durably, before returning.
        ``kind`` and ``label`` (what the first bytes showed) are recorded with the first
        chunk."""
        def work() -> Media:
            row = self._db.execute("SELECT * FROM tip_media WHERE id = ?",
                                   (media_id,)).fetchone()
            if row is None:
                raise TipNotFound(f"no upload {media_id}")
            media = _media(row)
            if media.status != "receiving":
                raise UploadClosed(media_id, media.status)
            if offset != media.received:
                raise OffsetMismatch(media_id, media.received)
            length = vault.append_record(self.original_path(media_id), media_id, key,
                                         media.chunks, media.file_bytes, data)
            updated = self._db.execute(
                "UPDATE tip_media SET received = ?, file_bytes = ?, chunks = ?, "
                "kind = CASE WHEN kind = '' THEN ? ELSE kind END, "
                "label = CASE WHEN label = '' THEN ? ELSE label END "
                "WHERE id = ? AND received = ? RETURNING *",
                (offset + len(data), length, media.chunks + 1, kind, label, media_id,
                 offset)).fetchone()
            if updated is None:  # another writer moved it first (one thread: not expected)
                raise OffsetMismatch(media_id, media.received)
            return _media(updated)

        return await self.run(work)

    async def decrypt_to_work_file(self, media: Media, key: bytes) -> Path:
        """The original's plain bytes in a private work file, for making the analysts' copy;
        the caller removes it (``drop_work_file``)."""
        def work() -> Path:
            target = self.work_path(media.id)
            with open_private(target) as out:
                for chunk in vault.read_records(self.original_path(media.id), media.id, key,
                                                media.file_bytes):
                    out.write(chunk)
            return target

        return await self.run(work)

    async def drop_work_file(self, media_id: str) -> None:
        await self.run(self.work_path(media_id).unlink, True)

    async def decrypt_for_evidence(self, media: Media, key: bytes) -> Path:
        """The original's plain bytes in a private work file of its own (``*.work``, removed
        at start after a crash); the caller removes it."""
        def work() -> Path:
            target = self.files / f"{media.id}.evidence.work"
            with open_private(target) as out:
                for chunk in vault.read_records(self.original_path(media.id), media.id, key,
                                                media.file_bytes):
                    out.write(chunk)
            return target

        return await self.run(work)

    async def drop_file(self, path: Path) -> None:
        await self.run(path.unlink, True)

    async def set_evidence(self, media_id: str, evidence_id: str) -> None:
        def work() -> None:
            self._db.execute("UPDATE tip_media SET evidence_id = ? WHERE id = ?",
                             (evidence_id, media_id))

        await self.run(work)

    async def finish_media(self, media_id: str, *, status: str, view_mime: str = "",
                           width: int = 0, height: int = 0, seconds: float = 0.0,
                           note: str = "") -> Media:
        def work() -> Media:
            if status == "refused":  # nothing of a refused file is kept
                self.original_path(media_id).unlink(missing_ok=True)
                self.view_path(media_id).unlink(missing_ok=True)
            row = self._db.execute(
                "UPDATE tip_media SET status = ?, view_mime = ?, width = ?, height = ?, "
                "seconds = ?, note = ? WHERE id = ? RETURNING *",
                (status, view_mime, width, height, seconds, note, media_id)).fetchone()
            if row is None:
                raise TipNotFound(f"no upload {media_id}")
            return _media(row)

        return await self.run(work)

    async def original_chunks(self, media: Media, key: bytes) -> AsyncIterator[bytes]:
        """The original's plain bytes, a chunk at a time, each read and decrypted on the
        store's thread (a large video never sits whole in memory)."""
        chunks: Iterator[bytes] = await self.run(
            vault.read_records, self.original_path(media.id), media.id, key, media.file_bytes)
        while True:
            chunk = await self.run(next, chunks, b"")
            if not chunk:
                return
            yield chunk

    async def expire_uploads(self, started_before: float, note: str) -> int:
        """Refuse the uploads still receiving that started before ``started_before`` and
        delete what they sent; returns how many."""
        def work() -> int:
            rows = self._db.execute(
                "UPDATE tip_media SET status = 'refused', note = ? "
                "WHERE status = 'receiving' AND created < ? RETURNING id",
                (note, started_before)).fetchall()
            for (media_id,) in rows:
                self.original_path(media_id).unlink(missing_ok=True)
            return len(rows)

        return await self.run(work)

    async def free_bytes(self) -> int:
        return (await self.run(shutil.disk_usage, self.files)).free

    async def read_original(self, media: Media, key: bytes) -> bytes:
        def work() -> bytes:
            return b"".join(vault.read_records(self.original_path(media.id), media.id, key,
                                               media.file_bytes))

        return await self.run(work)
