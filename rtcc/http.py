"""JSON error answers and request body reading shared by every domain's routes.

Errors are ``{"error": message, ...}``; the message says what went wrong, to what, and what to do.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web

MAX_BODY = 64 * 1024
"""Default limit for a JSON or form body, in bytes. Routes that take files (uploads, imports)
say otherwise; the application's ``client_max_size`` bounds those."""

T = TypeVar("T")


class JsonError(web.HTTPError):
    """An HTTP error answered as ``{"error": message, ...}``; raise it from a handler."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        self.status_code = status
        super().__init__(text=json.dumps({"error": message, **extra}),
                         content_type="application/json")
        self.message = message


def error(status: int, message: str, **extra: Any) -> JsonError:
    """An HTTP error with a JSON body; raise it."""
    return JsonError(status, message, **extra)


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    """An error answer with a JSON body; return it."""
    return web.json_response({"error": message, **extra}, status=status)


def required(request: web.Request, key: web.AppKey[T], what: str) -> T:
    """A service the application carries, or 503 naming what is not running."""
    try:
        return request.config_dict[key]
    except KeyError:
        raise error(503, f"{what} is not running") from None


def is_form(request: web.Request) -> bool:
    return request.content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}


def too_large(limit: int) -> JsonError:
    return error(413, f"the body is larger than {limit} bytes (the most this endpoint accepts)",
                 limit=limit)


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The request body, or 413 as soon as it is known to exceed ``limit`` bytes (before any
    of it is read when Content-Length says so)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    body = bytearray()
    while len(body) <= limit:  # read() returns what has arrived so far, not the whole body
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        raise too_large(limit)
    return bytes(body)


async def read_fields(request: web.Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The request's JSON object or form fields (an empty body is ``{}``); 400/413/415
    otherwise."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    if is_form(request):
        form = await request.post()
        return {key: value for key, value in form.items() if isinstance(value, str)}
    if request.content_type == "application/json" or not request.body_exists:
        if not request.body_exists:
            return {}
        try:
            data = json.loads(await read_body(request, limit))
        except (ValueError, UnicodeDecodeError):
            raise error(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise error(400, "the body must be a JSON object")
        return data
    raise error(415, "send JSON or a form")


async def read_json(request: web.Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The request's JSON object, whatever its content type (an empty body is ``{}``);
    400/413 otherwise."""
    if not request.body_exists:
        return {}
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise error(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise error(400, "the body must be a JSON object")
    return data
