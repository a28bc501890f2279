"""The running security core and its lifecycle in the aiohttp application."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from aiohttp import web

from rtcc.appkeys import MEDIA_ACCESS, SECRET_BOX, SETTINGS
from rtcc.config import Settings
from rtcc.files import private_dir
from security.accounts import Accounts
from security.audit import AuditLog, AuditWriteError
from security.audit_checkpoints import AuditCheckpoints
from security.bootstrap import run_bootstrap
from security.incidents import IncidentBook
from security.media_access import StoreMediaAccess
from security.middleware import Network, trusted_proxy_networks
from security.principal import CLOCK, SECURITY
from security.secretbox import AesGcmBox, load_audit_key, load_secret_box
from security.sessions import Sessions, Tokens
from security.store import Clock, SecurityStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SecurityCore:
    settings: Settings
    store: SecurityStore
    box: AesGcmBox
    clock: Clock
    audit: AuditLog
    accounts: Accounts
    sessions: Sessions
    tokens: Tokens
    incidents: IncidentBook
    trusted_proxies: tuple[Network, ...]

    @classmethod
    def open(cls, settings: Settings, clock: Clock = time.time,
             env: Mapping[str, str] | None = None) -> SecurityCore:
        private_dir(settings.data_dir)  # 0700; an existing folder open to others is tightened
        box = load_secret_box(settings.data_dir, env)
        store = SecurityStore.open_in(settings.data_dir)
        audit = AuditLog(store, clock, load_audit_key(settings.data_dir, env))
        return cls(
            settings=settings,
            store=store,
            box=box,
            clock=clock,
            audit=audit,
            accounts=Accounts(store, audit, box, settings.security, clock),
            sessions=Sessions(store, clock, settings.security.session_idle_minutes * 60.0),
            tokens=Tokens(store, clock),
            incidents=IncidentBook(store, clock),
            trusted_proxies=tuple(trusted_proxy_networks(settings)),
        )

    def close(self) -> None:
        self.store.close()


async def security_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: open the store, publish MEDIA_ACCESS and SECRET_BOX, run the bootstrap."""
    settings = app[SETTINGS]
    clock = app.get(CLOCK, time.time)
    core = SecurityCore.open(settings, clock)
    try:
        if not settings.security.require_totp:
            log.warning("security.require_totp is off: staff log in with a password only. "
                        "Acceptable for a demo, never for a department's server")
        await run_bootstrap(core, os.environ.get("RTCC_BOOTSTRAP_TOKEN", ""))
        core.audit.append(actor="system", role="", action="server.start",
                          details={"version": _version()})
        checkpoints = await AuditCheckpoints.start(
            core.audit, settings.data_dir, clock=clock,
            every_entries=settings.security.audit_checkpoint_entries,
            every_seconds=settings.security.audit_checkpoint_seconds)
        app[SECURITY] = core
        app[MEDIA_ACCESS] = StoreMediaAccess(core)
        app[SECRET_BOX] = core.box
        yield
        core.sessions.purge()
        with contextlib.suppress(AuditWriteError):  # already logged; shutdown goes on
            core.audit.append(actor="system", role="", action="server.stop")
        await checkpoints.aclose()  # checkpoints the stop entry
    finally:
        core.close()


def _version() -> str:
    from rtcc import __version__

    return __version__
