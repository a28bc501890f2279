"""Notification routes and the service's lifetime in the application.

Staff (``/api/notify``): the soft-target registry (``GET/POST /facilities``, ``DELETE
/facilities/{id}``; changes by supervisors and administrators), ``POST /preview`` (who an area
and categories reach), ``POST /send`` (a manual alert), ``GET /alerts?incident=``, ``GET
/alerts/{id}`` (with every delivery's state), ``POST /alerts/{id}/confirm|dismiss|update|cancel``,
``POST /deliveries/{id}/resend``, ``GET /alerts/{id}/cap.xml``.
Public: ``GET /notify/ack/{token}`` (the one-click acknowledgement), ``GET /public/alerts.atom``
and ``GET /public/alerts/{identifier}.xml`` (``scope=Public`` alerts only).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from notify import atom
from notify.cap import Area, CapInvalid
from notify.outbox import Outbox
from notify.service import NotifyError, NotifyService
from notify.store import CHANNELS, Contact, Facility, NotifyStore
from rtcc.appkeys import CLOCK, DATABASE, SETTINGS
from rtcc.config import NotifyTemplate
from rtcc.http import json_error, read_json, required
from rtcc.policy import Role, allow, public, staff
from rtcc.principal import actor_of, client_address
from rtcc.tasks import TaskSupervisor

NOTIFY_SERVICE = web.AppKey("notify_service", NotifyService)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
EDITORS = (Role.SUPERVISOR, Role.ADMIN)
SENDERS = (Role.ANALYST, Role.SUPERVISOR, Role.ADMIN)


def _actor(request: web.Request) -> tuple[str, str]:
    actor = actor_of(request)
    return actor.name, str(actor.role)


def _service(request: web.Request) -> NotifyService:
    return required(request, NOTIFY_SERVICE, "the notifications service")


def _float(value: Any, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise web.HTTPBadRequest(text=f'{{"error": "{name} must be a number"}}',
                                 content_type="application/json") from None
    if not low <= number <= high:
        raise web.HTTPBadRequest(
            text=f'{{"error": "{name} must be between {low:g} and {high:g}"}}',
            content_type="application/json")
    return number


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}),
                              content_type="application/json")


def _polygon(value: Any, name: str) -> tuple[tuple[float, float], ...]:
    if not value:
        return ()
    if not isinstance(value, list) or not 3 <= len(value) <= 500:
        raise _bad(f"{name} must be a list of 3 to 500 [lat, lon] points")
    return tuple((_float(p[0], f"{name} latitude", -90, 90),
                  _float(p[1], f"{name} longitude", -180, 180)) for p in value)


def facility_from(body: dict[str, Any]) -> Facility:
    facility_id = str(body.get("id", ""))
    if not _ID.match(facility_id):
        raise _bad("id: 1-64 letters, digits and _ . : - (no spaces)")
    name = str(body.get("name", "")).strip()[:200]
    category = str(body.get("category", "")).strip().lower()[:40]
    if not name or not category:
        raise _bad("name and category are required")
    polygon = _polygon(body.get("polygon"), "polygon")
    if "lat" in body or not polygon:
        lat = _float(body.get("lat"), "lat", -90, 90)
        lon = _float(body.get("lon"), "lon", -180, 180)
    else:
        lat = sum(p[0] for p in polygon) / len(polygon)
        lon = sum(p[1] for p in polygon) / len(polygon)
    contacts = []
    for item in body.get("contacts") or []:
        channel = str(item.get("channel", ""))
        address = str(item.get("address", "")).strip()
        if channel not in CHANNELS:
            raise _bad(f"contact channel must be one of {', '.join(CHANNELS)}")
        if channel == "email" and not _EMAIL.match(address):
            raise _bad(f"contact {address[:80]!r} is not an e-mail address")
        if channel == "webhook" and not address.startswith(("https://", "http://")):
            raise _bad("a webhook contact is an http(s) URL")
        contacts.append(Contact(0, facility_id, str(item.get("name", ""))[:200], channel,
                                address[:2000]))
    return Facility(facility_id, name, category, lat, lon, polygon,
                    str(body.get("address", ""))[:300], tuple(contacts))


def area_from(body: dict[str, Any]) -> Area:
    circle = body.get("circle")
    polygon = _polygon(body.get("polygon"), "polygon")
    if not circle and not polygon:
        raise _bad("draw an area: circle {lat, lon, radius_m} or polygon [[lat, lon], ...]")
    c = None
    if circle:
        c = (_float(circle.get("lat"), "circle lat", -90, 90),
             _float(circle.get("lon"), "circle lon", -180, 180),
             _float(circle.get("radius_m"), "circle radius_m", 1, 100_000))
    return Area(str(body.get("description", "") or "Area drawn on the map")[:200], c, polygon)


def _categories(body: dict[str, Any]) -> list[str]:
    value = body.get("categories") or []
    if not isinstance(value, list):
        raise _bad("categories must be a list")
    return [str(v) for v in value]


@staff()
async def list_facilities(request: web.Request) -> web.Response:
    facilities = await _service(request).store.facilities()
    return web.json_response({"facilities": [f.as_json() for f in facilities]})


@allow(*EDITORS)
async def put_facility(request: web.Request) -> web.Response:
    service = _service(request)
    facility = await service.store.put_facility(facility_from(await read_json(request)))
    await service.record(_actor(request), "notify.facility.put", f"facility:{facility.id}",
                         facility.as_json())
    return web.json_response(facility.as_json(), status=201)


@allow(*EDITORS)
async def delete_facility(request: web.Request) -> web.Response:
    service = _service(request)
    facility_id = request.match_info["facility_id"]
    if not await service.store.delete_facility(facility_id):
        return json_error(404, "no such facility")
    await service.record(_actor(request), "notify.facility.delete", f"facility:{facility_id}",
                         {})
    return web.json_response({"deleted": facility_id})


@staff()
async def preview(request: web.Request) -> web.Response:
    body = await read_json(request)
    targets = await _service(request).in_area(area_from(body), _categories(body))
    return web.json_response({"facilities": [t.as_json() for t in targets],
                              "contacts": sum(len(t.facility.contacts) for t in targets)})


def _template(body: dict[str, Any]) -> NotifyTemplate:
    fields = {k: body[k] for k in ("event", "headline", "description", "instruction",
                                   "urgency", "severity", "certainty", "response_type",
                                   "cap_category") if k in body}
    try:
        return NotifyTemplate(**fields)
    except ValidationError as exc:
        raise _bad(f"message: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None


@allow(*SENDERS)
async def send(request: web.Request) -> web.Response:
    body = await read_json(request)
    scope = body.get("scope", "Private")
    if scope not in {"Private", "Public"}:
        raise _bad("scope must be Private (the facilities' contacts) or Public (the feed too)")
    try:
        alert = await _service(request).send_manual(
            area=area_from(body), categories=_categories(body), template=_template(body),
            scope=scope, actor=_actor(request), incident=str(body.get("incident", ""))[:200])
    except (NotifyError, CapInvalid) as exc:
        return json_error(409, str(exc))
    return web.json_response(alert.as_json(), status=201)


@staff()
async def list_alerts(request: web.Request) -> web.Response:
    alerts = await _service(request).store.alerts(incident=request.query.get("incident"))
    return web.json_response({"alerts": [a.as_json() for a in alerts]})


def _alert_id(request: web.Request) -> int:
    try:
        return int(request.match_info["alert_id"])
    except ValueError:
        raise web.HTTPNotFound() from None


@staff()
async def get_alert(request: web.Request) -> web.Response:
    service = _service(request)
    alert = await service.store.alert(_alert_id(request))
    if alert is None:
        return json_error(404, "no such alert")
    deliveries = await service.store.deliveries(alert_id=alert.id)
    counts: dict[str, int] = {}
    for d in deliveries:
        counts[d.state] = counts.get(d.state, 0) + 1
    counts["acknowledged"] = sum(1 for d in deliveries if d.acked_at is not None)
    return web.json_response({**alert.as_json(), "counts": counts,
                              "deliveries": [d.as_json() for d in deliveries]})


@staff()
async def alert_xml(request: web.Request) -> web.Response:
    alert = await _service(request).store.alert(_alert_id(request))
    if alert is None or not alert.xml:
        return json_error(404, "no such sent alert")
    return web.Response(text=alert.xml, content_type="application/cap+xml")


@allow(*SENDERS)
async def confirm(request: web.Request) -> web.Response:
    try:
        alert = await _service(request).confirm(_alert_id(request), _actor(request))
    except NotifyError as exc:
        return json_error(409, str(exc))
    return web.json_response(alert.as_json())


@allow(*SENDERS)
async def dismiss(request: web.Request) -> web.Response:
    try:
        await _service(request).dismiss(_alert_id(request), _actor(request))
    except NotifyError as exc:
        return json_error(409, str(exc))
    return web.json_response({"dismissed": _alert_id(request)})


async def _follow_up(request: web.Request, msg_type: Any) -> web.Response:
    body = await read_json(request)
    try:
        alert = await _service(request).follow_up(
            _alert_id(request), msg_type, _actor(request),
            headline=str(body.get("headline", ""))[:160],
            description=str(body.get("description", ""))[:2000])
    except NotifyError as exc:
        return json_error(409, str(exc))
    return web.json_response(alert.as_json(), status=201)


@allow(*SENDERS)
async def update(request: web.Request) -> web.Response:
    return await _follow_up(request, "Update")


@allow(*SENDERS)
async def cancel(request: web.Request) -> web.Response:
    return await _follow_up(request, "Cancel")


@allow(*SENDERS)
async def resend(request: web.Request) -> web.Response:
    try:
        delivery_id = int(request.match_info["delivery_id"])
        delivery = await _service(request).resend(delivery_id, _actor(request))
    except ValueError:
        return json_error(404, "no such delivery")
    except NotifyError as exc:
        return json_error(404, str(exc))
    return web.json_response(delivery.as_json())


_ACK_PAGE = ("<!doctype html><meta charset=utf-8><title>{title}</title>"
             "<body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
             "<h1>{title}</h1><p>{text}</p></body>")


@public()
async def acknowledge(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    delivery = None
    if _TOKEN.match(token):
        delivery = await _service(request).acknowledge(token, client_address(request))
    if delivery is None:
        return web.Response(status=404, content_type="text/html", text=_ACK_PAGE.format(
            title="Link not recognised", text="This acknowledgement link is not valid."))
    return web.Response(content_type="text/html", text=_ACK_PAGE.format(
        title="Thank you", text="Receipt acknowledged. The department can see that you "
        "received this message."))


@public()
async def public_feed(request: web.Request) -> web.Response:
    service = _service(request)
    alerts = await service.store.alerts(scope="Public", limit=100)
    base = service.public_url or f"{request.scheme}://{request.host}"
    text = atom.feed(alerts, base_url=base, title=service.config.sender_name,
                     updated=datetime.now(UTC).replace(microsecond=0).isoformat())
    return web.Response(text=text, content_type="application/atom+xml")


@public()
async def public_alert(request: web.Request) -> web.Response:
    identifier = request.match_info["identifier"]
    for alert in await _service(request).store.alerts(scope="Public", limit=2000):
        if alert.identifier == identifier:
            return web.Response(text=alert.xml, content_type="application/cap+xml")
    return json_error(404, "no such public alert")


STATIC = Path(__file__).parent / "static"
ASSETS = {"notify.js": "text/javascript", "notify.css": "text/css"}


@public()
async def console_page(request: web.Request) -> web.StreamResponse:  # noqa: ARG001 -- aiohttp handler
    # Public on purpose, like the wall console: the page carries no data; the API asks for a
    # login on every call.
    return web.FileResponse(STATIC / "notify.html")


@public()
async def console_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    response = web.FileResponse(STATIC / name)
    response.content_type = ASSETS[name]
    return response


async def notify_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    clock = app.get(CLOCK) or time.time
    store = await NotifyStore.open(app[DATABASE], clock)
    config = settings.notify
    outbox = Outbox(store, config,
                    allow_networks=tuple(settings.security.allow_private_camera_hosts))
    service = NotifyService(store, outbox, config,
                            public_url=config.public_url or settings.server.public_url,
                            clock=clock)
    app[NOTIFY_SERVICE] = service
    try:
        async with TaskSupervisor("notify") as tasks:
            tasks.start("notify:outbox", outbox.run)
            yield
    finally:
        await store.aclose()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/notify/facilities", list_facilities)
    r.add_post("/api/notify/facilities", put_facility)
    r.add_delete("/api/notify/facilities/{facility_id}", delete_facility)
    r.add_post("/api/notify/preview", preview)
    r.add_post("/api/notify/send", send)
    r.add_get("/api/notify/alerts", list_alerts)
    r.add_get("/api/notify/alerts/{alert_id}", get_alert)
    r.add_get("/api/notify/alerts/{alert_id}/cap.xml", alert_xml)
    r.add_post("/api/notify/alerts/{alert_id}/confirm", confirm)
    r.add_post("/api/notify/alerts/{alert_id}/dismiss", dismiss)
    r.add_post("/api/notify/alerts/{alert_id}/update", update)
    r.add_post("/api/notify/alerts/{alert_id}/cancel", cancel)
    r.add_post("/api/notify/deliveries/{delivery_id}/resend", resend)
    r.add_get("/notify/ack/{token}", acknowledge)
    r.add_get("/public/alerts.atom", public_feed)
    r.add_get("/public/alerts/{identifier}.xml", public_alert)
    r.add_get("/console/notify/", console_page)
    r.add_get("/console/notify/static/{name}", console_asset)
