"""The open data API (no login) and the records import (administrators).

``GET /public/api/v1/``                   what the API serves, its fields and filters
``GET /public/api/v1/incidents.json``     published incidents (``?type=&from=&to=``)
``GET /public/api/v1/incidents.geojson``  the same as GeoJSON points (snap points)
``GET /public/api/v1/incidents.csv``      the same as CSV
``GET /public/api/v1/metrics.json|csv``   response metrics
``GET /public/api/v1/program.json``       the camera program in numbers
``POST /api/transparency/records``        a CSV of reported crimes (``text/csv``), admins

Every public answer is bytes prepared by the last refresh, with an ETag and a short max-age:
a request reads no database and touches nothing of the live video path.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import date

from aiohttp import web

from rtcc.http import json_error, read_body, required
from rtcc.policy import Role, allow, public
from transparency import opendata
from transparency.keys import TRANSPARENCY
from transparency.policy import PublishedIncident
from transparency.records import RecordsImportError, parse_records
from transparency.service import File, Snapshot, TransparencyService

BASE = "/public/api/v1"
MAX_AGE_S = 60
MAX_RECORDS_BYTES = 64 * 1024**2
FILTER_CACHE = 64
FILES = ("incidents.json", "incidents.geojson", "incidents.csv", "metrics.json", "metrics.csv",
         "program.json")
FILTER_CACHE_KEY = web.AppKey("transparency_filter_cache", OrderedDict)


def _answer(request: web.Request, file: File) -> web.StreamResponse:
    headers = {"ETag": file.etag, "Cache-Control": f"public, max-age={MAX_AGE_S}",
               "Access-Control-Allow-Origin": "*"}
    if request.headers.get("If-None-Match") == file.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=file.body, content_type=file.content_type, headers=headers)


def _filtered(snapshot: Snapshot, types: set[str], start: date | None,
              end: date | None) -> list[PublishedIncident]:
    out = []
    for incident in snapshot.incidents:
        day = date.fromisoformat(incident.occurred_hour[:10])
        if types and incident.type_code not in types:
            continue
        if (start is not None and day < start) or (end is not None and day > end):
            continue
        out.append(incident)
    return out


def _render(name: str, incidents: list[PublishedIncident], stamp: str) -> bytes:
    if name == "incidents.geojson":
        return opendata.incidents_geojson(incidents, stamp)
    if name == "incidents.csv":
        return opendata.incidents_csv(incidents)
    return opendata.incidents_json(incidents, stamp)


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a date such as 2026-11-03") from None


@public()
async def api_index(request: web.Request) -> web.Response:  # noqa: ARG001 -- aiohttp handler
    return web.Response(body=opendata.describe(BASE), content_type="application/json",
                        headers={"Cache-Control": f"public, max-age={MAX_AGE_S}"})


@public()
async def open_file(request: web.Request) -> web.StreamResponse:
    service: TransparencyService = required(request, TRANSPARENCY, "the transparency service")
    snapshot = service.snapshot
    name = request.path.rsplit("/", 1)[-1]
    file = snapshot.files.get(name)
    if file is None:
        raise web.HTTPNotFound(text=f"no open data file {name!r}; see {BASE}/")
    types = {t.strip().upper() for t in request.query.getall("type", []) if t.strip()}
    start, end = _day(request.query.get("from"), "from"), _day(request.query.get("to"), "to")
    if name.startswith("incidents.") and (types or start or end):
        # Filtered answers are built once per snapshot and filter, in a thread.
        cache = request.config_dict[FILTER_CACHE_KEY]
        key = (snapshot.version, name, tuple(sorted(types)), start, end)
        file = cache.get(key)
        if file is None:
            body = await asyncio.to_thread(
                lambda: _render(name, _filtered(snapshot, types, start, end),
                                snapshot.generated_at))
            file = File(body, snapshot.files[name].content_type,
                        f'"{snapshot.version}-{abs(hash(key)):x}"')
            cache[key] = file
            while len(cache) > FILTER_CACHE:
                cache.popitem(last=False)
    return _answer(request, file)


@allow(Role.ADMIN)
async def import_records(request: web.Request) -> web.Response:
    service: TransparencyService = required(request, TRANSPARENCY, "the transparency service")
    if request.content_type != "text/csv":
        return json_error(415, "send the reported crimes as text/csv")
    body = await read_body(request, MAX_RECORDS_BYTES)
    try:
        crimes = await asyncio.to_thread(parse_records, body.decode("utf-8-sig", "replace"))
    except RecordsImportError as exc:
        return json_error(400, str(exc), problems=exc.problems)
    stored = await service.import_records(crimes)
    return web.json_response({"imported": stored,
                              "published": len(service.snapshot.incidents)})


def add_routes(app: web.Application) -> None:
    app[FILTER_CACHE_KEY] = OrderedDict()
    app.router.add_get(BASE + "/", api_index)
    for name in FILES:
        app.router.add_get(f"{BASE}/{name}", open_file)
    app.router.add_post("/api/transparency/records", import_records)
