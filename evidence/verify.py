"""``rtcc verify FILE``: is this export package complete and unaltered?

Checks, each reported as a line that says plainly what is wrong:

1. the package holds only the expected files, each once, all regular files;
2. the public key inside it against the trusted keys (the server's own, or one given with
   ``--key``): a package signed by any other key, even one bundled in it, fails, and with no
   trusted key at all nothing is vouched for, so that fails too;
3. the Ed25519 signature over ``manifest.json``; when it fails, the per-part signatures name the
   altered entry (a source segment's hash, a file's hash, the case or time range...);
4. the SHA-256 and size of every file in the package against the manifest;
5. the manifest's own consistency (frame counts of the sources against the clip);
6. optionally (run on the server that made it), each source segment against the evidence store:
   the hash recorded when it was written, and the file on disk now.

Exit status 0: everything checked out; 1: something is wrong (named); 2: not a readable package.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.items import item as stored_item
from evidence.manifest import (
    CLIP_NAME,
    FILE_FORMAT,
    FILE_MEMBER,
    FORMAT,
    MANIFEST_NAME,
    PACKAGE_MEMBERS,
    PUBLIC_KEY_NAME,
    SIGNATURE_NAME,
    describe_part,
    part_message,
    parts_of,
)
from evidence.signing import (
    ALGORITHM,
    SigningKeyError,
    fingerprint,
    load_public_pem,
    verify_b64,
)
from evidence.store import EvidenceStore
from recording.segments import UnsafePath, contained, hash_file

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREADABLE = 2
MAX_SMALL_MEMBER = 16 * 1024 * 1024
REQUIRED = (MANIFEST_NAME, SIGNATURE_NAME, PUBLIC_KEY_NAME, CLIP_NAME)


@dataclass(frozen=True, slots=True)
class Check:
    status: str
    """"ok", "fail" or "note"."""
    subject: str
    detail: str

    def line(self) -> str:
        label = {"ok": "OK  ", "fail": "FAIL", "note": "NOTE"}[self.status]
        return f"{label} {self.subject}: {self.detail}"


@dataclass
class VerifyReport:
    path: str
    checks: list[Check] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    key_fingerprint: str = ""
    readable: bool = True

    @property
    def ok(self) -> bool:
        return self.readable and not any(check.status == "fail" for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == "fail"]

    def add(self, status: str, subject: str, detail: str) -> None:
        self.checks.append(Check(status, subject, detail))

    def exit_code(self) -> int:
        if not self.readable:
            return EXIT_UNREADABLE
        return EXIT_OK if self.ok else EXIT_FAILED

    def describe(self) -> str:
        lines = [f"Verifying {self.path}"] + [check.line() for check in self.checks]
        if not self.readable:
            lines.append("RESULT: NOT VERIFIED: the file is not a readable export package")
        elif self.ok:
            lines.append("RESULT: VERIFIED: signature, manifest and every hash check out")
        else:
            names = "; ".join(f"{c.subject}" for c in self.failures)
            count = len(self.failures)
            lines.append(f"RESULT: FAILED ({count} problem{'' if count == 1 else 's'}): {names}")
        return "\n".join(lines)


StoreCheck = Callable[[dict[str, Any], VerifyReport], None]


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise ValueError(f"{member.name} is unreasonably large ({member.size} bytes)")
    handle = tar.extractfile(member)
    if handle is None:
        raise ValueError(f"{member.name} is not a regular file")
    return handle.read()


def _hash_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[str, int]:
    handle = tar.extractfile(member)
    if handle is None:
        raise ValueError(f"{member.name} is not a regular file")
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(1024 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _members(tar: tarfile.TarFile, report: VerifyReport) -> dict[str, tarfile.TarInfo]:
    found: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        if member.name not in PACKAGE_MEMBERS and not FILE_MEMBER.fullmatch(member.name):
            report.add("fail", member.name, "this file does not belong in an export package "
                                            "(added after export)")
            continue
        if not member.isfile():
            report.add("fail", member.name, "is not a regular file")
            continue
        if member.name in found:
            report.add("fail", member.name, "appears twice in the package")
            continue
        found[member.name] = member
    # A package of a file item holds its original instead of a clip.
    item_package = any(FILE_MEMBER.fullmatch(name) for name in found)
    for name in REQUIRED:
        if name not in found and not (item_package and name == CLIP_NAME):
            report.add("fail", name, "is missing from the package")
    return found


def _check_signature(report: VerifyReport, key: Ed25519PublicKey, body: bytes,
                     signature: dict[str, Any], manifest: dict[str, Any] | None) -> None:
    if signature.get("algorithm") != ALGORITHM:
        report.add("fail", SIGNATURE_NAME, f"unknown algorithm {signature.get('algorithm')!r}")
        return
    if signature.get("key_fingerprint") != report.key_fingerprint:
        report.add("fail", SIGNATURE_NAME, "names a different key than the one in the package")
    whole = signature.get("manifest")
    if isinstance(whole, str) and verify_b64(key, whole, body):
        report.add("ok", MANIFEST_NAME, "the signature matches (Ed25519)")
        return
    if manifest is None:
        report.add("fail", MANIFEST_NAME, "the signature does not match and the manifest is "
                                          "not valid JSON: it was damaged or altered")
        return
    parts = parts_of(manifest)
    signed_parts = signature.get("parts")
    signed_parts = signed_parts if isinstance(signed_parts, dict) else {}
    altered = [name for name, value in parts.items()
               if not (isinstance(signed_parts.get(name), str)
                       and verify_b64(key, signed_parts[name], part_message(name, value)))]
    removed = [name for name in signed_parts if name not in parts]
    if not altered and not removed:
        report.add("fail", MANIFEST_NAME, "the signature does not match: the file was altered "
                                          "after signing (its layout or spacing changed)")
        return
    for name in altered:
        report.add("fail", f"{MANIFEST_NAME} {name}",
                   f"{describe_part(name, parts[name])} was altered after signing "
                   "(its signature does not match)")
    for name in removed:
        report.add("fail", f"{MANIFEST_NAME} {name}", "an entry signed at export was removed")


def _check_files(report: VerifyReport, tar: tarfile.TarFile,
                 members: dict[str, tarfile.TarInfo], manifest: dict[str, Any]) -> None:
    entries = manifest.get("files")
    if not isinstance(entries, list):
        report.add("fail", MANIFEST_NAME, "has no list of files")
        return
    listed: set[str] = set()
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            report.add("fail", MANIFEST_NAME, "a file entry has no name")
            continue
        listed.add(name)
        member = members.get(name)
        if member is None:
            report.add("fail", name, "is listed in the manifest but missing from the package")
            continue
        sha, size = _hash_member(tar, member)
        if sha != entry.get("sha256"):
            report.add("fail", name, f"its SHA-256 {sha} does not match the manifest's "
                                     f"{entry.get('sha256')}: the file was altered")
        elif size != entry.get("bytes"):
            report.add("fail", name, f"is {size} bytes, the manifest says {entry.get('bytes')}")
        else:
            report.add("ok", name, f"SHA-256 {sha} ({size} bytes) matches the manifest")
    for name in members:
        if name not in listed and name not in (MANIFEST_NAME, SIGNATURE_NAME, PUBLIC_KEY_NAME):
            report.add("fail", name, "is in the package but not in the manifest")


def _check_item(report: VerifyReport, manifest: dict[str, Any]) -> None:
    """A file item's package: its one file is the item, hash for hash, as taken in."""
    item = manifest.get("item")
    files = manifest.get("files")
    if not isinstance(item, dict) or not isinstance(files, list) or len(files) != 1 \
            or not isinstance(files[0], dict):
        report.add("fail", MANIFEST_NAME, "the item or its file entry is incomplete")
        return
    entry = files[0]
    if not FILE_MEMBER.fullmatch(str(entry.get("name", ""))):
        report.add("fail", MANIFEST_NAME, f"names the item's file {entry.get('name')!r}, "
                                          "not original.<ending>")
    elif entry.get("sha256") != item.get("sha256") or entry.get("bytes") != item.get("bytes"):
        report.add("fail", MANIFEST_NAME, "the packaged file's hash differs from the hash "
                                          "recorded when the item was taken in")
    else:
        report.add("ok", "item", f"evidence item {item.get('id')!r}, case "
                                 f"{manifest.get('case')!r}, SHA-256 {item.get('sha256')} as "
                                 "taken in")


def _check_consistency(report: VerifyReport, manifest: dict[str, Any]) -> None:
    if manifest.get("format") == FILE_FORMAT:
        _check_item(report, manifest)
        return
    if manifest.get("format") != FORMAT:
        report.add("fail", MANIFEST_NAME, f"unknown format {manifest.get('format')!r}")
        return
    sources = manifest.get("sources")
    if not isinstance(sources, list) or not sources:
        report.add("fail", MANIFEST_NAME, "names no source segments")
        return
    try:
        used = sum(int(s["frames_used"][1]) - int(s["frames_used"][0]) + 1 for s in sources)
        clip_frames = int(manifest["clip"]["frames"])
        bad_hash = [i + 1 for i, s in enumerate(sources)
                    if not (isinstance(s.get("sha256"), str) and len(s["sha256"]) == 64
                            and all(ch in "0123456789abcdef" for ch in s["sha256"]))]
    except (KeyError, TypeError, ValueError, IndexError):
        report.add("fail", MANIFEST_NAME, "the source or clip entries are incomplete")
        return
    for index in bad_hash:
        report.add("fail", f"source segment {index}", "its SHA-256 in the manifest is not a "
                                                      "valid SHA-256 value")
    if used != clip_frames:
        report.add("fail", MANIFEST_NAME, f"the sources account for {used} frames but the clip "
                                          f"is said to hold {clip_frames}")
    else:
        report.add("ok", "sources", f"{len(sources)} source segments, {clip_frames} frames, "
                                    f"case {manifest.get('case')!r}, camera "
                                    f"{manifest.get('camera', {}).get('id')!r}")


def verify_package(path: Path, *, trusted_keys: Sequence[Ed25519PublicKey] = (),
                   store_check: StoreCheck | None = None) -> VerifyReport:
    report = VerifyReport(str(path))
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 (closed below)
    except (OSError, tarfile.TarError) as exc:
        report.readable = False
        report.add("fail", path.name, f"cannot be read as an export package: {exc}")
        return report
    with tar:
        try:
            members = _members(tar, report)
            if any(name not in members for name in (MANIFEST_NAME, SIGNATURE_NAME,
                                                    PUBLIC_KEY_NAME)):
                report.readable = bool(members)
                return report
            body = _read_member(tar, members[MANIFEST_NAME], MAX_SMALL_MEMBER)
            signature_raw = _read_member(tar, members[SIGNATURE_NAME], MAX_SMALL_MEMBER)
            key_pem = _read_member(tar, members[PUBLIC_KEY_NAME], 64 * 1024)
        except (OSError, tarfile.TarError, ValueError) as exc:
            report.readable = False
            report.add("fail", path.name, f"cannot be read: {exc}")
            return report
        try:
            key = load_public_pem(key_pem)
        except SigningKeyError as exc:
            report.add("fail", PUBLIC_KEY_NAME, str(exc))
            return report
        report.key_fingerprint = fingerprint(key)
        _check_key(report, trusted_keys)
        try:
            signature = json.loads(signature_raw)
            if not isinstance(signature, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            report.add("fail", SIGNATURE_NAME, "is damaged (not valid JSON)")
            signature = {}
        manifest: dict[str, Any] | None
        try:
            parsed = json.loads(body)
            manifest = parsed if isinstance(parsed, dict) else None
        except (ValueError, UnicodeDecodeError):
            manifest = None
        report.manifest = manifest
        if signature:
            _check_signature(report, key, body, signature, manifest)
        if manifest is None:
            return report
        if manifest.get("signing_key", {}).get("fingerprint") != report.key_fingerprint:
            report.add("fail", PUBLIC_KEY_NAME, "is not the key the manifest names")
        _check_consistency(report, manifest)
        _check_files(report, tar, members, manifest)
        if store_check is not None:
            store_check(manifest, report)
    return report


NO_TRUSTED_KEY = (
    "no trusted key was given, and the key inside a package proves nothing (anyone can re-sign "
    "a package with a key of their own): give the department's published public key with "
    "--key FILE (the server serves it at /api/evidence/public-key), or run on the server with "
    "--config FILE"
)


def _check_key(report: VerifyReport, trusted_keys: Sequence[Ed25519PublicKey]) -> None:
    if not trusted_keys:
        report.add("fail", PUBLIC_KEY_NAME,
                   f"signed with key fingerprint {report.key_fingerprint}, but {NO_TRUSTED_KEY}")
        return
    if report.key_fingerprint in {fingerprint(key) for key in trusted_keys}:
        report.add("ok", PUBLIC_KEY_NAME,
                   f"signed with the trusted key (fingerprint {report.key_fingerprint})")
    else:
        report.add("fail", PUBLIC_KEY_NAME,
                   f"signed with key fingerprint {report.key_fingerprint}, which is not the "
                   "trusted key: the package was re-signed or comes from another server")


def store_checker(store: EvidenceStore, root: Path) -> StoreCheck:
    """Compare each source segment with what this server recorded when it was written."""

    def check(manifest: dict[str, Any], report: VerifyReport) -> None:
        if manifest.get("format") == FILE_FORMAT:
            _check_stored_item(store, root, manifest, report)
            return
        camera = manifest.get("camera", {}).get("id")
        for i, source in enumerate(manifest.get("sources", [])):
            segment_id = source.get("segment_id") if isinstance(source, dict) else None
            label = f"source segment {i + 1} (id {segment_id})"
            row = store.segment(segment_id) if isinstance(segment_id, int) else None
            if row is None or row.camera_id != camera:
                report.add("note", label, "is not stored on this server (evicted, or exported "
                                          "elsewhere): only the manifest's hash was checked")
                continue
            if row.sha256 != source.get("sha256"):
                report.add("fail", label, "the manifest's SHA-256 differs from the one this "
                                          f"server recorded when the segment was written "
                                          f"({row.sha256})")
                continue
            try:
                sha, _ = hash_file(contained(root, row.path))
            except (OSError, UnsafePath) as exc:
                report.add("note", label, f"cannot be re-read on this server: {exc}")
                continue
            if sha != row.sha256:
                report.add("fail", label, "the stored segment no longer matches the hash "
                                          "recorded when it was written: altered on this server")
            else:
                report.add("ok", label, "matches the segment stored on this server")

    return check


def _check_stored_item(store: EvidenceStore, root: Path, manifest: dict[str, Any],
                       report: VerifyReport) -> None:
    described = manifest.get("item")
    item_id = described.get("id") if isinstance(described, dict) else None
    row = stored_item(store, item_id) if isinstance(item_id, str) else None
    if row is None or not isinstance(described, dict):
        report.add("note", "item", "is not stored on this server: only the manifest's hash "
                                   "was checked")
        return
    if row.sha256 != described.get("sha256"):
        report.add("fail", "item", "the manifest's SHA-256 differs from the one this server "
                                   f"recorded when the item was taken in ({row.sha256})")
        return
    try:
        sha, _ = hash_file(contained(root, row.path))
    except (OSError, UnsafePath) as exc:
        report.add("note", "item", f"cannot be re-read on this server: {exc}")
        return
    if sha != row.sha256:
        report.add("fail", "item", "the stored file no longer matches the hash recorded when "
                                   "it was taken in: altered on this server")
    else:
        report.add("ok", "item", "matches the item stored on this server")
