"""The analyst wall console's pages and files.

Pages carry no data: everything the console shows comes from the API, which checks the viewer's
role and the owners' consent on every call. Scripts and styles are files of this package (no
inline script, no CDN), so the page runs under ``script-src 'self'``.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from console_web import api
from rtcc.policy import public

STATIC = Path(__file__).parent / "static"
_SERVED_SUFFIXES = frozenset({".js", ".css", ".png", ".svg"})


@public()
async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


@public()
async def console_redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


@public()
async def console_page(request: web.Request) -> web.StreamResponse:
    # Public on purpose: the page asks the API for data, and the API asks for a login.
    return web.FileResponse(STATIC / "console.html")


def static_file(relative: str) -> Path | None:
    """The package file at ``relative`` when it may be served, else None (never a path outside
    the static folder, never a file of another kind)."""
    if not relative or "\\" in relative or "\x00" in relative:
        return None
    root = STATIC.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or candidate.suffix not in _SERVED_SUFFIXES:
        return None
    return candidate if candidate.is_file() else None


@public()
async def console_asset(request: web.Request) -> web.StreamResponse:
    found = static_file(request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound(text="no such file")
    # Revalidated on every load (Last-Modified), so a new release is picked up at once.
    return web.FileResponse(found, headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/console", console_redirect)
    app.router.add_get("/console/", console_page)
    app.router.add_get("/console/static/{path:.+}", console_asset)
    api.add_routes(app)
