"""``rtcc backup`` and ``rtcc restore``: a copy of the server's records a department can trust.

A backup folder holds a consistent copy of every SQLite store of the data directory (taken with
SQLite's online backup API, so the server may keep running: a live ``-wal`` file is never copied
by hand), the keys (secret key, audit key, audit checkpoint signing key, evidence signing key),
the audit checkpoint file, and ``manifest.json`` with every file's SHA-256, the server version
and the time. Recordings and export packages are large: they are not copied but listed, each
with its SHA-256 from the evidence store, so a restore can say which are still there unchanged.

``restore`` checks every hash of the manifest before it writes anything, refuses a data
directory a running process has open (and a non-empty one without ``--force``), puts the files
back, then runs the audit verification and checks every listed recording segment.

Exit codes: 0 everything checked out, 1 a check found a problem, 2 usage or I/O errors.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from evidence.context import EVIDENCE_FOLDER
from evidence.signing import KEY_FILE as EVIDENCE_KEY_FILE
from evidence.store import STORE_FILE as EVIDENCE_STORE_FILE
from recording.segments import hash_file
from rtcc.config import Settings
from rtcc.errors import AuditWriteError
from rtcc.files import SQLITE_COMPANIONS, open_private, private_dir
from security.audit_checkpoints import CHECKPOINT_FILE, SIGNING_KEY_FILE
from security.cli import audit_verify_main, open_audit_log
from security.secretbox import AUDIT_KEY_FILE
from security.secretbox import KEY_FILE as SECRET_KEY_FILE

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_ERROR = 2

MANIFEST = "manifest.json"
FORMAT = 1
CATALOG_COPY = "catalog-store.sqlite3"
"""Name in the backup of a catalog store kept outside the data directory."""

KEY_FILES = (SECRET_KEY_FILE, AUDIT_KEY_FILE, SIGNING_KEY_FILE,
             f"{EVIDENCE_FOLDER}/{EVIDENCE_KEY_FILE}")
"""Keys, relative to the data directory. A key given by environment variable instead has no
file and is the operator's to keep."""
PLAIN_FILES = (*KEY_FILES, CHECKPOINT_FILE)


class BackupError(Exception):
    """A backup or restore cannot go on; the message says what and what to do."""


@dataclass(frozen=True, slots=True)
class _Database:
    source: Path
    name: str
    """Path in the backup; also where it goes back, relative to the data directory, unless
    ``restore_to`` says otherwise."""
    restore_to: str = ""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sha256(path: Path) -> str:
    return hash_file(path)[0]


def _catalog_path(settings: Settings) -> Path | None:
    if not settings.store.startswith("sqlite:///"):
        return None  # Redis or PostgreSQL: backed up with the department's own tools
    return Path(settings.store.removeprefix("sqlite:///"))


def _databases(settings: Settings) -> list[_Database]:
    """Every SQLite store of the data directory, and the catalog's if it lives elsewhere."""
    data = settings.data_dir
    found = [_Database(path, path.name) for path in sorted(data.glob("*.sqlite3"))
             if path.is_file()]
    catalog = _catalog_path(settings)
    if catalog is not None and catalog.exists() and catalog.resolve().parent != data.resolve():
        found.append(_Database(catalog, CATALOG_COPY, restore_to="store"))
    return found


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a live store with SQLite's online backup API; the copy is a single
    file (rollback journal mode), the server switches it back to WAL when it opens it."""
    with open_private(target, exclusive=True):
        pass  # created 0600 before SQLite writes it
    src = sqlite3.connect(source, timeout=30)  # only read: the backup API copies its pages
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def _referenced(evidence_copy: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Recorded segments and export packages named by the backed-up evidence store."""
    if not evidence_copy.exists():
        return [], []
    conn = sqlite3.connect(f"file:{evidence_copy}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        tables = {str(r[0]) for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        segments: list[dict[str, Any]] = []
        if "segments" in tables:
            segments = [{"path": f"{EVIDENCE_FOLDER}/{row['path']}", "sha256": row["sha256"],
                         "bytes": row["bytes"], "camera_id": row["camera_id"]}
                        for row in conn.execute(
                            "SELECT path, sha256, bytes, camera_id FROM segments"
                            " WHERE state != 'open' AND sha256 IS NOT NULL ORDER BY id")]
        exports: list[dict[str, Any]] = []
        if "exports" in tables:
            exports = [{"path": f"{EVIDENCE_FOLDER}/exports/{row['file_name']}",
                        "sha256": row["sha256"], "bytes": row["bytes"]}
                       for row in conn.execute(
                           "SELECT file_name, sha256, bytes FROM exports ORDER BY created_at")]
        return segments, exports
    finally:
        conn.close()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _audit(settings: Settings, action: str, details: dict[str, object]) -> None:
    """One entry in the data directory's audit log; ``AuditWriteError`` refuses the action."""
    with open_audit_log(settings) as log:
        log.append(actor=_actor(), role="cli", action=action, source="local", details=details)


def create_backup(settings: Settings, target: Path) -> dict[str, Any]:
    """Write the backup into ``target`` (a new or empty folder); returns the manifest."""
    data = settings.data_dir
    if not any(data.glob("*.sqlite3")):
        raise BackupError(f"{data} holds no server stores; check the configuration's data_dir")
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty; back up into a new folder")
    try:
        if target.resolve().is_relative_to(data.resolve()):
            raise BackupError(f"{target} is inside the data directory {data}; choose a folder "
                              "elsewhere (ideally another disk)")
    except OSError as exc:
        raise BackupError(f"cannot resolve {target}: {exc}") from exc
    # Audited before the copy, so the backup carries its own record. The manifest is written
    # last: a folder left without one by a failure is never taken for a backup.
    _audit(settings, "backup.create", {"to": str(target)})
    private_dir(target)
    files: list[dict[str, Any]] = []
    evidence_copy = target / EVIDENCE_STORE_FILE
    for database in _databases(settings):
        copy = target / database.name
        _copy_database(database.source, copy)
        entry: dict[str, Any] = {"path": database.name, "kind": "database",
                                 "sha256": _sha256(copy), "bytes": copy.stat().st_size}
        if database.restore_to:
            entry["restore_to"] = database.restore_to
        files.append(entry)
    for name in PLAIN_FILES:
        source = data / name
        if not source.exists():
            continue
        copy = target / name
        private_dir(copy.parent)
        blob = source.read_bytes()  # small: keys and one line per checkpoint
        with open_private(copy, exclusive=True) as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        files.append({"path": name, "kind": "key" if name in KEY_FILES else "checkpoints",
                      "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)})
    segments, exports = _referenced(evidence_copy)
    from rtcc import __version__

    manifest = {"format": FORMAT, "server_version": __version__, "created": _now(),
                "data_dir": str(data), "files": files, "recordings": segments,
                "exports": exports}
    with open_private(target / MANIFEST, exclusive=True) as handle:
        handle.write(json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    return manifest


def backup_main(settings: Settings, target: Path, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    try:
        manifest = create_backup(settings, target)
    except (BackupError, AuditWriteError, OSError, sqlite3.Error) as exc:
        print(f"backup failed: {exc}", file=stream)
        return EXIT_ERROR
    print(f"backup written to {target}: {len(manifest['files'])} files "
          f"({', '.join(f['path'] for f in manifest['files'])}); "
          f"{len(manifest['recordings'])} recording segments and {len(manifest['exports'])} "
          "exports listed by hash (not copied: keep the evidence folder's own copy)",
          file=stream)
    return EXIT_OK


# -- restore ---------------------------------------------------------------------------------


def _load_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{path} is missing: {source} is not a backup folder") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(
            manifest.get("files"), list):
        raise BackupError(f"{path} is not a backup manifest of format {FORMAT}")
    return manifest


def _safe_relative(name: object) -> str:
    """A manifest path that stays inside its folder."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(
            name).parts:
        raise BackupError(f"the manifest names an unsafe path {name!r}; the backup was altered")
    return name


def first_bad_file(source: Path, manifest: dict[str, Any]) -> str | None:
    """A sentence naming the first backup file that is missing or whose hash differs."""
    for entry in manifest["files"]:
        name = _safe_relative(entry.get("path"))
        path = source / name
        if not path.is_file():
            return f"{name} is missing from the backup"
        if _sha256(path) != entry.get("sha256"):
            return f"{name} does not match its SHA-256 in the manifest (altered or damaged)"
    return None


def _open_by_processes(data: Path) -> list[str]:
    """Processes (of this user: others' are not visible) with a file of ``data`` open."""
    root = str(data.resolve())
    holders: list[str] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return holders
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                target = os.readlink(fd)
                if target == root or target.startswith(root + os.sep):
                    holders.append(f"process {pid_dir.name} has {target} open")
                    break
        except OSError:
            continue  # another user's process, or gone
    return holders


def _write_file(source: Path, target: Path) -> None:
    private_dir(target.parent)
    partial = target.with_name(target.name + ".restoring")
    with open(source, "rb") as reader, open_private(partial) as writer:
        while chunk := reader.read(1 << 20):
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    os.replace(partial, target)


def _changed_references(data: Path, entries: list[dict[str, Any]]) -> Iterator[str]:
    for entry in entries:
        name = _safe_relative(entry.get("path"))
        path = data / name
        if not path.is_file():
            yield f"missing: {name}"
        elif _sha256(path) != entry.get("sha256"):
            yield f"changed: {name} (its SHA-256 differs from the evidence store's)"


def restore_main(settings: Settings, source: Path, *, force: bool = False,
                 out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    data = settings.data_dir
    try:
        manifest = _load_manifest(source)
        bad = first_bad_file(source, manifest)
        if bad is not None:
            print(f"restore refused, nothing was written: {bad}", file=stream)
            return EXIT_PROBLEM
        holders = _open_by_processes(data) if data.exists() else []
        if holders:
            print(f"restore refused: {data} is in use ({'; '.join(holders[:3])}); stop the "
                  "server first", file=stream)
            return EXIT_ERROR
        if data.exists() and any(data.iterdir()) and not force:
            print(f"restore refused: {data} is not empty; restore into an empty data "
                  "directory, or add --force to overwrite its stores and keys", file=stream)
            return EXIT_ERROR
        private_dir(data)
        catalog = _catalog_path(settings)
        restored: list[str] = []
        for entry in manifest["files"]:
            name = _safe_relative(entry["path"])
            if entry.get("restore_to") == "store":
                if catalog is None:
                    print(f"{name} (a catalog store) was not restored: the configuration's "
                          "store is not SQLite", file=stream)
                    continue
                target = catalog
            else:
                target = data / name
            if entry.get("kind") == "database":
                for suffix in SQLITE_COMPANIONS:  # stale pages of the store being replaced
                    target.with_name(target.name + suffix).unlink(missing_ok=True)
            _write_file(source / name, target)
            restored.append(str(target))
    except BackupError as exc:
        print(f"restore failed: {exc}", file=stream)
        return EXIT_ERROR
    except (OSError, KeyError, TypeError) as exc:
        print(f"restore failed while writing {data}: {exc}", file=stream)
        return EXIT_ERROR
    print(f"restored {len(restored)} files from the backup of {manifest.get('created')} "
          f"(server {manifest.get('server_version')}): {', '.join(restored)}", file=stream)
    audit = audit_verify_main(settings, out=stream)
    problems: list[str] = []
    for kind in ("recordings", "exports"):
        entries = manifest.get(kind) or []
        try:
            changed = list(_changed_references(data, entries))
        except (BackupError, OSError) as exc:
            print(f"{kind} could not be checked: {exc}", file=stream)
            return EXIT_ERROR
        print(f"{kind}: {len(entries) - len(changed)} of {len(entries)} present and unchanged",
              file=stream)
        for line in changed:
            print(f"  {line}", file=stream)
        problems.extend(changed)
    if audit == EXIT_ERROR:
        return EXIT_ERROR
    if audit == EXIT_OK:  # recorded only in a log that verified, under its own key
        try:
            _audit(settings, "backup.restore",
                   {"from": str(source), "backup_created": manifest.get("created"),
                    "missing_or_changed": len(problems)})
        except AuditWriteError as exc:
            print(f"warning: {exc}", file=stream)
    return EXIT_PROBLEM if audit != EXIT_OK or problems else EXIT_OK


__all__ = ["backup_main", "create_backup", "first_bad_file", "restore_main"]
