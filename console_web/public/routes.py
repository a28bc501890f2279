"""The public transparency page under ``/public/``: no login, no third-party content.

``GET /public/``                 the crime map, response times and camera numbers
                                 (``?type=&from=&to=`` filter the map and the list)
``GET /public/static/{path}``    its script and style
``GET /public/vendor/{path}``    Leaflet, vendored with the console

Map tiles come only from the department's configured tile server (``console.tile_url``);
without one the map is drawn on a plain grid.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import date
from pathlib import Path

from aiohttp import web

from console_web.files import serve_file
from console_web.public.render import render_page
from rtcc.appkeys import SETTINGS
from rtcc.http import required
from rtcc.policy import public
from transparency.keys import TRANSPARENCY

STATIC = Path(__file__).parent / "static"
VENDOR = Path(__file__).parent.parent / "static" / "vendor"
PAGE_CACHE = web.AppKey("public_page_cache", OrderedDict)
PAGES_KEPT = 32


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@public()
async def redirect(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    raise web.HTTPFound("/public/")


@public()
async def page(request: web.Request) -> web.Response:
    service = required(request, TRANSPARENCY, "the transparency service")
    settings = request.config_dict[SETTINGS]
    snapshot = service.snapshot
    types = frozenset(t.strip().upper() for t in request.query.getall("type", []) if t.strip())
    start, end = _day(request.query.get("from")), _day(request.query.get("to"))
    cache = request.config_dict[PAGE_CACHE]
    key = (snapshot.version, types, start, end)
    html = cache.get(key)
    if html is None:
        html = await asyncio.to_thread(
            render_page, snapshot, settings.transparency, settings.console.tile_url,
            settings.console.tile_attribution, set(types), start, end)
        cache[key] = html
        while len(cache) > PAGES_KEPT:
            cache.popitem(last=False)
    return web.Response(text=html, content_type="text/html",
                        headers={"Cache-Control": "public, max-age=60"})


@public()
async def asset(request: web.Request) -> web.StreamResponse:
    return serve_file(STATIC, request.match_info["path"])


@public()
async def vendor(request: web.Request) -> web.StreamResponse:
    return serve_file(VENDOR, request.match_info["path"])


def add_routes(app: web.Application) -> None:
    app[PAGE_CACHE] = OrderedDict()
    app.router.add_get("/public", redirect)
    app.router.add_get("/public/", page)
    app.router.add_get("/public/static/{path:[^/]+}", asset)
    app.router.add_get("/public/vendor/{path:.+}", vendor)
