"""HTTP routes of the security core: login, logout, who am I, API tokens, the login page.

Administration (users, audit) is in ``admin_routes``; incidents in ``incident_routes``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rtcc.http import is_form, json_error, read_fields
from rtcc.policy import Role, allow, public
from rtcc.principal import actor_of, client_address, require_principal
from security import admin_routes, grant_routes, incident_routes
from security.core import security_core
from security.enforcement import check_views
from security.httpio import ALL_ROLES, cookie_secure, text_field
from security.login_page import render_login, safe_next
from security.owner_signup import add_signup_route
from security.ratelimit import throttle
from security.sessions import clear_session_cookie, set_session_cookie


def _asks_code(request: web.Request) -> bool:
    return security_core(request).settings.security.require_totp


def _page(request: web.Request, status: int, *, username: str, next_path: str, error: str,
          focus_code: bool = False, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, content_type="text/html", charset="utf-8",
                        headers=headers,
                        text=render_login(username=username, next_path=next_path, error=error,
                                          ask_code=_asks_code(request), focus_code=focus_code))


@public()
async def login_page(request: web.Request) -> web.Response:
    return web.Response(text=render_login(next_path=request.query.get("next", "/"),
                                          ask_code=_asks_code(request)),
                        content_type="text/html", charset="utf-8")


@public()
async def login(request: web.Request) -> web.Response:
    """``POST /api/login`` (JSON or form) and ``POST /login`` (the login page's form, which is
    answered by the page again on refusal so the address stays ``/login?next=...``)."""
    core = security_core(request)
    form = is_form(request)
    fields = await read_fields(request)
    username = text_field(fields, "username", limit=256)
    password = text_field(fields, "password")
    code = text_field(fields, "totp", limit=32) or text_field(fields, "code", limit=32)
    next_path = safe_next(text_field(fields, "next", limit=1000)
                          or request.query.get("next", "") or "/")
    if not username or not password:
        if form:
            return _page(request, 400, username=username, next_path=next_path,
                         error="Enter your user name and password.")
        return json_error(400, "username and password are required")
    source = client_address(request)
    refused = await throttle(core.login_limiter, core.audit, source, username)
    if refused is not None:
        if form:
            return _page(request, 429, username=username, next_path=next_path,
                         error=refused.message, headers=dict(refused.headers))
        return web.json_response({"error": refused.message}, status=429,
                                 headers=refused.headers)
    outcome = await core.accounts.login(username, password, code, source)
    if outcome.user is not None:
        core.login_limiter.refund(source)
    if outcome.user is None:
        if form:
            return _page(request, outcome.status, username=username, next_path=next_path,
                         error=outcome.message, focus_code=outcome.needs_code)
        body: dict[str, Any] = {"error": outcome.message}
        if outcome.needs_code:
            body["needs_code"] = True
        return web.json_response(body, status=outcome.status)
    user = outcome.user
    value, csrf = await core.sessions.create(user.id, source)
    response: web.Response
    if form:
        response = web.Response(status=303, headers={"Location": next_path})
    else:
        body = user.as_json(core.clock())
        body["csrf_token"] = csrf
        body["idle_minutes"] = core.settings.security.session_idle_minutes
        response = web.json_response(body)
    set_session_cookie(response, value, secure=cookie_secure(request))
    return response


@allow(*ALL_ROLES)
async def logout(request: web.Request) -> web.Response:
    core = security_core(request)
    principal = require_principal(request)
    if principal.session_hash is not None:
        await core.sessions.end(principal.session_hash)
    await core.audit.append(actor=principal.username, role=str(principal.role), action="logout",
                            source=client_address(request))
    await check_views(request)  # the session's open views end with it
    if is_form(request):
        response = web.Response(status=303, headers={"Location": "/login"})
    else:
        response = web.json_response({"ok": True})
    clear_session_cookie(response, secure=cookie_secure(request))
    return response


@allow(*ALL_ROLES)
async def me(request: web.Request) -> web.Response:
    core = security_core(request)
    principal = require_principal(request)
    user = await core.accounts.get(principal.user_id)
    if user is None:
        return json_error(401, "log in first")
    body = user.as_json(core.clock())
    body["auth"] = principal.auth
    if principal.csrf_token:
        body["csrf_token"] = principal.csrf_token
    return web.json_response(body)


def _expiry(fields: dict[str, Any], now: float) -> float | None:
    days = fields.get("expires_days")
    if days is None:
        return None
    if not isinstance(days, int | float) or isinstance(days, bool) or not 0 < days <= 3650:
        raise web.HTTPBadRequest(text='{"error": "expires_days must be between 0 and 3650"}',
                                 content_type="application/json")
    return now + float(days) * 86400


async def issue_token(request: web.Request, user_id: int, fields: dict[str, Any]) -> web.Response:
    core = security_core(request)
    name = text_field(fields, "name", limit=100).strip() or "api"
    expires = _expiry(fields, core.clock())
    actor = actor_of(request)
    token_id, token = await core.tokens.create(user_id, name, expires=expires)
    await core.audit.append(actor=actor.name, role=actor.role, action="token.create",
                            target=f"token:{token_id}", source=actor.source,
                            details={"user_id": user_id, "name": name})
    return web.json_response(
        {"id": token_id, "name": name, "token": token, "expires": expires,
         "note": "the token is shown only now; store it safely"},
        status=201,
    )


@allow(*ALL_ROLES)
async def create_token(request: web.Request) -> web.Response:
    principal = require_principal(request)
    return await issue_token(request, principal.user_id, await read_fields(request))


@allow(Role.ADMIN)
async def create_token_for_user(request: web.Request) -> web.Response:
    """An administrator issues a token for another account (an agent, an automation user)."""
    core = security_core(request)
    try:
        user = await core.accounts.get(int(request.match_info["user_id"]))
    except ValueError:
        user = None
    if user is None:
        return json_error(404, "no such user")
    return await issue_token(request, user.id, await read_fields(request))


@allow(*ALL_ROLES)
async def list_tokens(request: web.Request) -> web.Response:
    core = security_core(request)
    principal = require_principal(request)
    tokens = [info.as_json() for info in await core.tokens.of_user(principal.user_id)]
    return web.json_response({"tokens": tokens})


@allow(*ALL_ROLES)
async def revoke_token(request: web.Request) -> web.Response:
    core = security_core(request)
    principal = require_principal(request)
    try:
        token_id = int(request.match_info["token_id"])
    except ValueError:
        return json_error(404, "no such token")
    owner = None if principal.role == Role.ADMIN else principal.user_id
    if not await core.tokens.revoke(token_id, owner):
        return json_error(404, "no such token")
    actor = actor_of(request)
    await core.audit.append(actor=actor.name, role=actor.role, action="token.revoke",
                            target=f"token:{token_id}", source=actor.source)
    await check_views(request)  # the token's open views end with it
    return web.json_response({"ok": True, "revoked": token_id})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_post("/api/tokens", create_token)
    app.router.add_get("/api/tokens", list_tokens)
    app.router.add_delete("/api/tokens/{token_id}", revoke_token)
    app.router.add_post("/api/users/{user_id}/tokens", create_token_for_user)
    add_signup_route(app)
    admin_routes.add_routes(app)
    incident_routes.add_routes(app)
    grant_routes.add_routes(app)


__all__ = ["add_routes"]
