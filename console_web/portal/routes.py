"""Pages and files of the owner portal, and the little configuration its map needs.

Every page is a static file run under ``script-src 'self'``: scripts and styles are files of
this package, Leaflet is the copy vendored beside the console, the modules shared with the console
(API calls, building nodes) load from ``/console/static/shared/``, and whatever an owner typed is
put into the page as text by the scripts, never as markup.

``GET /register/``            what the program is, what is shared and what is not
``GET /register/join``        sign-up form (``POST /api/owner/signup``)
``GET /register/dashboard``   the owner's cameras, agents, footage requests and access log
``GET /register/camera``      register or edit a camera on the map (``?id=`` to edit)
``GET /register/agent``       an enrollment token for the agent, and the command to run
``GET /register/facilities``  the owner's facilities (schools, churches...) and a new one
``GET /register/facility``    one facility's profile, floor plans and rooms, panic devices and
                              their QR codes, and its alerts (``?id=``)
``GET /api/portal/config``    map tiles and a starting point for the map (no data)
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from console_web.files import serve_file
from rtcc.appkeys import SETTINGS
from rtcc.policy import public

STATIC = Path(__file__).parent / "static"
VENDOR = Path(__file__).parent.parent / "static" / "vendor"
PAGES = {
    "": "index.html",
    "join": "join.html",
    "dashboard": "dashboard.html",
    "camera": "camera.html",
    "agent": "agent.html",
    "facilities": "facilities.html",
    "facility": "facility.html",
}


@public()
async def portal_redirect(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    raise web.HTTPFound("/register/")


@public()
async def portal_page(request: web.Request) -> web.StreamResponse:
    # Public on purpose: owner pages carry no data and ask the API, which asks for a login.
    name = PAGES.get(request.path.removeprefix("/register/"))
    if name is None:
        raise web.HTTPNotFound(text="no such page")
    return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})


@public()
async def portal_asset(request: web.Request) -> web.StreamResponse:
    return serve_file(STATIC, request.match_info["path"])


@public()
async def vendor_asset(request: web.Request) -> web.StreamResponse:
    return serve_file(VENDOR, request.match_info["path"])


@public()
async def portal_config(request: web.Request) -> web.Response:
    settings = request.config_dict[SETTINGS]
    console = settings.console
    start = console.places[0] if console.places else None
    return web.json_response({
        "tile_url": console.tile_url,
        "tile_attribution": console.tile_attribution,
        "start": {"lat": start.lat, "lon": start.lon} if start is not None else None,
        "server_url": settings.server.public_url,
    })


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/register", portal_redirect)
    router.add_get("/register/", portal_page)
    for page in PAGES:
        if page:
            router.add_get(f"/register/{page}", portal_page)
    router.add_get("/register/static/{path:.+}", portal_asset)
    router.add_get("/register/vendor/{path:.+}", vendor_asset)
    router.add_get("/api/portal/config", portal_config)
