"""CAD incident routes and the service's lifetime in the application.

Feeds (integration accounts and administrators):
- ``POST /api/cad/eido``: one EIDO or an array; 200 with what each update did, 400 with the
  field-level problems (``problems``: path, expected, found), 413 over ``incidents.max_body_bytes``.
- ``POST /api/cad/webhook``: a flat JSON object, array, or CSV (``text/csv``) mapped by
  ``incidents.webhook_field_map``.
Board (staff):
- ``GET /api/cad/incidents?status=open|all``, ``GET /api/cad/incidents/{id}`` (with history),
- ``GET /api/cad/incidents/events``: server-sent events, ``event: incident`` with the incident's
  JSON on every change, a comment line as heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from pydantic import ValidationError

from incidents.field_map import FieldMap, FieldMapError, map_csv, map_json
from incidents.model import IncidentParseError
from incidents.service import IncidentService, raw_documents
from incidents.sta024 import Sta024Settings, Sta024Subscriber
from incidents.store import IncidentStore
from rtcc.appkeys import DATABASE, SETTINGS
from rtcc.errors import ConfigError
from rtcc.http import json_error, read_body, required
from rtcc.policy import Role, allow, staff
from rtcc.principal import actor_of

log = logging.getLogger(__name__)

INCIDENT_SERVICE = web.AppKey("incident_service", IncidentService)
STA024 = web.AppKey("incidents_sta024", Sta024Subscriber)
HEARTBEAT_SECONDS = 15.0


def _refused(exc: IncidentParseError) -> web.Response:
    return json_error(400, str(exc), problems=[
        {"path": p.path, "expected": p.expected, "found": p.found} for p in exc.problems])


def _sender(request: web.Request) -> str:
    actor = actor_of(request)
    return f"{actor.role}:{actor.name}@{actor.source}"


@allow(Role.INTEGRATION, Role.ADMIN)
async def post_eido(request: web.Request) -> web.Response:
    service = required(request, INCIDENT_SERVICE, "the CAD incidents service")
    body = await read_body(request, service.config.max_body_bytes)
    try:
        done = await service.ingest_eido(body, _sender(request), strict_locations=True)
    except IncidentParseError as exc:
        return _refused(exc)
    return web.json_response(done.as_json())


@allow(Role.INTEGRATION, Role.ADMIN)
async def post_webhook(request: web.Request) -> web.Response:
    service = required(request, INCIDENT_SERVICE, "the CAD incidents service")
    field_map = service.field_map
    if field_map is None:
        return json_error(404, "no CAD webhook is configured (incidents.webhook_field_map)")
    body = await read_body(request, service.config.max_body_bytes)
    try:
        if request.content_type == "text/csv":
            text = body.decode("utf-8-sig", "replace")
            updates = await asyncio.to_thread(map_csv, text, field_map)
            raws = [text] * len(updates)
        else:
            updates = await asyncio.to_thread(map_json, body, field_map)
            raws = raw_documents(body, len(updates))
    except FieldMapError as exc:
        return _refused(exc)
    done = await service.ingest(updates, raws, _sender(request))
    return web.json_response(done.as_json())


@staff()
async def list_incidents(request: web.Request) -> web.Response:
    service = required(request, INCIDENT_SERVICE, "the CAD incidents service")
    status = request.query.get("status", "open")
    if status not in {"open", "all"}:
        return json_error(400, "status must be 'open' or 'all'")
    incidents = await service.store.list_incidents(open_only=status == "open")
    return web.json_response({"incidents": [i.as_json() for i in incidents]})


@staff()
async def get_incident(request: web.Request) -> web.Response:
    service = required(request, INCIDENT_SERVICE, "the CAD incidents service")
    incident = await service.store.get(request.match_info["incident_id"])
    if incident is None:
        incident = await service.store.by_security_id(request.match_info["incident_id"])
    if incident is None:
        return json_error(404, "no such CAD incident")
    body = incident.as_json()
    body["history"] = [h.as_json() for h in await service.store.history(incident.tracking_id)]
    return web.json_response(body)


@staff()
async def incident_events(request: web.Request) -> web.StreamResponse:
    service = required(request, INCIDENT_SERVICE, "the CAD incidents service")
    feed = service.subscribe()
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n: connected\n\n")
        while True:
            try:
                incident = await asyncio.wait_for(feed.queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if incident is None:
                break
            data = json.dumps(incident.as_json(), separators=(",", ":"))
            await response.write(b"event: incident\ndata: " + data.encode() + b"\n\n")
    except ConnectionResetError:
        log.debug("incident events: a console went away")
    finally:
        service.unsubscribe(feed)
    return response


async def incidents_context(app: web.Application) -> AsyncIterator[None]:
    """Opens the store, loads the address points, starts the STA-024 subscriber if configured."""
    settings = app[SETTINGS]
    config = settings.incidents
    store = await IncidentStore.open(app[DATABASE])
    try:
        service = IncidentService(
            store, config,
            allow_networks=tuple(settings.security.allow_private_camera_hosts))
        await service.load_addresses()
        if config.webhook_field_map is not None:
            try:
                service.field_map = FieldMap.model_validate(config.webhook_field_map)
            except ValidationError as exc:
                raise ConfigError(f"incidents.webhook_field_map: {exc}") from None
        app[INCIDENT_SERVICE] = service
        async with contextlib.AsyncExitStack() as stack:
            if config.sta024 is not None:
                auth = config.sta024.authorization.get_secret_value()
                subscriber = Sta024Subscriber(
                    Sta024Settings(url=config.sta024.url,
                                   incident_ids=tuple(config.sta024.incident_ids),
                                   expires=config.sta024.expires,
                                   headers={"Authorization": auth} if auth else {}),
                    service.handle_sta024)
                app[STA024] = subscriber
                await stack.enter_async_context(subscriber)
            try:
                yield
            finally:
                service.close_feeds()
    finally:
        await store.aclose()


async def close_feeds(app: web.Application) -> None:
    """on_shutdown: end the board streams so shutdown does not wait on them."""
    service = app.get(INCIDENT_SERVICE)
    if service is not None:
        service.close_feeds()


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/cad/eido", post_eido)
    app.router.add_post("/api/cad/webhook", post_webhook)
    app.router.add_get("/api/cad/incidents", list_incidents)
    app.router.add_get("/api/cad/incidents/events", incident_events)
    app.router.add_get("/api/cad/incidents/{incident_id}", get_incident)
    app.on_shutdown.append(close_feeds)
