"""Who is making a request: set by the security middleware, read by every domain's handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from rtcc.policy import STAFF_ROLES, Role


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs an account change, for the audit log."""

    name: str
    role: str
    source: str = ""


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


def actor_of(request: web.Request) -> Actor:
    """The logged-in caller as the audit log names them; 401 when nobody is logged in."""
    principal = require_principal(request)
    return Actor(principal.username, str(principal.role), client_address(request))
