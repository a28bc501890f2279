"""Export packages kept on the server for download, behind opaque, expiring tokens.

A download id is a random token (``secrets.token_urlsafe(32)``) shown once, when the export is
made; the store keeps only its SHA-256. The package file name is chosen by the server and the
path is resolved and checked to stay in ``evidence/exports`` before it is opened (without
following links). Expired packages are deleted; their rows stay as history.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.store import EvidenceStore
from recording.segments import UnsafePath, contained
from rtcc.db import Row

TOKEN = re.compile(r"^[A-Za-z0-9_-]{40,64}$")
FILE_NAME = re.compile(r"^exp-[0-9a-f]{16}\.tar$")


@dataclass(frozen=True, slots=True)
class ExportRecord:
    id: str
    file_name: str
    camera_id: str
    case_number: str
    created_by: str
    created_by_id: int | None
    created_at: float
    expires_at: float
    bytes: int
    sha256: str
    downloads: int
    grant_kind: str = ""
    """The grant the export was made under (``evidence.export.ExportGrant``), checked again at
    each download; empty for exports made before grants were stored with them."""
    grant_id: str = ""
    range_start: float | None = None
    """The range the grant was checked over when the export was made."""
    range_end: float | None = None

    @classmethod
    def from_row(cls, row: Row) -> ExportRecord:
        return cls(
            id=row["id"], file_name=row["file_name"], camera_id=row["camera_id"],
            case_number=row["case_number"], created_by=row["created_by"],
            created_by_id=row["created_by_id"], created_at=float(row["created_at"]),
            expires_at=float(row["expires_at"]), bytes=int(row["bytes"]), sha256=row["sha256"],
            downloads=int(row["downloads"]), grant_kind=row["grant_kind"],
            grant_id=row["grant_id"], range_start=row["range_start"],
            range_end=row["range_end"],
        )

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "export_id": self.id, "camera_id": self.camera_id, "case": self.case_number,
            "created_by": self.created_by, "created_at": self.created_at,
            "expires_at": self.expires_at, "expired": self.expires_at <= now,
            "bytes": self.bytes, "sha256": self.sha256, "downloads": self.downloads,
            "grant": {"kind": self.grant_kind, "id": self.grant_id},
        }


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def register(store: EvidenceStore, *, export_id: str, file_name: str, camera_id: str,
             case_number: str, created_by: str, created_by_id: int | None, now: float,
             expires_at: float, size: int, sha256: str, grant_kind: str, grant_id: str,
             range_start: float, range_end: float) -> str:
    """Record a package and the grant it was made under; returns its download token (shown
    once)."""
    token = secrets.token_urlsafe(32)
    store.execute(
        "INSERT INTO exports (id, token_hash, file_name, camera_id, case_number, created_by,"
        " created_by_id, created_at, expires_at, bytes, sha256, grant_kind, grant_id,"
        " range_start, range_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (export_id, token_hash(token), file_name, camera_id, case_number, created_by,
         created_by_id, now, expires_at, size, sha256, grant_kind, grant_id, range_start,
         range_end),
    )
    return token


def lookup(store: EvidenceStore, token: str) -> ExportRecord | None:
    """The export a download token names, or None (malformed or unknown token)."""
    if not TOKEN.fullmatch(token):
        return None
    row = store.fetchone("SELECT * FROM exports WHERE token_hash = ?", (token_hash(token),))
    return None if row is None else ExportRecord.from_row(row)


def recent(store: EvidenceStore, created_by_id: int | None, limit: int = 100
           ) -> list[ExportRecord]:
    if created_by_id is None:
        rows = store.fetchall("SELECT * FROM exports ORDER BY created_at DESC LIMIT ?", (limit,))
    else:
        rows = store.fetchall(
            "SELECT * FROM exports WHERE created_by_id = ? ORDER BY created_at DESC LIMIT ?",
            (created_by_id, limit))
    return [ExportRecord.from_row(row) for row in rows]


def count_download(store: EvidenceStore, export_id: str) -> None:
    store.execute("UPDATE exports SET downloads = downloads + 1 WHERE id = ?", (export_id,))


def open_package(root: Path, record: ExportRecord) -> tuple[int, int]:
    """Open the package read-only without following links: (fd, size). Blocking.

    Raises UnsafePath if the stored name is not one this server makes or leaves the folder,
    FileNotFoundError if it is gone.
    """
    if not FILE_NAME.fullmatch(record.file_name):
        raise UnsafePath("the stored package name is not one this server makes")
    path = contained(root, f"exports/{record.file_name}")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafePath("the package is not a regular file")
    return fd, info.st_size


def purge_expired(store: EvidenceStore, root: Path, now: float) -> int:
    """Delete the package files of expired exports. Blocking."""
    rows = store.fetchall("SELECT file_name FROM exports WHERE expires_at <= ?", (now,))
    removed = 0
    for row in rows:
        name = str(row["file_name"])
        if not FILE_NAME.fullmatch(name):
            continue
        try:
            contained(root, f"exports/{name}").unlink()
            removed += 1
        except (FileNotFoundError, UnsafePath):
            continue
    return removed


def sweep_interrupted(store: EvidenceStore, root: Path) -> dict[str, int]:
    """Remove what an export cut short by a crash left behind: its work folders
    (``tmp/export-*``) and half-written packages (``exports/*.part``; a package gets its final
    name only once complete and synced). Complete packages with no export row (the crash came
    between the rename and the row) are counted, not removed: they are signed copies. Blocking;
    run at start, before any export."""
    swept = {"work_folders": 0, "partial_packages": 0, "unlisted_packages": 0}
    work = root / "tmp"
    if work.is_dir():
        for folder in work.glob("export-*"):
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)
                swept["work_folders"] += 1
    exports = root / "exports"
    if exports.is_dir():
        for partial in exports.glob("exp-*.tar.part"):
            partial.unlink(missing_ok=True)
            swept["partial_packages"] += 1
        listed = {str(row["file_name"]) for row in store.fetchall("SELECT file_name FROM exports")}
        swept["unlisted_packages"] = sum(
            1 for package in exports.glob("exp-*.tar")
            if FILE_NAME.fullmatch(package.name) and package.name not in listed)
    return swept

