"""Evidence items made from files (a tip's photo or video): stored, hashed, held, exported.

``FileIntake.add_file`` (the ``rtcc.access.EvidenceIntake`` contract) copies the plain bytes into
``<data_dir>/evidence/items/<id>/original.<ext>``, hashing them as they are copied; the item's
row, a legal hold named after the item (``holds.camera_id`` is the item id, so retention, which
works camera by camera, never reaches it) and its first chain-of-custody entries are written in
one transaction, then the intake is audited (``evidence.item.add``).

``export_item`` packages one item like a clip: ``manifest.json`` (format ``FILE_FORMAT``: the
item, its custody, the file's hash as taken in and as packaged), ``manifest.sig`` signed with the
server's Ed25519 key, ``public-key.pem`` and ``original.<ext>``; ``rtcc verify`` checks it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import platform
import re
import secrets
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.manifest import (
    FILE_FORMAT,
    MANIFEST_NAME,
    PUBLIC_KEY_NAME,
    SIGNATURE_NAME,
    sign_manifest,
)
from evidence.signing import ALGORITHM, SigningKey
from evidence.store import AsyncEvidenceStore, EvidenceStore
from recording.segments import contained, fsync_dir, hash_file
from recording.times import iso_utc
from rtcc import __version__
from rtcc.access import AuditSink, IntakeFile, IntakeReceipt
from rtcc.errors import AuditWriteError, RtccError
from rtcc.files import open_private, private_dir

ITEM_ID = re.compile(r"^item-[0-9a-f]{16}$")
EXTENSION = re.compile(r"^[a-z0-9]{1,5}$")
ITEMS_FOLDER = "items"


class ItemError(RtccError):
    """The file cannot be taken in or exported; the message says why."""


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    id: str
    media_type: str
    file_name: str
    sha256: str
    bytes: int
    case_number: str
    incident_id: str
    source: str
    promoted_by: str
    promoted_role: str
    reason: str
    created: float
    hold_id: str

    @property
    def path(self) -> str:
        return f"{ITEMS_FOLDER}/{self.id}/{self.file_name}"


def item(store: EvidenceStore, item_id: str) -> EvidenceItem | None:
    row = store.fetchone("SELECT * FROM evidence_items WHERE id = ?", (item_id,))
    if row is None:
        return None
    return EvidenceItem(**{key: row[key] for key in EvidenceItem.__slots__})


def custody(store: EvidenceStore, item_id: str) -> list[dict[str, Any]]:
    rows = store.fetchall("SELECT at, actor, role, action, detail FROM evidence_custody"
                          " WHERE item_id = ? ORDER BY seq", (item_id,))
    return [{"at_utc": iso_utc(float(r["at"])), "actor": r["actor"], "role": r["role"],
             "action": r["action"], "detail": r["detail"]} for r in rows]


def add_custody(store: EvidenceStore, item_id: str, now: float, actor: str, role: str,
                action: str, detail: str) -> None:
    seq = store.fetchone("SELECT COUNT(*) AS n FROM evidence_custody WHERE item_id = ?",
                         (item_id,))["n"]
    store.execute("INSERT INTO evidence_custody (item_id, seq, at, actor, role, action, detail)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?)", (item_id, seq, now, actor, role, action,
                                                     detail))


def _copy_hashed(source: Path, target: Path) -> tuple[str, int]:
    """Copy with the hash taken from the bytes as they are written, then fsync."""
    digest = hashlib.sha256()
    size = 0
    private_dir(target.parent)
    with open(source, "rb") as src, open_private(target, exclusive=True) as out:
        while chunk := src.read(1024 * 1024):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    fsync_dir(target.parent)
    return digest.hexdigest(), size


class FileIntake:
    """``rtcc.access.EvidenceIntake`` on the evidence store."""

    def __init__(self, store: AsyncEvidenceStore, root: Path, audit: AuditSink) -> None:
        self._db = store
        self._root = root
        self._audit = audit

    async def add_file(self, file: IntakeFile) -> IntakeReceipt:
        if not EXTENSION.fullmatch(file.extension):
            raise ItemError(f"{file.extension!r} is not a file name ending (1 to 5 lowercase "
                            "letters or digits)")
        if not file.case_number.strip():
            raise ItemError("a case number is required to take a file into evidence")
        item_id = f"item-{secrets.token_hex(8)}"
        name = f"original.{file.extension}"
        target = contained(self._root, f"{ITEMS_FOLDER}/{item_id}/{name}")
        sha, size = await asyncio.to_thread(_copy_hashed, file.path, target)
        now = time.time()
        hold_id = f"hold-{secrets.token_hex(6)}"
        actor = file.promoted_by

        def record(store: EvidenceStore) -> None:
            with store.transaction():
                store.execute(
                    "INSERT INTO evidence_items (id, media_type, file_name, sha256, bytes,"
                    " case_number, incident_id, source, promoted_by, promoted_role, reason,"
                    " created, hold_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (item_id, file.media_type, name, sha, size, file.case_number.strip(),
                     file.incident_id, file.source, actor.name, actor.role, file.reason, now,
                     hold_id))
                store.execute(
                    "INSERT INTO holds (id, camera_id, case_number, utc_start, utc_end, reason,"
                    " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (hold_id, item_id, file.case_number.strip(), 0.0, 1e18,
                     f"evidence item {item_id} from {file.source}", actor.name, now))
                add_custody(store, item_id, now, actor.name, actor.role, "received",
                            f"from {file.source}: {file.reason}")
                add_custody(store, item_id, now, actor.name, actor.role, "hashed and held",
                            f"SHA-256 {sha}, {size} bytes; legal hold {hold_id}")

        try:
            await self._db.call(record)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, target.parent, True)
            raise
        try:
            await self._audit.append(
                actor=actor.name, role=actor.role, action="evidence.item.add",
                target=f"item:{item_id}", source=actor.source,
                details={"sha256": sha, "bytes": size, "case": file.case_number,
                         "incident": file.incident_id, "from": file.source,
                         "reason": file.reason, "hold": hold_id})
        except AuditWriteError:
            # The item is stored and held already; its custody says so even without the entry.
            raise
        return IntakeReceipt(item_id=item_id, sha256=sha, bytes=size, hold_id=hold_id)


@dataclass(frozen=True)
class ItemExport:
    export_id: str
    package: Path
    sha256: str
    bytes: int
    manifest: dict[str, Any]


def export_item(store: EvidenceStore, root: Path, key: SigningKey, item_id: str, *,
                requester: str, requester_role: str, reason: str = "",
                target: Path | None = None) -> ItemExport:
    """One item as a signed package (blocking: the caller runs it in a thread)."""
    found = item(store, item_id) if ITEM_ID.fullmatch(item_id) else None
    if found is None:
        raise ItemError(f"there is no evidence item {item_id!r}; the item ids are listed in "
                        "the audit log (evidence.item.add)")
    path = contained(root, found.path)
    sha, size = hash_file(path)
    if sha != found.sha256 or size != found.bytes:
        raise ItemError(f"evidence item {item_id} no longer matches the SHA-256 recorded when "
                        "it was taken in: it was altered or damaged; export refused")
    export_id = f"exp-{secrets.token_hex(8)}"
    now = time.time()
    add_custody(store, item_id, now, requester, requester_role, "exported",
                f"package {export_id}" + (f": {reason}" if reason else ""))
    manifest: dict[str, Any] = {
        "format": FILE_FORMAT,
        "export_id": export_id,
        "created_utc": iso_utc(now),
        "case": found.case_number,
        "reason": reason,
        "requester": {"user": requester, "role": requester_role},
        "item": {"id": found.id, "media_type": found.media_type, "sha256": found.sha256,
                 "bytes": found.bytes, "incident": found.incident_id, "source": found.source,
                 "taken_in_utc": iso_utc(found.created), "taken_in_by": found.promoted_by,
                 "hold": found.hold_id},
        "custody": custody(store, item_id),
        "files": [{"name": found.file_name, "sha256": sha, "bytes": size,
                   "kind": "the file exactly as taken into evidence"}],
        "tools": {"rtcc": __version__, "python": platform.python_version()},
        "signing_key": {"algorithm": ALGORITHM, "fingerprint": key.fingerprint},
    }
    body, signature = sign_manifest(manifest, key)
    package = target or (root / "exports" / f"{export_id}.tar")
    private_dir(package.parent, tighten=False)
    partial = package.with_name(package.name + ".part")
    stamp = int(now)
    try:
        with (open_private(partial) as out,
              tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar):
            for name, data in ((MANIFEST_NAME, body), (SIGNATURE_NAME, signature),
                               (PUBLIC_KEY_NAME, key.public_pem())):
                tar.addfile(_member(name, len(data), stamp), io.BytesIO(data))
            with open(path, "rb") as handle:
                tar.addfile(_member(found.file_name, size, stamp), handle)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, package)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    package_sha, package_bytes = hash_file(package)
    return ItemExport(export_id, package, package_sha, package_bytes, manifest)


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o444
    info.uname = info.gname = "rtcc"
    return info
