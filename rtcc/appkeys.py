"""Typed keys for what the application object carries; the only shared state between modules."""

from __future__ import annotations

import time

from aiohttp import web

from rtcc.access import (
    AgentAccounts,
    AuditSink,
    CameraDirectory,
    Clock,
    ConsentChanges,
    EvidenceIntake,
    FootageGrants,
    IncidentLookup,
    MediaAccess,
    PullClaims,
    RecordFlags,
    SecretBox,
    ViewEnforcement,
)
from rtcc.config import Settings
from rtcc.db import Database
from rtcc.hub import StreamHub
from rtcc.owners import OwnerRegistry
from rtcc.workers import WorkerPool

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
HUB = web.AppKey("hub", StreamHub)

CLOCK = web.AppKey[Clock]("clock")
"""Optional: set before the app starts to replace ``time.time`` (tests move time with it)."""

MEDIA_ACCESS = web.AppKey[MediaAccess]("media_access")
CAMERA_DIRECTORY = web.AppKey[CameraDirectory]("camera_directory")
SECRET_BOX = web.AppKey[SecretBox]("secret_box")

# Published by the security core (``security.context``).
AUDIT = web.AppKey[AuditSink]("audit_sink")
INCIDENTS = web.AppKey[IncidentLookup]("incident_lookup")
FOOTAGE_GRANTS = web.AppKey[FootageGrants]("footage_grants")
CONSENT_CHANGES = web.AppKey[ConsentChanges]("consent_changes")
AGENT_ACCOUNTS = web.AppKey[AgentAccounts]("agent_accounts")
VIEW_ENFORCEMENT = web.AppKey[ViewEnforcement]("view_enforcement")

# Published by the cluster node (``server.cluster``) once it has joined; unset when alone.
PULL_CLAIMS = web.AppKey[PullClaims]("pull_claims")

# Threads for CPU-heavy work (password hashing), opened and closed by the application.
WORKERS = web.AppKey("workers", WorkerPool)

# Published by the catalog (``catalog.context``).
OWNER_REGISTRY = web.AppKey[OwnerRegistry]("owner_registry")
RECORD_FLAGS = web.AppKey[RecordFlags]("record_flags")

# Published by the evidence domain (``evidence.context``).
EVIDENCE_INTAKE = web.AppKey[EvidenceIntake]("evidence_intake")


def clock_of(request: web.Request) -> Clock:
    """The server's clock: ``CLOCK`` when set, else ``time.time``."""
    return request.config_dict.get(CLOCK, time.time)
