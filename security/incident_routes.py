"""Incident routes: open, list, link cameras, close. An active incident is what lets staff view
``live_emergency`` cameras linked to it."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from rtcc.appkeys import CAMERA_DIRECTORY, HUB
from rtcc.config import SharingLevel
from rtcc.http import json_error, read_fields
from rtcc.policy import staff
from rtcc.principal import actor_of
from security.core import security_core
from security.httpio import text_field
from security.incidents import CAMERA_ID, INCIDENT_ID, KINDS

MAX_CAMERAS = 200


def _cameras(fields: dict[str, Any]) -> tuple[str, ...]:
    value = fields.get("cameras", [])
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or len(value) > MAX_CAMERAS:
        raise web.HTTPBadRequest(
            text=f'{{"error": "cameras must be a list of at most {MAX_CAMERAS} camera ids"}}',
            content_type="application/json",
        )
    cameras: list[str] = []
    for item in value:
        if not isinstance(item, str) or not CAMERA_ID.fullmatch(item):
            raise web.HTTPBadRequest(text='{"error": "cameras: each must be a camera id"}',
                                     content_type="application/json")
        cameras.append(item)
    return tuple(dict.fromkeys(cameras))


async def _end_emergency_views(request: web.Request, cameras: tuple[str, ...]) -> int:
    """End live views that only the closed incident allowed (live_emergency cameras no longer
    linked to any active incident)."""
    core = security_core(request)
    hub = request.config_dict.get(HUB)
    directory = request.config_dict.get(CAMERA_DIRECTORY)
    if hub is None:
        return 0
    ended = 0
    for camera_id in cameras:
        if await core.incidents.active_for_camera(camera_id):
            continue
        consent = None if directory is None else await directory.consent_of(camera_id)
        if consent is None or consent.sharing == SharingLevel.LIVE_EMERGENCY:
            ended += hub.close_camera_sessions(camera_id, "incident closed")
    return ended


@staff()
async def open_incident(request: web.Request) -> web.Response:
    core = security_core(request)
    fields = await read_fields(request)
    incident_id = text_field(fields, "id", limit=64).strip() or None
    if incident_id is not None and not INCIDENT_ID.fullmatch(incident_id):
        return json_error(400, "id: 1-64 letters, digits, '.', '_', ':' or '-'")
    kind = text_field(fields, "kind", limit=16) or "incident"
    if kind not in KINDS:
        return json_error(400, "kind must be 'incident' or 'panic'")
    title = text_field(fields, "title", limit=200)
    cameras = _cameras(fields)
    actor = actor_of(request)
    try:
        incident = await core.incidents.open(actor.name, incident_id=incident_id, kind=kind,
                                             title=title, cameras=cameras)
    except sqlite3.IntegrityError:
        return json_error(409, f"incident {incident_id!r} already exists")
    await core.audit.append(actor=actor.name, role=actor.role, action="incident.open",
                            target=f"incident:{incident.id}", source=actor.source,
                            details={"kind": kind, "title": title, "cameras": list(cameras)})
    return web.json_response(incident.as_json(), status=201)


@staff()
async def list_incidents(request: web.Request) -> web.Response:
    core = security_core(request)
    everything = request.query.get("all") in {"1", "true"}
    incidents = await core.incidents.recent(active_only=not everything)
    return web.json_response({"incidents": [i.as_json() for i in incidents]})


@staff()
async def get_incident(request: web.Request) -> web.Response:
    incident = await security_core(request).incidents.get(request.match_info["incident_id"])
    if incident is None:
        return json_error(404, "no such incident")
    return web.json_response(incident.as_json())


@staff()
async def link_cameras(request: web.Request) -> web.Response:
    core = security_core(request)
    incident = await core.incidents.get(request.match_info["incident_id"])
    if incident is None:
        return json_error(404, "no such incident")
    if not incident.active:
        return json_error(409, "the incident is closed")
    cameras = _cameras(await read_fields(request))
    actor = actor_of(request)
    await core.audit.append(actor=actor.name, role=actor.role, action="incident.link",
                            target=f"incident:{incident.id}", source=actor.source,
                            details={"cameras": list(cameras)})
    await core.incidents.link(incident.id, cameras, actor.name)
    updated = await core.incidents.get(incident.id)
    assert updated is not None
    return web.json_response(updated.as_json())


@staff()
async def close_incident(request: web.Request) -> web.Response:
    core = security_core(request)
    incident = await core.incidents.get(request.match_info["incident_id"])
    if incident is None:
        return json_error(404, "no such incident")
    actor = actor_of(request)
    ended = 0
    if incident.active:
        await core.audit.append(actor=actor.name, role=actor.role, action="incident.close",
                                target=f"incident:{incident.id}", source=actor.source)
        await core.incidents.close(incident.id, actor.name)
        ended = await _end_emergency_views(request, incident.cameras)
    closed = await core.incidents.get(incident.id)
    assert closed is not None
    body = closed.as_json()
    body["sessions_ended"] = ended
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/incidents", open_incident)
    app.router.add_get("/api/incidents", list_incidents)
    app.router.add_get("/api/incidents/{incident_id}", get_incident)
    app.router.add_post("/api/incidents/{incident_id}/cameras", link_cameras)
    app.router.add_post("/api/incidents/{incident_id}/close", close_incident)
