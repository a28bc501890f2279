"""The console's own API: its configuration, and whether cameras may be opened live right now.

``GET /api/console/config``
    ``{"tile_url", "tile_attribution", "places": [{"name", "lat", "lon"}], "onvif_ptz"}`` from
    the ``console`` section of the configuration (``tile_url`` is this server's ``/tiles/`` when
    only ``tiles_path`` is set); ``onvif_ptz`` lists the cameras with ONVIF control configured.
``GET /api/console/access?cameras=ID,ID,...``
    For each camera (at most 100): ``{"sharing", "allowed", "reason", "incidents",
    "needs_incident"}``, decided by the same consent rules as a live view (sharing level,
    owner's time windows, incidents' grants), without opening one and
    without an audit entry: nothing is shown. ``needs_incident`` marks a ``live_emergency``
    camera that an active incident linking it would open.
``GET /api/geocode?q=ADDRESS``
    ``{"found": true, "lat", "lon", "label", "score"}`` from the department's address points
    (``incidents.address_points``, offline), or ``{"found": false, "reason"}``.
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from console_web.ptz import onvif_ptz_cameras
from console_web.tiles import TILE_SOURCE, TILE_URL
from incidents.routes import INCIDENT_SERVICE
from rtcc.access_check import access_answers
from rtcc.appkeys import CAMERA_DIRECTORY, INCIDENTS, SETTINGS, clock_of
from rtcc.http import json_error, required
from rtcc.policy import staff
from rtcc.principal import require_principal

MAX_CAMERAS = 100
_CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@staff()
async def console_config(request: web.Request) -> web.Response:
    console = request.config_dict[SETTINGS].console
    # The department's tile URL, else this server's own tiles when a tile file is configured.
    own = request.config_dict.get(TILE_SOURCE) is not None
    return web.json_response({
        "tile_url": console.tile_url or (TILE_URL if own else ""),
        "tile_attribution": console.tile_attribution,
        "places": [{"name": p.name, "lat": p.lat, "lon": p.lon} for p in console.places],
        "onvif_ptz": onvif_ptz_cameras(request),
    })


def _camera_ids(request: web.Request) -> list[str] | web.Response:
    ids = [part.strip() for raw in request.query.getall("cameras", [])
           for part in raw.split(",") if part.strip()]
    if not ids:
        return json_error(400, "cameras: give camera ids, comma-separated")
    if len(ids) > MAX_CAMERAS:
        return json_error(400, f"cameras: at most {MAX_CAMERAS} at once")
    for camera_id in ids:
        if not _CAMERA_ID.fullmatch(camera_id):
            return json_error(400, "cameras: each must be a camera id (a-z, 0-9, '_' and '-')")
    return list(dict.fromkeys(ids))


@staff()
async def camera_access(request: web.Request) -> web.Response:
    ids = _camera_ids(request)
    if isinstance(ids, web.Response):
        return ids
    principal = require_principal(request)
    incident_lookup = required(request, INCIDENTS, "the security core")
    directory = request.config_dict.get(CAMERA_DIRECTORY)
    if directory is None:
        return json_error(503, "the camera catalog is not available")
    now = clock_of(request)()
    consents = {camera_id: await directory.consent_of(camera_id) for camera_id in ids}
    answer = await access_answers(consents, principal, incident_lookup, now)
    return web.json_response({"cameras": answer, "time": now})


MAX_ADDRESS = 200


@staff()
async def geocode(request: web.Request) -> web.Response:
    """An address's position from the department's address points (offline)."""
    text = request.query.get("q", "").strip()
    if not text or len(text) > MAX_ADDRESS:
        return json_error(400, f"q: give an address of 1-{MAX_ADDRESS} characters, "
                               "such as '401 S 2nd St'")
    service = required(request, INCIDENT_SERVICE, "the CAD incidents service")
    if service.addresses is None:
        return web.json_response({"found": False, "reason": "the department has no address "
                                  "points configured (incidents.address_points)"})
    found = await asyncio.to_thread(service.addresses.geocode, text)
    if found.point is None:
        return web.json_response({"found": False, "reason": found.reason})
    return web.json_response({"found": True, "lat": found.point.lat, "lon": found.point.lon,
                              "label": found.point.label, "score": found.score})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/geocode", geocode)
    app.router.add_get("/api/console/config", console_config)
    app.router.add_get("/api/console/access", camera_access)
