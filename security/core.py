"""The security core: the store and the services built on it, created once per server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from rtcc.config import Settings
from rtcc.db import Database
from rtcc.files import private_dir
from rtcc.http import required
from rtcc.workers import WorkerPool
from security.accounts import Accounts
from security.audit import AuditLog
from security.grants import GrantBook
from security.incidents import IncidentBook
from security.networks import Network, trusted_proxy_networks
from security.passwords import Passwords
from security.ratelimit import AttemptLimiter
from security.secretbox import AesGcmBox, load_audit_key, load_secret_box
from security.sessions import Sessions, Tokens
from security.store import Clock, SecurityStore


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
    grants: GrantBook
    trusted_proxies: tuple[Network, ...]
    login_limiter: AttemptLimiter
    """Rations login and sign-up attempts (each hashes a password) per address and overall."""
    owns_database: bool = False
    """The core made its own ``Database`` (a command-line program) and closes it."""

    @classmethod
    async def open(cls, settings: Settings, clock: Clock = time.time,
                   env: Mapping[str, str] | None = None,
                   workers: WorkerPool | None = None,
                   database: Database | None = None) -> SecurityCore:
        """``database``: the server's (``rtcc.appkeys.DATABASE``); a command-line program
        passes none and the core uses its own, made from ``settings`` and closed with it."""
        private_dir(settings.data_dir)  # 0700; an existing folder open to others is tightened
        box = load_secret_box(settings.data_dir, env)
        db = Database.from_settings(settings) if database is None else database
        try:
            store = await SecurityStore.open(db, settings.data_dir)
        except BaseException:
            if database is None:
                await asyncio.to_thread(db.close)
            raise
        audit = AuditLog(store, clock, load_audit_key(settings.data_dir, env))
        return cls(
            settings=settings,
            store=store,
            box=box,
            clock=clock,
            audit=audit,
            accounts=Accounts(store, audit, box, settings.security, clock,
                              Passwords(workers=workers)),
            sessions=Sessions(store, clock, settings.security.session_idle_minutes * 60.0),
            tokens=Tokens(store, clock),
            incidents=IncidentBook(store, clock),
            grants=GrantBook(store, clock),
            trusted_proxies=tuple(trusted_proxy_networks(settings)),
            login_limiter=AttemptLimiter.from_config(settings.security, clock),
            owns_database=database is None,
        )

    async def aclose(self) -> None:
        await self.store.aclose()
        if self.owns_database:
            await asyncio.to_thread(self.store.database.close)


SECURITY = web.AppKey("security_core", SecurityCore)
"""The running security core; set by ``security_context``. Only the security package and the
composition root use it: other domains use the contracts in ``rtcc.access``."""


def security_core(request: web.Request) -> SecurityCore:
    return required(request, SECURITY, "the security core")
