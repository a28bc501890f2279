"""The investigator's workspace page, ``/investigate/``: recorded footage on a timeline, a
synchronised player for up to four cameras, bookmarks, exports and footage requests.

The page carries no data; everything comes from ``/api/investigate/...`` (``evidence``), which
cuts every answer to the caller's grants. Its scripts are files of this package
(``static/investigate/``), so it runs under ``script-src 'self'``.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from console_web.files import serve_file
from rtcc.policy import public

STATIC = Path(__file__).parent / "static"


@public()
async def investigate_redirect(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    raise web.HTTPFound("/investigate/")


@public()
async def investigate_page(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    # Public on purpose, as the wall: the page asks the API, and the API asks for a login.
    return web.FileResponse(STATIC / "investigate.html")


@public()
async def investigate_asset(request: web.Request) -> web.StreamResponse:
    return serve_file(STATIC / "investigate", request.match_info["path"])


def add_routes(app: web.Application) -> None:
    app.router.add_get("/investigate", investigate_redirect)
    app.router.add_get("/investigate/", investigate_page)
    app.router.add_get("/investigate/static/{path:.+}", investigate_asset)
