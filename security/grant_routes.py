"""The owner's view of the grants on their cameras.

- ``GET /api/owner/cameras/{id}/grants``: the standing grant derived from the camera's sharing
  level and hours (in words), and every stored grant (footage requests, incidents), newest first.
- ``POST /api/owner/cameras/{id}/grants/{grant_id}/revoke``: the owner ends a footage-request or
  incident grant on their own camera; the views it allowed end at once.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rtcc.access import CameraConsent
from rtcc.appkeys import CAMERA_DIRECTORY
from rtcc.config import SharingLevel
from rtcc.http import json_error
from rtcc.policy import Role, allow
from rtcc.principal import require_principal
from security.core import security_core
from security.enforcement import check_views
from security.grants import FOOTAGE_REQUEST, INCIDENT, SHARING
from security.incident_routes import audit_grants

_DAY_NAMES = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri",
              "sat": "Sat", "sun": "Sun"}


def sharing_in_words(consent: CameraConsent, emergency_minutes: float) -> str:
    """What the camera's sharing level and hours let the department do, for its owner."""
    level = consent.sharing
    if level == SharingLevel.REGISTRY_ONLY:
        text = ("Nobody at the department may watch it: they know only where it is. Footage "
                "leaves only through a request you approve.")
    elif level == SharingLevel.ON_REQUEST:
        text = ("Nobody at the department may watch it live. Investigators may ask for recorded "
                "footage of a time range; each request you approve is listed here and gives "
                "that range only.")
    elif level == SharingLevel.LIVE_EMERGENCY:
        text = ("Department staff may watch it live only while it is linked to an active "
                f"incident or panic alert, for {emergency_minutes:g} minutes per link (renewed "
                "if linked again), and never after the incident closes.")
    else:
        text = ("Department staff (analysts, investigators, supervisors, administrators) may "
                "watch it live at any time, stating a purpose.")
    if consent.windows and level not in (SharingLevel.REGISTRY_ONLY, SharingLevel.ON_REQUEST):
        hours = "; ".join(
            f"{', '.join(_DAY_NAMES.get(d, d) for d in w.days)} {w.start}-{w.end}"
            for w in consent.windows)
        text += f" Only during these hours ({consent.timezone}): {hours}."
    if consent.ptz_allowed and level != SharingLevel.REGISTRY_ONLY:
        text += " Staff who may watch it may also turn and zoom it."
    return text


async def _own_camera(request: web.Request) -> CameraConsent:
    principal = require_principal(request)
    camera_id = request.match_info["camera_id"]
    directory = request.config_dict.get(CAMERA_DIRECTORY)
    if directory is None:
        raise web.HTTPServiceUnavailable(text='{"error": "the camera catalog is not available"}',
                                         content_type="application/json")
    consent = await directory.consent_of(camera_id)
    if consent is None or (principal.role != Role.ADMIN
                           and (not principal.owner_id or consent.owner_id != principal.owner_id)):
        # Another owner's camera looks exactly like one that does not exist.
        raise web.HTTPNotFound(text='{"error": "no such camera"}',
                               content_type="application/json")
    return consent


@allow(Role.OWNER, Role.ADMIN)
async def camera_grants(request: web.Request) -> web.Response:
    core = security_core(request)
    consent = await _own_camera(request)
    now = core.clock()
    standing: dict[str, Any] = {
        "basis": SHARING, "kind": "live", "sharing": str(consent.sharing),
        "windows": [w.model_dump() for w in consent.windows], "timezone": consent.timezone,
        "description": sharing_in_words(consent,
                                        core.settings.security.emergency_grant_minutes),
    }
    grants = await core.grants.of_camera(consent.camera_id)
    return web.json_response({"camera_id": consent.camera_id, "standing": standing,
                              "grants": [grant.as_json(now) for grant in grants], "time": now})


@allow(Role.OWNER, Role.ADMIN)
async def revoke_grant(request: web.Request) -> web.Response:
    core = security_core(request)
    consent = await _own_camera(request)
    principal = require_principal(request)
    found = await core.grants.get(request.match_info["grant_id"])
    if found is None or found.camera_id != consent.camera_id:
        return json_error(404, "no such grant on this camera")
    if found.basis not in (FOOTAGE_REQUEST, INCIDENT):
        return json_error(409, "only footage-request and incident grants can be revoked; change "
                               "the camera's sharing level for the rest")
    revoked = await core.grants.revoke(found.id, principal.username,
                                       f"revoked by the owner ({principal.username})")
    if revoked is None:
        return json_error(409, "this grant was already revoked")
    await audit_grants(request, [revoked], "grant.revoke")
    ended = await check_views(request)
    body = revoked.as_json(core.clock())
    body["views_ended"] = ended
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/owner/cameras/{camera_id}/grants", camera_grants)
    app.router.add_post("/api/owner/cameras/{camera_id}/grants/{grant_id}/revoke",
                        revoke_grant)
