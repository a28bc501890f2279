"""Incident routes: open, list, link cameras, close, and the incident's grants.

Linking a camera to an active incident (at opening or later) creates the incident's ``live``
grant on it, valid for ``security.emergency_grant_minutes``; linking it again renews the grant.
That grant is what lets staff view a ``live_emergency`` camera. Closing the incident revokes its
grants and ends the views they allowed. ``GET /api/incidents/{id}/grants`` (supervisors,
administrators) lists them."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from rtcc.appkeys import CAMERA_DIRECTORY, HUB
from rtcc.config import SharingLevel
from rtcc.errors import AuditWriteError
from rtcc.http import json_error, read_fields
from rtcc.policy import Role, allow, staff
from rtcc.principal import actor_of
from security.core import security_core
from security.enforcement import check_views
from security.grants import INCIDENT_CLOSED, Change, Grant
from security.httpio import text_field
from security.incidents import CAMERA_ID, INCIDENT_ID, KINDS, Incident
from security.store import INTEGRITY_ERRORS

MAX_CAMERAS = 200
log = logging.getLogger(__name__)


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
        if await core.grants.incident_grants_for(camera_id, core.clock()):
            continue
        consent = None if directory is None else await directory.consent_of(camera_id)
        if consent is None or consent.sharing == SharingLevel.LIVE_EMERGENCY:
            ended += hub.close_camera_sessions(camera_id, "incident closed")
    return ended


async def _owner_of(request: web.Request, camera_id: str) -> str:
    directory = request.config_dict.get(CAMERA_DIRECTORY)
    consent = None if directory is None else await directory.consent_of(camera_id)
    return "" if consent is None else consent.owner_id


async def audit_grants(request: web.Request, changes: list[tuple[Grant, Change]] | list[Grant],
                       action: str | None = None) -> None:
    """One audit entry per grant created, renewed, refused or revoked (the owner sees them in
    their access log)."""
    core = security_core(request)
    actor = actor_of(request)
    now = core.clock()
    for item in changes:
        grant, change = item if isinstance(item, tuple) else (item, "")
        name = action or f"grant.{change}"
        try:
            await core.audit.append(
                actor=actor.name, role=actor.role, action=name, target=f"grant:{grant.id}",
                camera_id=grant.camera_id, owner_id=await _owner_of(request, grant.camera_id),
                source=actor.source, outcome="refused" if change == "refused" else "ok",
                details=grant.as_json(now))
        except AuditWriteError:
            log.error("camera %s: %s of grant %s could not be audited", grant.camera_id, name,
                      grant.id)


async def needs_approval(request: web.Request, incident: Incident) -> bool:
    """Two-person rule (``incidents.two_person_rule``): an analyst's manual incident unlocks
    emergency cameras only once a supervisor approved it. Panic alerts are not held back."""
    core = security_core(request)
    if not core.settings.incidents.two_person_rule or incident.kind != "incident":
        return False
    opener = await core.accounts.by_name(incident.opened_by)
    if opener is None or opener.role != Role.ANALYST:
        return False
    return await core.incidents.approval_of(incident.id) is None


async def _grant(request: web.Request, incident: Incident, cameras: tuple[str, ...]) -> None:
    if not cameras or await needs_approval(request, incident):
        return
    core = security_core(request)
    minutes = core.settings.security.emergency_grant_minutes
    changes = await core.grants.grant_incident(
        incident.id, cameras, actor_of(request).name,
        f"{incident.kind} {incident.id}: {incident.title}"[:300], minutes * 60.0)
    await audit_grants(request, changes)


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
    except INTEGRITY_ERRORS:
        return json_error(409, f"incident {incident_id!r} already exists")
    await core.audit.append(actor=actor.name, role=actor.role, action="incident.open",
                            target=f"incident:{incident.id}", source=actor.source,
                            details={"kind": kind, "title": title, "cameras": list(cameras)})
    await _grant(request, incident, cameras)
    body = incident.as_json()
    body["approval"] = "pending" if await needs_approval(request, incident) else "not needed"
    return web.json_response(body, status=201)


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
    await _grant(request, incident, cameras)
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
        revoked = await core.grants.revoke_incident(incident.id, actor.name,
                                                    INCIDENT_CLOSED)
        await audit_grants(request, revoked, "grant.revoke")
        await check_views(request)
        ended = await _end_emergency_views(request, incident.cameras)
    closed = await core.incidents.get(incident.id)
    assert closed is not None
    body = closed.as_json()
    body["sessions_ended"] = ended
    return web.json_response(body)


@allow(Role.SUPERVISOR, Role.ADMIN)
async def incident_grants(request: web.Request) -> web.Response:
    core = security_core(request)
    incident = await core.incidents.get(request.match_info["incident_id"])
    if incident is None:
        return json_error(404, "no such incident")
    now = core.clock()
    grants = await core.grants.of_incident(incident.id)
    return web.json_response({"incident": incident.id, "active": incident.active,
                              "grants": [grant.as_json(now) for grant in grants]})


@allow(Role.SUPERVISOR, Role.ADMIN)
async def approve_incident(request: web.Request) -> web.Response:
    """A supervisor approves an analyst's incident (two-person rule): its linked emergency
    cameras unlock now, and cameras linked later unlock at once."""
    core = security_core(request)
    incident = await core.incidents.get(request.match_info["incident_id"])
    if incident is None:
        return json_error(404, "no such incident")
    if not incident.active:
        return json_error(409, "the incident is closed")
    actor = actor_of(request)
    if actor.name == incident.opened_by:
        return json_error(403, "a second person must approve: you opened this incident")
    reason = text_field(await read_fields(request), "reason", limit=300).strip()
    if not await core.incidents.approve(incident.id, actor.name, reason):
        return json_error(409, "the incident is approved already")
    await core.audit.append(actor=actor.name, role=actor.role, action="incident.approve",
                            target=f"incident:{incident.id}", source=actor.source,
                            details={"reason": reason, "cameras": list(incident.cameras)})
    await _grant(request, incident, incident.cameras)
    body = incident.as_json()
    body["approval"] = await core.incidents.approval_of(incident.id)
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/incidents", open_incident)
    app.router.add_get("/api/incidents", list_incidents)
    app.router.add_get("/api/incidents/{incident_id}", get_incident)
    app.router.add_post("/api/incidents/{incident_id}/cameras", link_cameras)
    app.router.add_post("/api/incidents/{incident_id}/close", close_incident)
    app.router.add_get("/api/incidents/{incident_id}/grants", incident_grants)
    app.router.add_post("/api/incidents/{incident_id}/approve", approve_incident)
