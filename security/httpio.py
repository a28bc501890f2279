"""Request and response plumbing shared by the security routes."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from rtcc.appkeys import SETTINGS
from rtcc.policy import Role
from security.accounts import Actor
from security.principal import client_address, require_principal

ALL_ROLES = tuple(Role)
MAX_FORM_BYTES = 64 * 1024


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def is_form(request: web.Request) -> bool:
    return request.content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}


async def read_fields(request: web.Request) -> dict[str, Any]:
    """The request's JSON object or form fields; 400/413/415 otherwise."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES,
                                            actual_size=request.content_length)
    if is_form(request):
        form = await request.post()
        return {key: value for key, value in form.items() if isinstance(value, str)}
    if request.content_type == "application/json" or not request.body_exists:
        if not request.body_exists:
            return {}
        body = await request.content.read(MAX_FORM_BYTES + 1)
        if len(body) > MAX_FORM_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES, actual_size=len(body))
        try:
            data = json.loads(body)
        except ValueError:
            raise web.HTTPBadRequest(text='{"error": "the body is not valid JSON"}',
                                     content_type="application/json") from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text='{"error": "the body must be a JSON object"}',
                                     content_type="application/json")
        return data
    raise web.HTTPUnsupportedMediaType(text='{"error": "send JSON or a form"}',
                                       content_type="application/json")


def text_field(fields: dict[str, Any], name: str, *, limit: int = 1024) -> str:
    value = fields.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} must be text"}),
                                 content_type="application/json")
    if len(value) > limit:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} is too long"}),
                                 content_type="application/json")
    return value


def cookie_secure(request: web.Request) -> bool:
    server = request.config_dict[SETTINGS].server
    return request.secure or server.tls_cert is not None or server.public_url.startswith("https:")


def actor_of(request: web.Request) -> Actor:
    principal = require_principal(request)
    return Actor(principal.username, str(principal.role), client_address(request))
