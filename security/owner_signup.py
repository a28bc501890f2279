"""Public sign-up of camera owners: a catalog owner record and an owner account in one step.

``POST /api/owner/signup`` (public) ``{"organisation", "contact_name", "email", "phone",
"username", "password", "timezone"}`` registers the owner with the catalog
(``rtcc.owners.OwnerRegistry``, which gives the new ``owner_id``), creates an account of the
``owner`` role scoped to it (no one-time code: the staff rules of ``totp_required`` do not
apply to owners), and logs the new owner in (session cookie). ``timezone`` (optional, an IANA
zone name the page proposes from the browser) is checked and answered back, for the portal to
propose for sharing hours. Answers ``201 {"user", "owner", "csrf_token", "timezone"}``;
``400 {"error", "field"}`` for a bad field, ``409`` for a user name already taken, ``429``
with ``Retry-After`` when an address or the whole server has signed up too often, or has used
up its budget of login attempts (``security.ratelimit``; password hashing is deliberately
expensive, so it is rationed).
"""

from __future__ import annotations

import asyncio
import logging
import re
import zoneinfo
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from rtcc.access import Actor
from rtcc.appkeys import OWNER_REGISTRY
from rtcc.errors import AuditWriteError, StoreUnavailable
from rtcc.http import read_fields
from rtcc.owners import FieldProblem, OwnerContact, parse_contact, text_field
from rtcc.policy import Role, public
from rtcc.principal import client_address
from security.accounts import AccountError
from security.core import security_core
from security.httpio import cookie_secure
from security.passwords import password_problem
from security.ratelimit import throttle
from security.sessions import set_session_cookie

log = logging.getLogger(__name__)

WINDOW_SECONDS = 3600.0
PER_ADDRESS = 5
"""Sign-ups one address may make per hour."""
OVERALL = 60
"""Sign-ups the whole server accepts per hour."""
MAX_TRACKED_ADDRESSES = 10_000
CONCURRENT_HASHES = 2

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass
class SignupLimiter:
    """Sliding one-hour windows of accepted sign-up attempts, per address and overall."""

    per_address: int = PER_ADDRESS
    overall: int = OVERALL
    window: float = WINDOW_SECONDS
    _by_address: dict[str, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)
    hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONCURRENT_HASHES))

    def _prune(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()

    def retry_after(self, address: str, now: float) -> float:
        """0 when an attempt from ``address`` may go ahead now, else seconds to wait."""
        self._prune(self._all, now)
        times = self._by_address.get(address)
        if times is not None:
            self._prune(times, now)
            if not times:
                del self._by_address[address]
        waits = []
        if len(self._all) >= self.overall:
            waits.append(self._all[0] + self.window - now)
        if times and len(times) >= self.per_address:
            waits.append(times[0] + self.window - now)
        return max(waits, default=0.0)

    def record(self, address: str, now: float) -> None:
        if address not in self._by_address and len(self._by_address) >= MAX_TRACKED_ADDRESSES:
            oldest = min(self._by_address, key=lambda a: self._by_address[a][-1])
            del self._by_address[oldest]
        self._by_address.setdefault(address, deque()).append(now)
        self._all.append(now)


SIGNUP_LIMITER = web.AppKey("owner_signup_limiter", SignupLimiter)


@dataclass(frozen=True, slots=True)
class Signup:
    owner: OwnerContact
    username: str
    password: str
    timezone: str = "UTC"


def parse_signup(fields: dict[str, Any]) -> Signup:
    owner = parse_contact(fields)
    username = text_field(fields, "username", "User name", required=True, limit=64)
    if not _USERNAME.fullmatch(username):
        raise FieldProblem("username", "User name: letters, digits, '.', '_', '@' or '-', "
                                      "starting with a letter or digit")
    password = fields.get("password", "")
    if not isinstance(password, str) or not password:
        raise FieldProblem("password", "Password is required")
    problem = password_problem(password, username)
    if problem:
        raise FieldProblem("password", problem[0].upper() + problem[1:])
    return Signup(owner, username, password, parse_timezone(fields))


def parse_timezone(fields: dict[str, Any]) -> str:
    """The owner's IANA time zone (``UTC`` when not given); raises ``FieldProblem``."""
    name = text_field(fields, "timezone", "Time zone", required=False, limit=64) or "UTC"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise FieldProblem("timezone", f"Time zone: unknown zone {name!r}; use an IANA name "
                                       "such as America/Chicago") from None
    return name


def _refusal(exc: FieldProblem) -> web.Response:
    return web.json_response({"error": str(exc), "field": exc.field}, status=exc.status)


@public()
async def signup(request: web.Request) -> web.Response:
    core = security_core(request)
    limiter = request.config_dict[SIGNUP_LIMITER]
    source = client_address(request)
    try:
        data = parse_signup(await read_fields(request))
    except FieldProblem as exc:
        return _refusal(exc)
    now = core.clock()
    wait = limiter.retry_after(source, now)
    if wait > 0:
        log.warning("owner sign-up from %s refused: too many sign-ups", source)
        return web.json_response(
            {"error": "too many sign-ups from here; try again later", "field": ""},
            status=429, headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    # Sign-ups and failed logins share one budget of password hashes per address.
    refused = await throttle(core.login_limiter, core.audit, source, data.username,
                             action="owner.signup")
    if refused is not None:
        return web.json_response({"error": refused.message, "field": ""}, status=429,
                                 headers=refused.headers)
    limiter.record(source, now)
    if await core.accounts.by_name(data.username) is not None:
        return _refusal(FieldProblem("username", "that user name is taken; choose another", 409))

    registry = request.config_dict.get(OWNER_REGISTRY)
    try:
        if registry is None:
            raise StoreUnavailable("no owner registry is running")
        owner = await registry.register_owner(data.owner)
    except StoreUnavailable as exc:
        log.warning("owner sign-up: the catalog store is unavailable: %s", exc)
        return web.json_response({"error": "the catalog is unavailable; try again shortly",
                                  "field": ""}, status=503)
    owner_id = owner.owner_id
    actor = Actor(data.username, str(Role.OWNER), source)
    try:
        async with limiter.hashing:
            user, _ = await core.accounts.create_user(
                actor, data.username, Role.OWNER, password=data.password, owner_id=owner_id,
                display_name=data.owner.contact_name, enroll_totp=False)
    except (AccountError, AuditWriteError) as exc:
        await registry.remove_owner(owner_id)
        if isinstance(exc, AuditWriteError):
            return web.json_response({"error": "the audit log cannot be written, so no account "
                                      "was made; try again later", "field": ""}, status=503)
        field_name = "password" if "password" in str(exc) else "username"
        return _refusal(FieldProblem(field_name, str(exc), exc.status))

    session, csrf = await core.sessions.create(user.id, source)
    try:
        await core.audit.append(actor=user.username, role=str(user.role), action="login",
                                source=source, owner_id=owner_id, details={"via": "sign-up"})
    except AuditWriteError:
        log.error("owner %s: the login after sign-up could not be audited", owner_id)
    log.info("owner %s signed up (user %s)", owner_id, user.username)
    body = {"user": user.as_json(core.clock()), "owner": owner.record,
            "csrf_token": csrf, "timezone": data.timezone}
    response = web.json_response(body, status=201)
    set_session_cookie(response, session, secure=cookie_secure(request))
    return response


def add_signup_route(app: web.Application) -> None:
    app[SIGNUP_LIMITER] = SignupLimiter()
    app.router.add_post("/api/owner/signup", signup)
