"""The HTTP face of facilities and panic alarms.

Owners (and administrators) keep their facility profiles:

``GET/POST /api/facilities``                          the caller's facilities / a new one
``GET/PATCH /api/facilities/{id}``                    the profile (``review: true`` marks the
                                                      yearly review done)
``POST /api/facilities/{id}/floors``                  a floor; ``PUT .../floors/{floor}/plan``
                                                      its plan (image or PDF; ``?page=``)
``POST /api/facilities/{id}/rooms``                   a room, optionally placed on its plan
``GET .../floors/{floor}/plan``                       the rendered PNG (owners; staff when shared)
``POST /api/facilities/{id}/enrolments``              a one-time QR code enrolling one device
``GET /api/facilities/{id}/devices``, ``POST .../devices/{device}/revoke``
``GET /api/facilities/{id}/alerts``                   its alerts, newest first, with timelines

Enrolled devices (the panic app; ``X-Device-Token`` header, no login):

``POST /panic/api/enrol``                 ``{"secret"}`` -> the device token (shown once)
``GET /panic/api/config``                 the facility's rooms and floors
``GET /panic/api/plans/{floor}``          a floor plan, to pick the room on
``POST /panic/api/alerts``                raise (idempotent by the client's ``id``)
``GET /panic/api/alerts/{id}``            its state and open check-in requests
``POST /panic/api/alerts/{id}/checkin``   ``{"status": safe|injured|need_help}``

Staff (the console):

``GET /api/panic/alerts``, ``GET /api/panic/alerts/stream`` (server-sent events),
``GET /api/panic/alerts/{id}`` (with the facility's profile),
``POST /api/panic/alerts/{id}/{action}``
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import segno
from aiohttp import web

from facilities.keys import PANIC, SITES
from facilities.plans import MAX_UPLOAD_BYTES, PlanRefused, render_plan
from facilities.records import LEVELS, PROFILE_LISTS, SHARING, Facility, FacilityError
from facilities.service import PanicService
from rtcc.appkeys import AUDIT, SETTINGS
from rtcc.errors import AuditWriteError
from rtcc.http import error, read_body, read_fields
from rtcc.policy import STAFF_ROLES, Role, allow, public, staff
from rtcc.principal import actor_of, client_address, require_principal

log = logging.getLogger(__name__)

DEVICE_HEADER = "X-Device-Token"
MAX_LIST_ITEMS = 100
MAX_TEXT = 2000
KINDS = ("school", "worship", "hospital", "business", "venue", "other")
HEARTBEAT_S = 15.0


def _service(request: web.Request) -> PanicService:
    try:
        return request.config_dict[PANIC]
    except KeyError:
        raise error(503, "the panic alarm service is not running") from None


def _fail(exc: FacilityError) -> web.HTTPException:
    return error(exc.status, str(exc))


def _text(fields: dict[str, Any], name: str, limit: int = 200, *, needed: bool = False) -> str:
    value = fields.get(name, "")
    if not isinstance(value, str):
        raise error(400, f"{name} must be text")
    value = value.strip()
    if needed and not value:
        raise error(400, f"{name}: this field is needed")
    if len(value) > limit:
        raise error(400, f"{name} is longer than {limit} characters")
    return value


async def _audit(request: web.Request, action: str, target: str, owner_id: str = "",
                 details: dict[str, Any] | None = None) -> None:
    actor = actor_of(request)
    try:
        await request.config_dict[AUDIT].append(
            actor=actor.name, role=actor.role, action=action, target=target,
            owner_id=owner_id, source=actor.source, details=details or {})
    except AuditWriteError as exc:
        raise error(503, "the audit log could not be written; nothing was changed") from exc


async def _own(request: web.Request) -> Facility:
    """The facility in the path, when the caller may manage it (its owner, or an admin)."""
    principal = require_principal(request)
    service = _service(request)
    try:
        facility = await service.facility(request.match_info["id"])
    except FacilityError as exc:
        raise _fail(exc) from None
    if principal.role != Role.ADMIN and facility.owner_id != principal.owner_id:
        raise error(404, f"no facility {facility.id}")
    return facility


# -- owners: profiles --------------------------------------------------------------------------


@allow(Role.OWNER, Role.ADMIN)
async def list_facilities(request: web.Request) -> web.Response:
    principal = require_principal(request)
    store = _service(request).store
    owner = None if principal.role == Role.ADMIN else principal.owner_id or "-"
    found = await store.run(store.facilities, owner)
    return web.json_response({"facilities": [f.as_json() for f in found]})


@allow(Role.OWNER, Role.ADMIN)
async def create_facility(request: web.Request) -> web.Response:
    principal = require_principal(request)
    fields = await read_fields(request)
    site_id = _text(fields, "site_id", 64, needed=True)
    sites = request.config_dict.get(SITES)
    site = None if sites is None else await sites(site_id)
    owner_id = principal.owner_id or ""
    if site is None or (principal.role != Role.ADMIN and site.owner_id != owner_id):
        raise error(404, f"site_id: no site {site_id} of yours; register the site first")
    sharing = _text(fields, "sharing", 10) or "alert"
    if sharing not in SHARING:
        raise error(400, f"sharing must be one of {', '.join(SHARING)}")
    kind = _text(fields, "kind", 20) or "school"
    if kind not in KINDS:
        raise error(400, f"kind must be one of {', '.join(KINDS)}")
    store = _service(request).store
    facility = await store.run(
        store.create_facility, site.owner_id, site_id, _text(fields, "name", 200, needed=True),
        kind, _text(fields, "address", 300) or site.address, site.lat, site.lon, sharing)
    await _audit(request, "facility.create", f"facility:{facility.id}", facility.owner_id)
    return web.json_response(facility.as_json(), status=201)


async def _profile(request: web.Request, facility: Facility) -> dict[str, Any]:
    store = _service(request).store
    floors = await store.run(store.floors, facility.id)
    rooms = await store.run(store.rooms, facility.id)
    return {**facility.as_json(), "floors": [f.as_json() for f in floors],
            "rooms": [r.as_json() for r in rooms]}


@allow(Role.OWNER, Role.ADMIN)
async def get_facility(request: web.Request) -> web.Response:
    return web.json_response(await _profile(request, await _own(request)))


def _items(value: object, name: str) -> list[dict[str, str]]:
    """A profile list: objects of short texts (contacts, SOPs, entrances...)."""
    if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
        raise error(400, f"{name} must be a list of at most {MAX_LIST_ITEMS} entries")
    items: list[dict[str, str]] = []
    for n, item in enumerate(value):
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict) or len(item) > 12 or not all(
                isinstance(k, str) and isinstance(v, str) and len(k) <= 40 and len(v) <= MAX_TEXT
                for k, v in item.items()):
            raise error(400, f"{name}[{n}] must be an object of texts (at most {MAX_TEXT}"
                             " characters each)")
        items.append(dict(item))
    return items


@allow(Role.OWNER, Role.ADMIN)
async def patch_facility(request: web.Request) -> web.Response:
    facility = await _own(request)
    fields = await read_fields(request)
    values: dict[str, Any] = {}
    for name, limit in (("name", 200), ("address", 300)):
        if name in fields:
            values[name] = _text(fields, name, limit, needed=True)
    if "sharing" in fields:
        if fields["sharing"] not in SHARING:
            raise error(400, f"sharing must be one of {', '.join(SHARING)}")
        values["sharing"] = fields["sharing"]
    profile = None
    if any(k in fields for k in PROFILE_LISTS):
        profile = {k: _items(fields[k], k) if k in fields else facility.profile.get(k, [])
                   for k in PROFILE_LISTS}
    store = _service(request).store
    updated = await store.run(store.update_facility, facility.id, values, profile,
                              bool(fields.get("review")))
    await _audit(request, "facility.update", f"facility:{facility.id}", facility.owner_id,
                 {"fields": sorted(fields)})
    return web.json_response(await _profile(request, updated))


@allow(Role.OWNER, Role.ADMIN)
async def add_floor(request: web.Request) -> web.Response:
    facility = await _own(request)
    fields = await read_fields(request)
    try:
        level = int(fields.get("level", 0))
    except (TypeError, ValueError):
        raise error(400, "level must be a whole number (0 = ground floor)") from None
    store = _service(request).store
    floor = await store.run(store.add_floor, facility.id, _text(fields, "building", 100),
                            _text(fields, "name", 100, needed=True), level)
    return web.json_response(floor.as_json(), status=201)


@allow(Role.OWNER, Role.ADMIN)
async def put_plan(request: web.Request) -> web.Response:
    facility = await _own(request)
    store = _service(request).store
    floor = await store.run(store.floor, request.match_info["floor"])
    if floor is None or floor.facility_id != facility.id:
        raise error(404, "no such floor at this facility")
    data = await read_body(request, MAX_UPLOAD_BYTES)
    try:
        page = int(request.query.get("page", "1"))
        png, width, height = await asyncio.to_thread(render_plan, data, request.content_type,
                                                     page)
    except ValueError:
        raise error(400, "page must be a whole number") from None
    except PlanRefused as exc:
        raise error(415, str(exc)) from None
    await store.run(store.set_plan, floor.id, png, width, height)
    await _audit(request, "facility.plan", f"facility:{facility.id}", facility.owner_id,
                 {"floor": floor.id, "bytes": len(data), "width": width, "height": height})
    return web.json_response({"floor": floor.id, "width": width, "height": height})


@allow(Role.OWNER, Role.ADMIN)
async def add_room(request: web.Request) -> web.Response:
    facility = await _own(request)
    fields = await read_fields(request)
    store = _service(request).store
    floor = await store.run(store.floor, _text(fields, "floor_id", 64, needed=True))
    if floor is None or floor.facility_id != facility.id:
        raise error(404, "floor_id: no such floor at this facility")
    where: list[float | None] = []
    for name in ("x", "y"):
        value = fields.get(name)
        if value is None:
            where.append(None)
            continue
        if not isinstance(value, int | float) or not 0 <= value <= 1:
            raise error(400, f"{name} must be a fraction of the plan's size, 0 to 1")
        where.append(float(value))
    room = await store.run(store.add_room, facility.id, floor.id,
                           _text(fields, "name", 100, needed=True), _text(fields, "number", 20),
                           where[0], where[1])
    return web.json_response(room.as_json(), status=201)


async def _plan_response(request: web.Request, facility_id: str, floor_id: str
                         ) -> web.Response:
    store = _service(request).store
    floor = await store.run(store.floor, floor_id)
    png = None if floor is None or floor.facility_id != facility_id else \
        await store.run(store.plan, floor_id)
    if png is None:
        raise error(404, "this floor has no plan")
    return web.Response(body=png, content_type="image/png",
                        headers={"Cache-Control": "private, max-age=300"})


@allow(Role.OWNER, *STAFF_ROLES)
async def get_plan(request: web.Request) -> web.Response:
    principal = require_principal(request)
    if principal.is_staff:
        facility = await _shared(request)
    else:
        facility = await _own(request)
    return await _plan_response(request, facility.id, request.match_info["floor"])


@allow(Role.OWNER, Role.ADMIN)
async def create_enrolment(request: web.Request) -> web.Response:
    facility = await _own(request)
    fields = await read_fields(request)
    label = _text(fields, "label", 100, needed=True)
    room_id = _text(fields, "room_id", 64)
    service = _service(request)
    if room_id:
        room = await service.store.run(service.store.room, room_id)
        if room is None or await service.room_facility(room_id) != facility.id:
            raise error(404, "room_id: no such room at this facility")
    secret = await service.store.run(service.store.add_enrolment, facility.id, label, room_id,
                                     service.limits.enrol_minutes * 60)
    base = request.config_dict[SETTINGS].server.public_url.rstrip("/") or \
        f"{request.scheme}://{request.host}"
    # The secret rides in the fragment: browsers never send it to a server or into a log.
    url = f"{base}/panic/#enrol={secret}"
    await _audit(request, "facility.enrolment", f"facility:{facility.id}", facility.owner_id,
                 {"label": label, "room_id": room_id})
    qr = segno.make(url, error="m")
    return web.json_response({"url": url, "secret": secret,
                              "qr_svg": qr.svg_inline(scale=5),
                              "qr_data_uri": qr.svg_data_uri(scale=5),
                              "expires_in_minutes": service.limits.enrol_minutes},
                             status=201)


@allow(Role.OWNER, Role.ADMIN)
async def list_devices(request: web.Request) -> web.Response:
    facility = await _own(request)
    store = _service(request).store
    devices = await store.run(store.devices, facility.id)
    return web.json_response({"devices": [d.as_json() for d in devices]})


@allow(Role.OWNER, Role.ADMIN)
async def revoke_device(request: web.Request) -> web.Response:
    facility = await _own(request)
    store = _service(request).store
    device = await store.run(store.device, request.match_info["device"])
    if device is None or device.facility_id != facility.id:
        raise error(404, "no such device at this facility")
    actor = actor_of(request)
    revoked = await store.run(store.revoke_device, device.id, actor.name)
    await _audit(request, "facility.device.revoke", f"device:{device.id}", facility.owner_id,
                 {"label": device.label})
    return web.json_response({"id": device.id, "revoked": revoked})


@allow(Role.OWNER, Role.ADMIN)
async def facility_alerts(request: web.Request) -> web.Response:
    facility = await _own(request)
    service = _service(request)
    alerts = await service.store.run(service.store.alerts_at, facility.id)
    return web.json_response({"alerts": [await service.summary(a) for a in alerts]})


# -- devices: the panic app --------------------------------------------------------------------


async def _device_of(request: web.Request) -> Any:
    try:
        return await _service(request).device(request.headers.get(DEVICE_HEADER, "").strip())
    except FacilityError as exc:
        log.info("panic API %s refused for %s: %s", request.path, client_address(request), exc)
        raise _fail(exc) from None


@public()
async def device_enrol(request: web.Request) -> web.Response:
    fields = await read_fields(request)
    store = _service(request).store
    try:
        device, token = await store.run(store.enrol, _text(fields, "secret", 200, needed=True))
    except FacilityError as exc:
        raise _fail(exc) from None
    facility = await store.run(store.facility, device.facility_id)
    log.info("panic device %s enrolled at facility %s", device.id, device.facility_id)
    return web.json_response({"device_id": device.id, "device_token": token,
                              "facility_id": device.facility_id,
                              "facility": facility.name if facility else ""}, status=201)


@public()
async def device_config(request: web.Request) -> web.Response:
    device = await _device_of(request)
    store = _service(request).store
    facility = await store.run(store.facility, device.facility_id)
    floors = await store.run(store.floors, device.facility_id)
    rooms = await store.run(store.rooms, device.facility_id)
    return web.json_response({
        "device_id": device.id, "label": device.label, "room_id": device.room_id,
        "facility": {"id": device.facility_id, "name": facility.name if facility else ""},
        "levels": list(LEVELS), "floors": [f.as_json() for f in floors],
        "rooms": [r.as_json() for r in rooms]})


@public()
async def device_plan(request: web.Request) -> web.Response:
    device = await _device_of(request)
    return await _plan_response(request, device.facility_id, request.match_info["floor"])


@public()
async def device_alert(request: web.Request) -> web.Response:
    device = await _device_of(request)
    fields = await read_fields(request)
    try:
        alert, created = await _service(request).raise_alert(device, fields)
    except FacilityError as exc:
        log.warning("panic alert from device %s refused: %s", device.id, exc)
        raise _fail(exc) from None
    return web.json_response({"alert": alert.as_json(), "stored": True, "replay": not created},
                             status=201 if created else 200)


@public()
async def device_alert_state(request: web.Request) -> web.Response:
    device = await _device_of(request)
    service = _service(request)
    alert = await service.store.run(service.store.alert, request.match_info["alert"])
    if alert is None or alert.facility_id != device.facility_id:
        raise error(404, "no such alert at this device's facility")
    events = await service.store.run(service.store.events, alert.id)
    last_answer = max((e.id for e in events if e.step == "checkin.answer"
                       and e.actor == f"device:{device.id}"), default=0)
    pending = [e.as_json() for e in events if e.step == "checkin.request"
               and e.id > last_answer]
    return web.json_response({"alert": alert.as_json(), "checkin": pending[-1] if pending
                              else None,
                              "acknowledged": any(e.step == "acknowledged" for e in events),
                              "all_clear": alert.state == "resolved"})


@public()
async def device_checkin(request: web.Request) -> web.Response:
    device = await _device_of(request)
    fields = await read_fields(request)
    try:
        alert = await _service(request).answer(device, request.match_info["alert"],
                                               _text(fields, "status", 20, needed=True))
    except FacilityError as exc:
        raise _fail(exc) from None
    return web.json_response({"alert": alert.as_json()})


# -- staff: the console ------------------------------------------------------------------------


async def _shared(request: web.Request) -> Facility:
    """The facility in the path when its profile is shared with the RTCC now."""
    service = _service(request)
    try:
        facility = await service.facility(request.match_info["id"])
    except FacilityError as exc:
        raise _fail(exc) from None
    if facility.sharing != "always" and not await service.store.run(service.store.active_at,
                                                                    facility.id):
        raise error(403, f"{facility.name} shares its profile with the RTCC only during an"
                         " alert")
    return facility


@staff()
async def staff_facility(request: web.Request) -> web.Response:
    return web.json_response(await _profile(request, await _shared(request)))


@staff()
async def list_alerts(request: web.Request) -> web.Response:
    service = _service(request)
    active = request.query.get("all") != "1"
    alerts = await service.store.run(lambda: service.store.alerts(active_only=active))
    return web.json_response({"alerts": [await service.summary(a) for a in alerts]})


@staff()
async def get_alert(request: web.Request) -> web.Response:
    service = _service(request)
    alert = await service.store.run(service.store.alert, request.match_info["alert"])
    if alert is None:
        raise error(404, "no such alert")
    outbox = await service.store.run(service.store.outbox, alert.id)
    return web.json_response({**await service.summary(alert), "outbox": outbox})


@staff()
async def alert_action(request: web.Request) -> web.Response:
    actor = actor_of(request)
    fields = await read_fields(request)
    details = {"note": _text(fields, "note", 500)} if fields.get("note") else {}
    try:
        alert = await _service(request).step(request.match_info["alert"],
                                             request.match_info["action"], actor.name, details)
    except FacilityError as exc:
        raise _fail(exc) from None
    return web.json_response({"alert": alert.as_json()})


@staff()
async def alert_stream(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    feed = service.subscribe()
    try:
        await response.write(b": ready\n\n")
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_S):
                    item = await feed.queue.get()
            except TimeoutError:
                await response.write(b": ping\n\n")
                continue
            if item is None:
                break
            await response.write(f"event: alert\ndata: {json.dumps(item)}\n\n".encode())
    except ConnectionResetError:
        pass
    finally:
        service.unsubscribe(feed)
    return response


async def close_feeds(app: web.Application) -> None:
    """on_shutdown: end the consoles' alert streams so shutdown does not wait on them."""
    service = app.get(PANIC)
    if service is not None:
        service.close_feeds()


def add_routes(app: web.Application) -> None:
    app.on_shutdown.append(close_feeds)
    r = app.router
    r.add_get("/api/facilities", list_facilities)
    r.add_post("/api/facilities", create_facility)
    r.add_get("/api/facilities/{id}", get_facility)
    r.add_patch("/api/facilities/{id}", patch_facility)
    r.add_post("/api/facilities/{id}/floors", add_floor)
    r.add_put("/api/facilities/{id}/floors/{floor}/plan", put_plan)
    r.add_get("/api/facilities/{id}/floors/{floor}/plan", get_plan)
    r.add_post("/api/facilities/{id}/rooms", add_room)
    r.add_post("/api/facilities/{id}/enrolments", create_enrolment)
    r.add_get("/api/facilities/{id}/devices", list_devices)
    r.add_post("/api/facilities/{id}/devices/{device}/revoke", revoke_device)
    r.add_get("/api/facilities/{id}/alerts", facility_alerts)
    r.add_post("/panic/api/enrol", device_enrol)
    r.add_get("/panic/api/config", device_config)
    r.add_get("/panic/api/plans/{floor}", device_plan)
    r.add_post("/panic/api/alerts", device_alert)
    r.add_get("/panic/api/alerts/{alert}", device_alert_state)
    r.add_post("/panic/api/alerts/{alert}/checkin", device_checkin)
    r.add_get("/api/panic/facilities/{id}", staff_facility)
    r.add_get("/api/panic/alerts", list_alerts)
    r.add_get("/api/panic/alerts/stream", alert_stream)
    r.add_get("/api/panic/alerts/{alert}", get_alert)
    r.add_post("/api/panic/alerts/{alert}/{action}", alert_action)
