"""Pages and files of the tip line.

``GET /tips/``                 the public tip page: anonymous (no cookie read, no address
                               logged), small, no third-party content, works without a map
``GET /tips/static/{path}``    its script and style
``GET /tips/vendor/{path}``    Leaflet, for the map pin (only offered with the department's own
                               tiles, served from this server: no third-party content)
``GET /tips/api/map``          those tiles and a starting point, or ``{"tile_url": null}``
``GET /console/tips/``         the analysts' tip queue (the page is public and carries no data;
                               the API asks for a login)
``GET /console/tips/static/{path}``

Scripts and styles are files of this package, run under ``script-src 'self'``; what a tipster
typed is put into the console page as text, never as markup.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from console_web.files import serve_file
from rtcc.appkeys import SETTINGS
from rtcc.policy import anonymous, public

STATIC = Path(__file__).parent / "static"
VENDOR = Path(__file__).parent.parent / "static" / "vendor"


@anonymous()
async def tip_redirect(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    raise web.HTTPFound("/tips/")


@anonymous()
async def tip_page(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    return web.FileResponse(STATIC / "tip.html", headers={"Cache-Control": "no-cache"})


@anonymous()
async def tip_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["path"]
    if not name.startswith("tip"):
        raise web.HTTPNotFound(text="no such file")
    return serve_file(STATIC, name)


@anonymous()
async def tip_vendor(request: web.Request) -> web.StreamResponse:
    return serve_file(VENDOR, request.match_info["path"])


@anonymous()
async def tip_map(request: web.Request) -> web.Response:
    console = request.config_dict[SETTINGS].console
    # Tiles from another site would tell it who opened the tip page, and where they looked.
    own_tiles = console.tile_url.startswith("/") and not console.tile_url.startswith("//")
    start = console.places[0] if console.places else None
    return web.json_response({
        "tile_url": console.tile_url if own_tiles else None,
        "tile_attribution": console.tile_attribution if own_tiles else "",
        "start": {"lat": start.lat, "lon": start.lon} if start is not None else None,
    })


@public()
async def queue_page(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    # Public on purpose: the page asks the API for data, and the API asks for a login.
    return web.FileResponse(STATIC / "queue.html", headers={"Cache-Control": "no-cache"})


@public()
async def queue_asset(request: web.Request) -> web.StreamResponse:
    return serve_file(STATIC, request.match_info["path"])


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/tips", tip_redirect)
    router.add_get("/tips/", tip_page)
    router.add_get("/tips/static/{path:[^/]+}", tip_asset)
    router.add_get("/tips/vendor/{path:.+}", tip_vendor)
    router.add_get("/tips/api/map", tip_map)
    router.add_get("/console/tips/", queue_page)
    router.add_get("/console/tips/static/{path:[^/]+}", queue_asset)
