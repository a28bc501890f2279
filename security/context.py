"""The running security core and its lifecycle in the aiohttp application."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator

from aiohttp import web

from rtcc.appkeys import (
    AGENT_ACCOUNTS,
    AUDIT,
    CAMERA_DIRECTORY,
    CLOCK,
    CONSENT_CHANGES,
    DATABASE,
    FOOTAGE_GRANTS,
    INCIDENTS,
    MEDIA_ACCESS,
    SECRET_BOX,
    SETTINGS,
    VIEW_ENFORCEMENT,
    WORKERS,
)
from rtcc.errors import AuditWriteError, StoreUnavailable
from security.audit_checkpoints import AuditCheckpoints
from security.bootstrap import run_bootstrap
from security.core import SECURITY, SecurityCore
from security.enforcement import ENFORCEMENT, Enforcement
from security.media_access import StoreMediaAccess
from security.published import StoreAgentAccounts, StoreFootageGrants, StoreIncidents
from security.recovery import close_cut_views

log = logging.getLogger(__name__)


async def security_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: open the store, run the bootstrap, publish the core (``SECURITY``) and its
    contracts (``MEDIA_ACCESS``, ``SECRET_BOX``, ``AUDIT``, ``INCIDENTS``, ``FOOTAGE_GRANTS``,
    ``CONSENT_CHANGES``, ``AGENT_ACCOUNTS``, ``VIEW_ENFORCEMENT``); run the policy decision point
    that checks open views again while they run."""
    settings = app[SETTINGS]
    clock = app.get(CLOCK, time.time)
    core = await SecurityCore.open(settings, clock, workers=app.get(WORKERS),
                                   database=app.get(DATABASE))
    try:
        if not settings.security.require_totp:
            log.warning("security.require_totp is off: staff log in with a password only. "
                        "Acceptable for a demo, never for a department's server")
        await run_bootstrap(core, os.environ.get("RTCC_BOOTSTRAP_TOKEN", ""))
        # Before this run's server.start: the scan reaches back to the previous one.
        await core.audit.run_with_writer(close_cut_views)
        await core.audit.append(actor="system", role="", action="server.start",
                                details={"version": _version()})
        checkpoints = await AuditCheckpoints.start(
            core.audit, settings.data_dir, clock=clock,
            every_entries=settings.security.audit_checkpoint_entries,
            every_seconds=settings.security.audit_checkpoint_seconds)
        app[SECURITY] = core
        enforcement = Enforcement(core, lambda: app.get(CAMERA_DIRECTORY),
                                  settings.security.enforcement_interval_seconds)
        app[ENFORCEMENT] = enforcement
        app[VIEW_ENFORCEMENT] = enforcement
        enforcement.start()
        media_access = StoreMediaAccess(core, enforcement, lambda: app.get(CAMERA_DIRECTORY))
        app[MEDIA_ACCESS] = media_access
        app[CONSENT_CHANGES] = media_access
        app[SECRET_BOX] = core.box
        app[AUDIT] = core.audit
        app[INCIDENTS] = StoreIncidents(core)
        app[FOOTAGE_GRANTS] = StoreFootageGrants(core)
        app[AGENT_ACCOUNTS] = StoreAgentAccounts(core, enforcement)
        try:
            yield
        finally:
            await enforcement.aclose()
        try:
            await core.sessions.purge()
        except StoreUnavailable as exc:  # expired sessions stay refused; purged next start
            log.warning("expired sessions not purged at shutdown: %s", exc)
        with contextlib.suppress(AuditWriteError):  # already logged; shutdown goes on
            await core.audit.append(actor="system", role="", action="server.stop")
        await checkpoints.aclose()  # checkpoints the stop entry
    finally:
        await core.aclose()


def _version() -> str:
    from rtcc import __version__

    return __version__
