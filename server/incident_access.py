"""Scoped, time-boxed emergency access from CAD incidents: incidents x security x catalog.

When a CAD incident with a place on the map arrives or moves, and its type's policy
(``incidents.emergency_policies``, else ``incidents.default_policy``) unlocks cameras: the
``live_emergency`` cameras that can see the place (nearest first, when the policy says
``can_see``), then the nearest within ``radius_m``, at most ``max_cameras``, are linked to the
security incident ``security_incident_id`` (opened as kind ``incident`` by ``cad``) and get its
``live`` grant for the policy's ``minutes``. The grant relocks by itself at expiry (the
enforcement point ends the views); when the CAD closes the incident the security incident
closes, its grants are revoked and the views end at once. A supervisor extends the grants with
a reason (``POST /api/cad/incidents/{id}/extend``, audited).

``GET /api/cad/incidents/{id}/cameras`` ranks the cameras around the incident for the board (can
see, then nearest, with the distance) and says which of them its grants unlock.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from catalog.keys import CATALOG_STORE
from catalog.query import Filters, Hit, Page
from incidents.routes import INCIDENT_SERVICE
from incidents.store import CadIncident, UpsertResult
from rtcc.appkeys import CAMERA_DIRECTORY
from rtcc.config import EmergencyPolicy, IncidentsConfig, SharingLevel
from rtcc.errors import AuditWriteError
from rtcc.http import json_error, read_fields, required
from rtcc.policy import Role, allow, staff
from rtcc.principal import actor_of
from security.core import SECURITY, SecurityCore
from security.enforcement import ENFORCEMENT
from security.grants import INCIDENT_CLOSED, Change, Grant
from security.httpio import text_field
from server import notify_wiring

log = logging.getLogger(__name__)

CAD_ACTOR = "cad"
EMERGENCY = Filters(sharing=frozenset({SharingLevel.LIVE_EMERGENCY}))
BOARD_CAMERAS = 12
BOARD_RADIUS_M = 500.0


def policy_for(config: IncidentsConfig, type_code: str | None) -> EmergencyPolicy:
    if type_code is not None:
        for code, policy in config.emergency_policies.items():
            if code.upper() == type_code.upper():
                return policy
    return config.default_policy


async def ranked_cameras(app: web.Application, lat: float, lon: float, *, radius_m: float,
                         limit: int, can_see: bool = True,
                         filters: Filters = EMERGENCY) -> list[Hit]:
    """Cameras that see the point (nearest first), then the nearest within ``radius_m``."""
    store = app[CATALOG_STORE]
    hits: list[Hit] = []
    if can_see and limit > 0:
        hits = [h for h in (await store.can_see(lat, lon, filters=filters,
                                                page=Page(limit=limit))).hits if h.sees]
    seen = {h.camera.id for h in hits}
    if len(hits) < limit and radius_m > 0:
        near = await store.nearest(lat, lon, limit=limit, radius_m=radius_m, filters=filters)
        hits += [h for h in near.hits if h.camera.id not in seen][:limit - len(hits)]
    return hits[:limit]


async def _audit(core: SecurityCore, action: str, target: str, actor: str = CAD_ACTOR,
                 role: str = str(Role.INTEGRATION), source: str = "",
                 camera_id: str = "", owner_id: str = "",
                 details: dict[str, Any] | None = None) -> None:
    try:
        await core.audit.append(actor=actor, role=role, action=action, target=target,
                                camera_id=camera_id, owner_id=owner_id, source=source,
                                details=details or {})
    except AuditWriteError:
        log.error("%s of %s could not be audited", action, target)


async def _audit_grants(app: web.Application, core: SecurityCore,
                        changes: list[tuple[Grant, Change]] | list[Grant],
                        actor: str = CAD_ACTOR, role: str = str(Role.INTEGRATION),
                        action: str | None = None) -> None:
    """One entry per grant, naming the camera's owner: it shows in the owner's access log."""
    now = core.clock()
    directory = app.get(CAMERA_DIRECTORY)
    for item in changes:
        grant, change = item if isinstance(item, tuple) else (item, "")
        consent = None if directory is None else await directory.consent_of(grant.camera_id)
        await _audit(core, action or f"grant.{change}", f"grant:{grant.id}", actor=actor,
                     role=role, camera_id=grant.camera_id,
                     owner_id="" if consent is None else consent.owner_id,
                     details=grant.as_json(now))


def _title(incident: CadIncident) -> str:
    what = incident.type_text or incident.type_code or "CAD incident"
    return f"CAD: {what}"[:200]


async def _unlock(app: web.Application, core: SecurityCore, incident: CadIncident,
                  policy: EmergencyPolicy) -> list[str]:
    point = incident.point()
    if point is None:
        return []
    hits = await ranked_cameras(app, point[0], point[1], radius_m=policy.radius_m,
                                limit=policy.max_cameras, can_see=policy.can_see)
    cameras = tuple(h.camera.id for h in hits)
    sid = incident.security_incident_id
    existing = await core.incidents.get(sid)
    if existing is None:
        await core.incidents.open(CAD_ACTOR, incident_id=sid, kind="incident",
                                  title=_title(incident))
        await _audit(core, "incident.open", f"incident:{sid}",
                     details={"cad": incident.tracking_id, "type": incident.type_code,
                              "linked_by": "cad"})
    elif not existing.active:
        return []
    if not cameras:
        return []
    await core.incidents.link(sid, cameras, CAD_ACTOR)
    await _audit(core, "incident.link", f"incident:{sid}",
                 details={"cameras": list(cameras), "cad": incident.tracking_id,
                          "policy": policy.model_dump()})
    changes = await core.grants.grant_incident(
        sid, cameras, CAD_ACTOR, f"CAD incident {incident.tracking_id}: {_title(incident)}"[:300],
        policy.minutes * 60.0)
    await _audit_grants(app, core, changes)
    await notify_wiring.grants_changed(app, _title(incident), sid, [g for g, _ in changes],
                                       opened=True)
    return list(cameras)


async def _relock(app: web.Application, core: SecurityCore, sid: str, by: str) -> int:
    existing = await core.incidents.get(sid)
    if existing is None or not existing.active:
        return 0
    await _audit(core, "incident.close", f"incident:{sid}", actor=by)
    await core.incidents.close(sid, by)
    revoked = await core.grants.revoke_incident(sid, by, INCIDENT_CLOSED)
    await _audit_grants(app, core, revoked, actor=by, action="grant.revoke")
    await notify_wiring.grants_changed(app, existing.title, sid, revoked, opened=False)
    enforcement = app.get(ENFORCEMENT)
    return 0 if enforcement is None else await enforcement.check_now()


def _moved(result: UpsertResult | None) -> bool:
    if result is None or result.previous is None:
        return True
    return result.previous.point() != result.incident.point()


async def on_change(app: web.Application, incident: CadIncident,
                    result: UpsertResult | None) -> None:
    core = app[SECURITY]
    if incident.closed:
        await _relock(app, core, incident.security_incident_id, CAD_ACTOR)
        return
    policy = policy_for(app[INCIDENT_SERVICE].config, incident.type_code)
    if not policy.unlock or not _moved(result):
        return
    cameras = await _unlock(app, core, incident, policy)
    log.info("CAD incident %s (%s): %d emergency camera(s) unlocked for %.0f min",
             incident.tracking_id, incident.type_code, len(cameras), policy.minutes)


async def _incident(request: web.Request) -> CadIncident:
    service = required(request, INCIDENT_SERVICE, "the CAD incidents service")
    key = request.match_info["incident_id"]
    found = await service.store.get(key) or await service.store.by_security_id(key)
    if found is None:
        raise web.HTTPNotFound(text='{"error": "no such CAD incident"}',
                               content_type="application/json")
    return found


@staff()
async def incident_cameras(request: web.Request) -> web.Response:
    incident = await _incident(request)
    core = request.config_dict[SECURITY]
    point = incident.point()
    policy = policy_for(request.config_dict[INCIDENT_SERVICE].config, incident.type_code)
    if point is None:
        return web.json_response({"id": incident.tracking_id, "cameras": []})
    hits = await ranked_cameras(request.app, point[0], point[1],
                                radius_m=max(policy.radius_m, BOARD_RADIUS_M),
                                limit=BOARD_CAMERAS, filters=Filters())
    now = core.clock()
    granted = {g.camera_id for g in await core.grants.of_incident(incident.security_incident_id)
               if g.valid_at(now)}
    return web.json_response({"id": incident.tracking_id, "cameras": [
        {"id": h.camera.id, "name": h.camera.name, "lat": h.camera.lat, "lon": h.camera.lon,
         "distance_m": None if h.distance_m is None else round(h.distance_m, 1),
         "sees": bool(h.sees), "sharing": str(h.camera.sharing),
         "unlocked": h.camera.id in granted} for h in hits]})


@allow(Role.SUPERVISOR, Role.ADMIN)
async def extend(request: web.Request) -> web.Response:
    incident = await _incident(request)
    core = request.config_dict[SECURITY]
    fields = await read_fields(request)
    reason = text_field(fields, "reason", limit=300).strip()
    if not reason:
        return json_error(400, "reason: say why the emergency access is extended")
    policy = policy_for(request.config_dict[INCIDENT_SERVICE].config, incident.type_code)
    try:
        minutes = float(fields.get("minutes", policy.minutes))
    except (TypeError, ValueError):
        return json_error(400, "minutes must be a number")
    if not 0 < minutes <= 1440:
        return json_error(400, "minutes must be between 0 and 1440")
    sid = incident.security_incident_id
    security_incident = await core.incidents.get(sid)
    if incident.closed or security_incident is None or not security_incident.active:
        return json_error(409, "the incident is closed or unlocked no cameras")
    actor = actor_of(request)
    await _audit(core, "incident.extend", f"incident:{sid}", actor=actor.name, role=actor.role,
                 source=actor.source, details={"reason": reason, "minutes": minutes,
                                               "cad": incident.tracking_id})
    changes = await core.grants.grant_incident(
        sid, security_incident.cameras, actor.name, f"extended: {reason}"[:300], minutes * 60.0)
    await _audit_grants(request.app, core, changes, actor=actor.name, role=actor.role)
    now = core.clock()
    return web.json_response({"id": incident.tracking_id, "grants": [
        g.as_json(now) for g, _ in changes]})


async def incident_access_context(app: web.Application) -> AsyncIterator[None]:
    service = app[INCIDENT_SERVICE]

    async def hook(incident: CadIncident, result: UpsertResult | None) -> None:
        await on_change(app, incident, result)

    service.hooks.append(hook)
    yield
    service.hooks.remove(hook)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/cad/incidents/{incident_id}/cameras", incident_cameras)
    app.router.add_post("/api/cad/incidents/{incident_id}/extend", extend)
