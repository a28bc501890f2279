"""The running evidence core and its lifecycle in the aiohttp application.

``evidence_context`` (cleanup_ctx) must come after ``security_context`` (it writes to the audit
log and records footage-request approvals through the contracts the security core publishes) and
after the hub's context (it records streams); it closes first, so recorders finish their segments
while the hub still runs.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from evidence.export import Exporter
from evidence.export_jobs import ExportJobs
from evidence.exports import purge_expired, sweep_interrupted
from evidence.items import FileIntake
from evidence.manager import RecordingManager
from evidence.requests import FootageRequests
from evidence.signing import SigningKey, load_or_create
from evidence.store import AsyncEvidenceStore
from evidence.uploads import Uploads
from recording.recorder import RecorderSettings
from rtcc.access import AuditSink
from rtcc.appkeys import (
    AUDIT,
    CAMERA_DIRECTORY,
    CLOCK,
    DATABASE,
    EVIDENCE_INTAKE,
    FOOTAGE_GRANTS,
    HUB,
    INCIDENTS,
    PULL_CLAIMS,
    RECORD_FLAGS,
    SETTINGS,
)
from rtcc.config import Settings
from rtcc.files import private_dir

log = logging.getLogger(__name__)

EVIDENCE_FOLDER = "evidence"


@dataclass(frozen=True)
class EvidenceCore:
    settings: Settings
    store: AsyncEvidenceStore
    root: Path
    key: SigningKey
    audit: AuditSink
    exporter: Exporter
    requests: FootageRequests
    uploads: Uploads
    recordings: RecordingManager | None
    export_slots: asyncio.Semaphore
    export_jobs: ExportJobs
    intake: FileIntake


EVIDENCE = web.AppKey["EvidenceCore"]("evidence_core")
"""The running evidence core; set by ``evidence_context``."""


def evidence_root(settings: Settings) -> Path:
    return settings.data_dir / EVIDENCE_FOLDER


def recorder_settings(settings: Settings) -> RecorderSettings:
    return RecorderSettings(segment_seconds=settings.evidence.segment_seconds,
                            min_free_bytes=settings.evidence.min_free_mb * 2**20)


def _claims(app: web.Application) -> Callable[[frozenset[str]], Awaitable[frozenset[str]]] | None:
    """Alone: every camera records here. One node of several: the cameras the cluster gives
    this node, none before it has joined."""
    if not app[SETTINGS].cluster.redis_url.get_secret_value():
        return None

    async def claim(cameras: frozenset[str]) -> frozenset[str]:
        claims = app.get(PULL_CLAIMS)
        return frozenset() if claims is None else await claims.claim(cameras)

    return claim


async def evidence_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: open the evidence store and key, start recording, publish ``EVIDENCE``."""
    settings = app[SETTINGS]
    audit = app[AUDIT]
    hub = app.get(HUB)
    root = evidence_root(settings)
    private_dir(root)
    store = await AsyncEvidenceStore.open(app[DATABASE])
    manager: RecordingManager | None = None
    jobs = ExportJobs(store, settings.cluster.node_id or socket.gethostname())
    try:
        key = load_or_create(root)
        interrupted = await jobs.recover()
        if interrupted:
            log.warning("evidence: %d export jobs were cut short when the server stopped; "
                        "marked failed (start them again)", interrupted)
        requests = FootageRequests(store, app[FOOTAGE_GRANTS],
                                   valid_days=settings.evidence.request_valid_days)
        if hub is not None:
            manager = RecordingManager(
                hub=hub, store=store, root=root, audit=audit,
                record_cameras={c.id: "record: true in the configuration"
                                for c in settings.cameras if c.record},
                retention_days={c.id: c.retention_days for c in settings.cameras
                                if c.retention_days is not None},
                default_retention_days=settings.evidence.retention_days,
                recorder_settings=recorder_settings(settings),
                incidents=app[INCIDENTS],
                directory=lambda: app.get(CAMERA_DIRECTORY),
                fallback_sharing={c.id: c.sharing for c in settings.cameras},
                record_flags=lambda: app.get(RECORD_FLAGS),
                claim=_claims(app),
                # The API's record flag is honoured within seconds, whatever the full-sync period.
                flags_interval=min(10.0, settings.reconcile_seconds),
                clock=app.get(CLOCK, time.time),
            )
            await manager.start()
        await store.call(purge_expired, root, time.time())
        swept = await store.call(sweep_interrupted, root)
        if any(swept.values()):
            log.warning("evidence: exports cut short by a crash: removed %d work folders and %d "
                        "half-written packages; %d complete packages have no export record "
                        "(kept in %s)", swept["work_folders"], swept["partial_packages"],
                        swept["unlisted_packages"], root / "exports")
        app[EVIDENCE] = EvidenceCore(
            settings=settings, store=store, root=root, key=key, audit=audit,
            exporter=Exporter(store.tables, root, key), requests=requests,
            uploads=Uploads(store, root, requests), recordings=manager,
            export_slots=asyncio.Semaphore(1), export_jobs=jobs,
            intake=FileIntake(store, root, audit),
        )
        app[EVIDENCE_INTAKE] = app[EVIDENCE].intake
        log.info("evidence: signing key fingerprint %s", key.fingerprint)
        yield
    finally:
        await jobs.aclose()
        if manager is not None:
            await manager.aclose()
        await store.aclose()
