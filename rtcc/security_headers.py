"""Response headers that every page and API answer carries, refusals and errors included."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: https:; connect-src 'self'; media-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_HSTS = "max-age=31536000"


def apply_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:
        return
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # "same-origin", not "no-referrer": under no-referrer Chromium sends `Origin: null` with form
    # posts, and the login form would fail the cross-origin check. Other sites still get nothing.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    if request.secure:
        response.headers.setdefault("Strict-Transport-Security", _HSTS)


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        apply_security_headers(request, exc)
        raise
    apply_security_headers(request, response)
    return response
