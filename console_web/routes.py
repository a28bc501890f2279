"""The analyst wall console's pages and files.

Pages carry no data: everything the console shows comes from the API, which checks the viewer's
role and the owners' consent on every call. Scripts and styles are files of this package (no
inline script, no CDN), so the page runs under ``script-src 'self'``. ``static/shared/`` holds
the modules the owner portal's pages load from here too.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from console_web import api, investigate, layouts, ptz, snapshot, tiles
from console_web.files import serve_file
from rtcc.policy import public

STATIC = Path(__file__).parent / "static"


@public()
async def root(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    raise web.HTTPFound("/console/")


@public()
async def console_redirect(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    raise web.HTTPFound("/console/")


@public()
async def console_page(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    # Public on purpose: the page asks the API for data, and the API asks for a login.
    return web.FileResponse(STATIC / "console.html")


@public()
async def console_asset(request: web.Request) -> web.StreamResponse:
    return serve_file(STATIC, request.match_info["path"])


@public()
async def favicon(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    # Browsers ask for /favicon.ico on every page; an SVG answers for all of them.
    response = web.FileResponse(STATIC / "favicon.svg")
    response.content_type = "image/svg+xml"
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/favicon.svg", favicon)
    app.router.add_get("/console", console_redirect)
    app.router.add_get("/console/", console_page)
    app.router.add_get("/console/static/{path:.+}", console_asset)
    api.add_routes(app)
    layouts.add_routes(app)
    tiles.add_routes(app)
    snapshot.add_routes(app)
    ptz.add_routes(app)
    investigate.add_routes(app)
