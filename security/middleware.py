"""The security middleware: every request passes here before its handler.

1. The matched handler's policy (``rtcc.policy``) is looked up; a route without one is refused
   with 500 and an error in the log (a programming mistake, never an open door).
2. The caller is authenticated from ``Authorization: Bearer`` or the session cookie. The source
   address is the peer's; ``X-Forwarded-For`` is read only when the peer is a trusted proxy.
3. Role check: 401 without credentials, 403 with a role the route does not allow.
4. State-changing browser requests (cookie sessions: POST, PUT, PATCH, DELETE, WebSocket
   upgrades) must come from this site: a matching ``Origin``, or, without one, the session's
   ``X-CSRF-Token``. A foreign ``Origin`` is refused on public routes too (login CSRF).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from urllib.parse import quote, urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from rtcc.appkeys import SETTINGS
from rtcc.errors import AuditWriteError, StoreUnavailable
from rtcc.policy import Policy, policy_of
from rtcc.principal import CLIENT_ADDRESS, PRINCIPAL, Principal
from security.core import SECURITY
from security.networks import client_address_of
from security.sessions import COOKIE, clear_session_cookie

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _json(status: int, message: str, **extra: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"error": message}),
                        content_type="application/json", headers=extra or None)


def _own_origins(request: web.Request) -> set[str]:
    origins = {f"{request.scheme}://{request.host}".lower()}
    public_url = request.config_dict[SETTINGS].server.public_url
    if public_url:
        parts = urlsplit(public_url)
        origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return origins


def _origin_problem(request: web.Request, principal: Principal | None) -> str | None:
    """Why a state-changing request is refused as cross-site, or None."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None:
        if origin.lower() in _own_origins(request):
            return None
        return "cross-origin request refused"
    if request.headers.get("Sec-Fetch-Site", "").lower() in {"cross-site", "same-site"}:
        return "cross-site request refused"
    if principal is None or principal.auth != "session":
        return None
    token = request.headers.get("X-CSRF-Token", "")
    if principal.csrf_token and hmac.compare_digest(token, principal.csrf_token):
        return None
    return "a browser session request that changes state needs an Origin or X-CSRF-Token header"


def _wants_html(request: web.Request) -> bool:
    return (request.method == "GET" and not request.path.startswith("/api/")
            and "text/html" in request.headers.get(hdrs.ACCEPT, ""))


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return f"{request.method} {resource.canonical if resource is not None else request.path}"


def route_policy(request: web.Request) -> Policy | None:
    return policy_of(request.match_info.handler)


async def _anonymous(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A route whose caller stays unknown (the tip line): no cookie or token is read, and no
    log line names the caller. The address stays on the request, in memory only, for the
    route's own rate limiting."""
    unsafe = request.method not in SAFE_METHODS
    problem = _origin_problem(request, None) if unsafe else None
    if problem is not None:
        log.warning("%s %s: %s", request.method, request.path, problem)
        return _json(403, problem)
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        # Answered here, not by aiohttp, whose error log line names the caller's address.
        log.exception("%s %s failed", request.method, request.path)
        return _json(500, "the server failed on this request; try again shortly")


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    match_info = request.match_info
    if match_info.http_exception is not None:
        return await handler(request)  # 404 / 405 from the router
    policy = route_policy(request)
    if policy is None:
        log.error("refused %s: its handler declares no access policy (rtcc.policy)",
                  _route_name(request))
        return _json(500, "this route has no access policy")
    core = request.config_dict.get(SECURITY)
    if core is None:
        return _json(503, "the security core is not running")
    request[CLIENT_ADDRESS] = client_address_of(request, core.trusted_proxies)
    if policy.anonymous:
        return await _anonymous(request, handler)

    principal: Principal | None = None
    failure = ""
    stale_cookie = False
    authorization = request.headers.get(hdrs.AUTHORIZATION)
    try:
        if authorization is not None:
            scheme, _, credential = authorization.partition(" ")
            if scheme.lower() == "bearer":
                principal = await core.tokens.resolve(credential.strip())
            failure = "the API token is invalid, expired or revoked"
        elif COOKIE in request.cookies:
            principal = await core.sessions.resolve(request.cookies[COOKIE])
            stale_cookie = principal is None
            failure = "your session has expired; log in again"
    except StoreUnavailable as exc:
        # Fail closed: nobody is signed in while the accounts cannot be read; public pages
        # (health, login) keep answering.
        log.warning("%s %s: credentials not checked: %s", request.method, request.path, exc)
        if not policy.public:
            return _json(503, "the server cannot check your sign-in right now (its database "
                              "did not answer); try again in a few seconds")
        principal, stale_cookie = None, False
    if principal is not None:
        request[PRINCIPAL] = principal

    unsafe = request.method not in SAFE_METHODS or (
        request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    )
    if unsafe:
        problem = _origin_problem(request, principal)
        if problem is not None:
            log.warning("%s %s from %s: %s", request.method, request.path,
                        request[CLIENT_ADDRESS], problem)
            return _json(403, problem)

    if not policy.public:
        if principal is None:
            if _wants_html(request) and authorization is None:
                redirect = web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")
                if stale_cookie:
                    clear_session_cookie(redirect, secure=request.secure)
                raise redirect
            refusal = _json(401, failure or "log in first",
                            **{"WWW-Authenticate": 'Bearer realm="rtcc"'})
            if stale_cookie:
                clear_session_cookie(refusal, secure=request.secure)
            return refusal
        if principal.role not in policy.roles:
            with contextlib.suppress(AuditWriteError):  # refused either way; the log says why
                await core.audit.append(actor=principal.username, role=str(principal.role),
                                        action="access.denied", target=_route_name(request),
                                        source=request[CLIENT_ADDRESS])
            return _json(403, f"the {principal.role} role may not use this")

    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if stale_cookie:
            clear_session_cookie(exc, secure=request.secure)
        raise
    if stale_cookie and not response.prepared:
        clear_session_cookie(response, secure=request.secure)
    return response
