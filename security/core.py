"""The security core: the store and the services built on it, created once per server."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from rtcc.config import Settings
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

    @classmethod
    async def open(cls, settings: Settings, clock: Clock = time.time,
                   env: Mapping[str, str] | None = None,
                   workers: WorkerPool | None = None) -> SecurityCore:
        private_dir(settings.data_dir)  # 0700; an existing folder open to others is tightened
        box = load_secret_box(settings.data_dir, env)
        store = await SecurityStore.open_in(settings.data_dir)
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
        )

    async def aclose(self) -> None:
        await self.store.aclose()


SECURITY = web.AppKey("security_core", SecurityCore)
"""The running security core; set by ``security_context``. Only the security package and the
composition root use it: other domains use the contracts in ``rtcc.access``."""


def security_core(request: web.Request) -> SecurityCore:
    return required(request, SECURITY, "the security core")
