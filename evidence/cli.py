"""``rtcc export`` and ``rtcc verify``. Each returns the process exit code.

``rtcc export --camera ID --from T --to T --case N [--watermark] [--out FILE]`` works on the
server's data directory (the server may be running: SQLite in WAL mode allows it), shows a
progress bar on stderr, audits the export and places a legal hold on the exported range.
``rtcc verify FILE (--key PEM | --config FILE)`` checks a package against a trusted key: the one
given with ``--key`` or else the server's own (from its configuration's data directory); with
neither it fails and says how to give one. Run with the server's configuration it also compares
the sources with the segments stored there and audits the verification.
"""

from __future__ import annotations

import getpass
import sys
import time
from pathlib import Path
from typing import TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.context import evidence_root
from evidence.export import COMMAND_LINE, Exporter, ExportGrant, ExportRequest
from evidence.items import export_item
from evidence.signing import KEY_FILE, SigningKeyError, load_or_create, load_public_pem
from evidence.store import STORE_FILE, EvidenceStore
from evidence.verify import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREADABLE,
    VerifyReport,
    store_checker,
    verify_package,
)
from recording.holds import add_hold
from recording.segments import hash_file
from recording.times import iso_utc, parse_utc
from rtcc.access import AuditOpener
from rtcc.config import Settings
from rtcc.db import Database
from rtcc.errors import AuditWriteError, RtccError

EXIT_ERROR = 2
CLI_ROLE = "cli"


class ProgressBar:
    """``[#########.........]  45% checking source hashes`` on one line of a terminal."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._last = ""

    def __call__(self, stage: str, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        filled = int(self._width * fraction)
        line = f"[{'#' * filled}{'.' * (self._width - filled)}] {fraction * 100:3.0f}% {stage}"
        if line == self._last:
            return
        self._last = line
        self._stream.write("\r" + line.ljust(72))
        self._stream.flush()

    def finish(self) -> None:
        if self._last:
            self._stream.write("\n")
            self._stream.flush()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _audit(audit_log: AuditOpener, settings: Settings, action: str, *, camera_id: str = "",
           owner_id: str = "", target: str = "", outcome: str = "ok",
           details: dict[str, object] | None = None) -> None:
    with audit_log(settings) as sink:
        sink.append(
            actor=_actor(), role=CLI_ROLE, action=action, target=target, camera_id=camera_id,
            owner_id=owner_id, outcome=outcome, source="local", details=details)


def export_main(settings: Settings, camera: str, start: str | float, end: str | float,
                case: str, out: Path | None = None, watermark: bool = False, *,
                audit_log: AuditOpener, reason: str = "", err: TextIO | None = None,
                stdout: TextIO | None = None) -> int:
    """Export a camera's recordings between two times for a case into one signed package,
    audited in the log ``audit_log`` opens."""
    errors = err or sys.stderr
    output = stdout or sys.stdout
    try:
        first = parse_utc(start, "--from")
        last = parse_utc(end, "--to")
    except ValueError as exc:
        print(f"export refused: {exc}", file=errors)
        return EXIT_ERROR
    if not case.strip():
        print("export refused: --case is required", file=errors)
        return EXIT_ERROR
    configured = next((c for c in settings.cameras if c.id == camera), None)
    root = evidence_root(settings)
    # A local administrator's tool: its basis is the command line (audited), not a grant.
    grant = ExportGrant(COMMAND_LINE, _actor())
    details: dict[str, object] = {"case": case, "start": first, "end": last,
                                  "watermark": watermark, "reason": reason,
                                  "grant": grant.as_json()}
    try:
        _audit(audit_log, settings, "evidence.export", camera_id=camera, outcome="started",
               owner_id=configured.owner if configured else "", details=details)
    except AuditWriteError as exc:
        print(f"export refused: {exc}", file=errors)
        return EXIT_ERROR
    database = Database.from_settings(settings)
    try:
        store = EvidenceStore.open_on(database)
    except RtccError as exc:
        database.close()
        print(f"export failed: the evidence store cannot be opened: {exc}", file=errors)
        _audit_quietly(audit_log, settings, "evidence.export", camera_id=camera, outcome="failed",
                       details={**details, "error": str(exc)})
        return EXIT_FAILED
    bar = ProgressBar(errors)
    try:
        key = load_or_create(root)
        job = ExportRequest(camera_id=camera, start=first, end=last, case=case.strip(),
                            requester=_actor(), requester_role=CLI_ROLE,
                            owner_id=configured.owner if configured else "",
                            camera_name=configured.name if configured else "",
                            watermark=watermark, reason=reason, grant=grant)
        result = Exporter(store, root, key).export(job, out, bar)
        bar.finish()
        hold = add_hold(store, camera_id=camera, case_number=case.strip(),
                        start=result.clip_start, end=result.clip_end,
                        reason=f"export {result.export_id}", created_by=_actor(),
                        now=time.time())
    except (RtccError, OSError) as exc:
        bar.finish()
        print(f"export failed: {exc}", file=errors)
        _audit_quietly(audit_log, settings, "evidence.export", camera_id=camera, outcome="failed",
                       details={**details, "error": str(exc)})
        return EXIT_FAILED
    finally:
        store.close()
        database.close()
    _audit_quietly(audit_log, settings, "evidence.export", camera_id=camera,
                   target=f"export:{result.export_id}",
                   details={**details, "export_id": result.export_id, "sha256": result.sha256,
                            "file": str(result.package), "frames": result.frames,
                            "segments": list(result.segment_ids), "hold": hold.id})
    print(f"exported {result.frames} frames of camera {camera} "
          f"({iso_utc(result.clip_start)} to {iso_utc(result.clip_end)}) for case {case}",
          file=output)
    print(f"package: {result.package}", file=output)
    print(f"SHA-256: {result.sha256} ({result.bytes} bytes)", file=output)
    print(f"signed with key fingerprint {key.fingerprint}; legal hold {hold.id}", file=output)
    return EXIT_OK


def export_item_main(settings: Settings, item_id: str, out: Path | None = None, *,
                     audit_log: AuditOpener, reason: str = "", err: TextIO | None = None,
                     stdout: TextIO | None = None) -> int:
    """Package one evidence item taken in from a file (a tip's photo...), signed, audited."""
    errors = err or sys.stderr
    output = stdout or sys.stdout
    details: dict[str, object] = {"item": item_id, "reason": reason}
    try:
        _audit(audit_log, settings, "evidence.export", target=f"item:{item_id}",
               outcome="started", details=details)
    except AuditWriteError as exc:
        print(f"export refused: {exc}", file=errors)
        return EXIT_ERROR
    database = Database.from_settings(settings)
    root = evidence_root(settings)
    try:
        store = EvidenceStore.open_on(database)
        try:
            result = export_item(store, root, load_or_create(root), item_id,
                                 requester=_actor(), requester_role=CLI_ROLE, reason=reason,
                                 target=out)
        finally:
            store.close()
    except (RtccError, OSError) as exc:
        print(f"export failed: {exc}", file=errors)
        _audit_quietly(audit_log, settings, "evidence.export", target=f"item:{item_id}",
                       outcome="failed", details={**details, "error": str(exc)})
        return EXIT_FAILED
    finally:
        database.close()
    _audit_quietly(audit_log, settings, "evidence.export", target=f"item:{item_id}",
                   details={**details, "export_id": result.export_id, "sha256": result.sha256,
                            "file": str(result.package)})
    print(f"exported evidence item {item_id} for case {result.manifest['case']}", file=output)
    print(f"package: {result.package}", file=output)
    print(f"SHA-256: {result.sha256} ({result.bytes} bytes)", file=output)
    return EXIT_OK


def _audit_quietly(audit_log: AuditOpener, settings: Settings, action: str, *,
                   camera_id: str = "", target: str = "", outcome: str = "ok",
                   details: dict[str, object] | None = None) -> None:
    try:
        _audit(audit_log, settings, action, camera_id=camera_id, target=target, outcome=outcome,
               details=details)
    except AuditWriteError as exc:
        print(f"warning: {exc}", file=sys.stderr)


def _trusted_keys(settings: Settings | None, key_path: Path | None
                  ) -> list[Ed25519PublicKey]:
    """The key given with ``--key``, else the server's own; never one read from the package."""
    if key_path is not None:
        return [load_public_pem(key_path.read_bytes())]
    if settings is not None:
        if not (evidence_root(settings) / KEY_FILE).exists():
            raise SigningKeyError(
                f"the server has no evidence signing key at {evidence_root(settings) / KEY_FILE}"
                " (it is created at the first export): give the signer's public key with "
                "--key FILE")
        return [load_or_create(evidence_root(settings)).public]
    return []


def verify_main(path: Path, settings: Settings | None = None, *, key_path: Path | None = None,
                audit_log: AuditOpener | None = None, out: TextIO | None = None) -> int:
    """0 when the package checks out, 1 naming what is wrong, 2 when it cannot be read.
    With the server's ``settings`` the sources are compared with the stored segments, and the
    verification is audited in the log ``audit_log`` opens."""
    stream = out or sys.stdout
    try:
        trusted = _trusted_keys(settings, key_path)
    except (OSError, SigningKeyError) as exc:
        print(f"cannot read the trusted key: {exc}", file=stream)
        return EXIT_ERROR
    database = Database.from_settings(settings) if settings is not None else None
    store: EvidenceStore | None = None
    try:
        # On SQLite a server that never recorded has no store to compare with.
        if database is not None and settings is not None and (
                database.dialect != "sqlite" or (settings.data_dir / STORE_FILE).exists()):
            try:
                store = EvidenceStore.open_on(database)
            except RtccError as exc:
                print(f"cannot read the evidence store: {exc}", file=stream)
                return EXIT_ERROR
        checker = store_checker(store, evidence_root(settings)) if store and settings else None
        report = verify_package(path, trusted_keys=trusted, store_check=checker)
    finally:
        if store is not None:
            store.close()
        if database is not None:
            database.close()
    print(report.describe(), file=stream)
    if settings is not None and audit_log is not None:
        _audit_verification(audit_log, settings, path, report)
    return report.exit_code()


def _audit_verification(audit_log: AuditOpener, settings: Settings, path: Path,
                        report: VerifyReport) -> None:
    try:
        sha, _ = hash_file(path)
    except OSError:
        sha = ""
    manifest = report.manifest or {}
    camera = manifest.get("camera")
    camera_id = str(camera.get("id", "")) if isinstance(camera, dict) else ""
    outcome = {EXIT_OK: "ok", EXIT_FAILED: "failed", EXIT_UNREADABLE: "unreadable"}[
        report.exit_code()]
    _audit_quietly(
        audit_log, settings, "evidence.verify", target=f"export:{manifest.get('export_id', '')}",
        camera_id=camera_id, outcome=outcome,
        details={"file": path.name, "sha256": sha,
                 "problems": [check.line() for check in report.failures][:20]})
