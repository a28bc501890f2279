"""Request and response plumbing shared by the security routes."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from rtcc.appkeys import SETTINGS
from rtcc.policy import Role

ALL_ROLES = tuple(Role)


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
