"""Who is making a request, and the keys under which the security core is reachable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from aiohttp import web

from rtcc.policy import STAFF_ROLES, Role
from security.store import Clock

if TYPE_CHECKING:
    from security.context import SecurityCore

AuthKind = Literal["session", "token"]


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: Role
    owner_id: str | None
    auth: AuthKind
    session_hash: str | None = None
    csrf_token: str | None = None
    token_id: int | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


SECURITY = web.AppKey["SecurityCore"]("security_core")
"""The running security core (store, accounts, sessions, audit); set by ``security_context``."""

CLOCK = web.AppKey[Clock]("security_clock")
"""Optional: set before the app starts to replace ``time.time`` (tests move time with it)."""

PRINCIPAL = web.RequestKey("rtcc_principal", Principal)
CLIENT_ADDRESS = web.RequestKey("rtcc_client_address", str)


def principal_of(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


def require_principal(request: web.Request) -> Principal:
    found = principal_of(request)
    if found is None:
        raise web.HTTPUnauthorized(
            text='{"error": "log in first"}', content_type="application/json"
        )
    return found


def client_address(request: web.Request) -> str:
    """The caller's address as the security middleware established it."""
    return request.get(CLIENT_ADDRESS) or request.remote or ""


def security_core(request: web.Request) -> SecurityCore:
    try:
        return request.config_dict[SECURITY]
    except KeyError:
        raise web.HTTPServiceUnavailable(
            text='{"error": "the security core is not running"}', content_type="application/json"
        ) from None
