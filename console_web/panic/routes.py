"""Pages and files of the panic app (an installable web app for enrolled staff phones).

``GET /panic/``                     the app: one button, then what is happening
``GET /panic/manifest.webmanifest`` its web app manifest (installable, standalone)
``GET /panic/sw.js``                its service worker (scope ``/panic/``)
``GET /panic/static/{path}``        its script, style and icon

The pages carry no data: the device API (``facilities.routes``) asks for the device token.
"""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from console_web.files import serve_file
from rtcc.policy import public

STATIC = Path(__file__).parent / "static"
MANIFEST = {
    "name": "Panic alarm", "short_name": "Panic", "start_url": "/panic/", "scope": "/panic/",
    "display": "standalone", "background_color": "#111111", "theme_color": "#b00020",
    "icons": [{"src": "/panic/static/panic-icon.svg", "sizes": "any", "type": "image/svg+xml",
               "purpose": "any"}],
}


@public()
async def panic_redirect(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    raise web.HTTPFound("/panic/")


@public()
async def panic_page(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    return web.FileResponse(STATIC / "panic.html", headers={"Cache-Control": "no-cache"})


@public()
async def manifest(request: web.Request) -> web.Response:  # noqa: ARG001 -- aiohttp handler
    return web.Response(text=json.dumps(MANIFEST), content_type="application/manifest+json",
                        headers={"Cache-Control": "no-cache"})


@public()
async def service_worker(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    return web.FileResponse(STATIC / "sw.js", headers={
        "Cache-Control": "no-cache", "Content-Type": "text/javascript",
        "Service-Worker-Allowed": "/panic/"})


@public()
async def panic_asset(request: web.Request) -> web.StreamResponse:
    return serve_file(STATIC, request.match_info["path"])


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/panic", panic_redirect)
    router.add_get("/panic/", panic_page)
    router.add_get("/panic/manifest.webmanifest", manifest)
    router.add_get("/panic/sw.js", service_worker)
    router.add_get("/panic/static/{path:[^/]+}", panic_asset)
