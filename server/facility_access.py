"""Panic alerts into the RTCC: facilities x incidents x security x catalog.

When a facility's device raises an alert (stored first by ``facilities``), this wiring:

- opens a CAD incident for it (type ``PANIC-<LEVEL>``, at the room's facility or the phone's
  position), so it is on every console's board and in the response metrics;
- unless it is a drill, opens the security incident the CAD incident names (kind ``panic``),
  links the facility's own cameras at its site whose owner shares them ``live_emergency`` or
  ``live_always``, and grants them live for ``facilities.grant_minutes`` (the grant relocks by
  itself at expiry; each grant is audited under the camera's owner, so the owner sees it);
- audits every step of the alert;
- at the all clear (or a cancel) closes the CAD incident, which closes the security incident and
  revokes its grants at once (``server.incident_access``), ending the views.

A drill is shown and recorded as such and never grants live access.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from catalog.keys import CATALOG_STORE
from catalog.query import Filters
from facilities.keys import PANIC, SITES, SiteInfo
from facilities.records import Alert, Facility
from incidents.model import TRACKING_ID_PREFIX, IncidentUpdate, PointLocation
from incidents.routes import INCIDENT_SERVICE
from incidents.store import security_incident_id
from rtcc.appkeys import SETTINGS
from rtcc.config import SharingLevel
from rtcc.policy import Role
from security.core import SECURITY
from server.incident_access import _audit, _audit_grants

log = logging.getLogger(__name__)

PANIC_ACTOR = "panic"
LIVE = frozenset({SharingLevel.LIVE_EMERGENCY, SharingLevel.LIVE_ALWAYS})
CAD_STATUS = {"triggered": "OPEN", "acknowledged": "ACKNOWLEDGED", "dispatched": "DISPATCHED",
              "on_scene": "ON SCENE", "all_clear": "CLOSED", "cancelled": "CANCELLED"}


def tracking_id(alert: Alert) -> str:
    return f"{TRACKING_ID_PREFIX}{alert.id}:panic.rtcc"


def _where(alert: Alert, facility: Facility) -> PointLocation | None:
    if facility.lat is not None and facility.lon is not None:
        return PointLocation(facility.lat, facility.lon, shape="facility")
    if alert.lat is not None and alert.lon is not None:
        return PointLocation(alert.lat, alert.lon, radius_m=alert.accuracy_m, shape="device")
    return None


async def facility_cameras(app: web.Application, facility: Facility) -> tuple[str, ...]:
    """The facility's own cameras at its site that its owner shares for emergencies."""
    store = app[CATALOG_STORE]
    found: list[str] = []
    after = ""
    for _ in range(50):  # at most 5,000 cameras of one owner
        page = await store.list_cameras(Filters(sharing=LIVE, owner=frozenset({
            facility.owner_id})), after=after, limit=100)
        found += [c.id for c in page if c.site_id == facility.site_id]
        if len(page) < 100:
            break
        after = page[-1].id
    return tuple(found)


async def _cad_update(app: web.Application, alert: Alert, facility: Facility,
                      step: str) -> None:
    service = app[INCIDENT_SERVICE]
    room = ""
    if alert.room_id:
        panic = app[PANIC]
        found = await panic.store.run(panic.store.room, alert.room_id)
        room = "" if found is None else f", room {found.number or found.name}"
    what = f"{'DRILL: ' if alert.drill else ''}Panic alarm ({alert.level}) at {facility.name}"
    update = IncidentUpdate(
        tracking_id=tracking_id(alert), updated_at=datetime.now(UTC),
        type_code=f"PANIC-{alert.level.upper()}", type_text=(what + room)[:200],
        priority=1, status=CAD_STATUS.get(step, "OPEN"), location=_where(alert, facility),
        notes=(f"{facility.address}{room}".strip(", "),), source="panic")
    await service.ingest([update], [json.dumps({"alert": alert.id, "step": step})],
                         PANIC_ACTOR)


async def _open(app: web.Application, alert: Alert, facility: Facility) -> None:
    core = app[SECURITY]
    panic = app[PANIC]
    sid = security_incident_id(tracking_id(alert))
    cameras: tuple[str, ...] = ()
    minutes = app[SETTINGS].facilities.grant_minutes
    if not alert.drill and await core.incidents.get(sid) is None:
        cameras = await facility_cameras(app, facility)
        await core.incidents.open(PANIC_ACTOR, incident_id=sid, kind="panic",
                                  title=f"Panic alarm: {facility.name}"[:200], cameras=cameras)
        await _audit(core, "incident.open", f"incident:{sid}", actor=PANIC_ACTOR,
                     details={"alert": alert.id, "facility": facility.id,
                              "level": alert.level, "cameras": list(cameras)})
        if cameras:
            changes = await core.grants.grant_incident(
                sid, cameras, PANIC_ACTOR,
                f"panic alarm {alert.id} at {facility.name}"[:300], minutes * 60.0)
            await _audit_grants(app, core, changes, actor=PANIC_ACTOR)
    await _cad_update(app, alert, facility, "triggered")
    await panic.store.run(panic.store.mark_opened, alert.id, tracking_id(alert))
    await panic.note(alert, "incident.opened", PANIC_ACTOR, {
        "incident": tracking_id(alert), "security_incident": sid, "drill": alert.drill,
        "cameras": list(cameras), "grant_minutes": minutes if cameras else 0})


async def on_step(app: web.Application, alert: Alert, facility: Facility, step: str,
                  actor: str) -> None:
    core = app[SECURITY]
    role = str(Role.INTEGRATION) if actor.startswith("device:") else "staff"
    await _audit(core, f"panic.{step}", f"alert:{alert.id}", actor=actor, role=role,
                 owner_id=facility.owner_id,
                 details={"facility": facility.id, "level": alert.level, "drill": alert.drill,
                          "state": alert.state})
    if step == "triggered":
        if not alert.opened:
            await _open(app, alert, facility)
    elif step in CAD_STATUS and alert.opened:
        await _cad_update(app, alert, facility, step)  # closing it relocks (incident_access)
        if step in {"all_clear", "cancelled"}:
            await app[PANIC].note(alert, "relocked", PANIC_ACTOR, {
                "security_incident": security_incident_id(tracking_id(alert))})


async def _site(app: web.Application, site_id: str) -> SiteInfo | None:
    site = await app[CATALOG_STORE].get_site(site_id)
    if site is None:
        return None
    lat = lon = None
    if site.outline:
        lon = sum(p[0] for p in site.outline) / len(site.outline)
        lat = sum(p[1] for p in site.outline) / len(site.outline)
    return SiteInfo(site.id, site.owner_id, site.address, lat, lon)


async def facility_access_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``, after the incidents and facilities contexts."""
    panic = app[PANIC]

    async def hook(alert: Alert, facility: Facility, step: str, actor: str) -> None:
        await on_step(app, alert, facility, step, actor)

    async def sites(site_id: str) -> SiteInfo | None:
        return await _site(app, site_id)

    panic.hooks.append(hook)
    app[SITES] = sites
    reopened = await panic.reopen_pending()
    if reopened:
        log.warning("panic: %d alert(s) stored before the last stop were sent on now", reopened)
    yield
    panic.hooks.remove(hook)
