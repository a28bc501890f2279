"""Response headers that every page and API answer carries, refusals and errors included."""

from __future__ import annotations

from aiohttp import web

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: https:; connect-src 'self'; media-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_HSTS = "max-age=31536000"


def apply_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # "same-origin", not "no-referrer": under no-referrer Chromium sends `Origin: null` with form
    # posts, and the login form would fail the cross-origin check. Other sites still get nothing.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    if request.secure:
        response.headers.setdefault("Strict-Transport-Security", _HSTS)


async def security_headers_on_prepare(
    request: web.Request, response: web.StreamResponse
) -> None:
    """``on_response_prepare`` signal: runs for every answer just before its headers are sent,
    streamed ones (exports, live feeds, downloads) and refusals included."""
    apply_security_headers(request, response)
