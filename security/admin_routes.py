"""Administration routes: user accounts, unlocking, the audit log, an owner's access log."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from rtcc.http import json_error, read_fields
from rtcc.policy import Role, allow
from rtcc.principal import actor_of, require_principal
from security.accounts import AccountError
from security.core import security_core
from security.enforcement import check_views
from security.httpio import text_field

MAX_AUDIT_PAGE = 1000


def _bool(fields: dict[str, Any], name: str) -> bool | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "1", "yes", "on"}:
        return True
    if isinstance(value, str) and value.lower() in {"false", "0", "no", "off"}:
        return False
    raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} must be true or false"}),
                             content_type="application/json")


@allow(Role.ADMIN)
async def create_user(request: web.Request) -> web.Response:
    core = security_core(request)
    fields = await read_fields(request)
    role_text = text_field(fields, "role", limit=32)
    try:
        role = Role(role_text)
    except ValueError:
        return json_error(400, "role must be one of: " + ", ".join(str(r) for r in Role))
    password = text_field(fields, "password") or None
    try:
        user, uri = await core.accounts.create_user(
            actor_of(request),
            text_field(fields, "username", limit=64),
            role,
            password=password,
            owner_id=text_field(fields, "owner_id", limit=64) or None,
            display_name=text_field(fields, "display_name", limit=200),
            enroll_totp=_bool(fields, "totp"),
            token_only=bool(_bool(fields, "token_only")),
        )
    except AccountError as exc:
        return json_error(exc.status, str(exc))
    body: dict[str, Any] = {"user": user.as_json(core.clock())}
    if uri is not None:
        body["totp_uri"] = uri
        body["note"] = "the one-time-code secret is shown only now; scan it into an app"
    return web.json_response(body, status=201)


@allow(Role.ADMIN)
async def list_users(request: web.Request) -> web.Response:
    core = security_core(request)
    now = core.clock()
    users = await core.accounts.all_users()
    return web.json_response({"users": [user.as_json(now) for user in users]})


@allow(Role.ADMIN)
async def unlock_user(request: web.Request) -> web.Response:
    core = security_core(request)
    try:
        user_id = int(request.match_info["user_id"])
        user = await core.accounts.unlock(actor_of(request), user_id)
    except ValueError:
        return json_error(404, "no such user")
    except AccountError as exc:
        return json_error(exc.status, str(exc))
    return web.json_response({"user": user.as_json(core.clock())})


async def _set_disabled(request: web.Request, disabled: bool) -> web.Response:
    core = security_core(request)
    try:
        user_id = int(request.match_info["user_id"])
        if disabled and user_id == require_principal(request).user_id:
            return json_error(409, "you cannot disable your own account")
        user = await core.accounts.set_disabled(actor_of(request), user_id, disabled)
    except ValueError:
        return json_error(404, "no such user")
    except AccountError as exc:
        return json_error(exc.status, str(exc))
    if disabled:
        await check_views(request)  # the account's open views end now
    return web.json_response({"user": user.as_json(core.clock())})


@allow(Role.ADMIN)
async def disable_user(request: web.Request) -> web.Response:
    return await _set_disabled(request, True)


@allow(Role.ADMIN)
async def enable_user(request: web.Request) -> web.Response:
    return await _set_disabled(request, False)


def _int_query(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} must be an integer"}),
                                 content_type="application/json") from None


@allow(Role.ADMIN, Role.SUPERVISOR)
async def audit_log(request: web.Request) -> web.Response:
    core = security_core(request)
    query = request.query
    entries = await core.audit.query(
        camera_id=query.get("camera") or None,
        owner_id=query.get("owner") or None,
        actor=query.get("actor") or None,
        action=query.get("action") or None,
        since_ms=_int_query(request, "since_ms"),
        before_id=_int_query(request, "before_id"),
        limit=_int_query(request, "limit") or 100,
    )
    return web.json_response({"entries": [entry.as_json() for entry in entries]})


@allow(Role.OWNER)
async def access_log(request: web.Request) -> web.Response:
    """Who looked at the owner's cameras, when and why (only the owner's own entries)."""
    core = security_core(request)
    principal = require_principal(request)
    if not principal.owner_id:
        return web.json_response({"entries": []})
    entries = await core.audit.query(
        owner_id=principal.owner_id,
        camera_id=request.query.get("camera") or None,
        before_id=_int_query(request, "before_id"),
        limit=min(_int_query(request, "limit") or 100, MAX_AUDIT_PAGE),
    )
    shown = [entry.as_json() for entry in entries]
    for item in shown:  # the department's internal addresses are not the owner's business
        item.pop("hash", None)
        item.pop("source", None)
    return web.json_response({"entries": shown})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/users", create_user)
    app.router.add_get("/api/users", list_users)
    app.router.add_post("/api/users/{user_id}/unlock", unlock_user)
    app.router.add_post("/api/users/{user_id}/disable", disable_user)
    app.router.add_post("/api/users/{user_id}/enable", enable_user)
    app.router.add_get("/api/audit", audit_log)
    app.router.add_get("/api/access-log", access_log)
