"""Static pages of the console. Pages carry no secrets: everything they show comes from the API,
which checks the viewer's role and consent on every call."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from rtcc.policy import public

STATIC = Path(__file__).parent / "static"


@public()
async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


@public()
async def console_page(request: web.Request) -> web.StreamResponse:
    # The page itself is public; it asks the API for data, and the API asks for a login.
    return web.FileResponse(STATIC / "console.html")


@public()
async def console_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    allowed = {path.name: path for path in STATIC.iterdir() if path.suffix in (".js", ".css")}
    if name not in allowed:
        raise web.HTTPNotFound(text="no such file")
    return web.FileResponse(allowed[name])


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/console/", console_page)
    app.router.add_get("/console/static/{name}", console_asset)
