"""The catalog's HTTP API: cameras as GeoJSON, geographic search, bulk import and export.

Reads are for staff; writes, imports and exports for administrators and supervisors (owners
manage their own cameras through the owner portal). Bad input is answered with 400 and
``{"error": reason, "field": name, "allowed": what is allowed}``; a refused import lists every
bad row in ``rows``. Passwords are accepted in clear, stored encrypted and never returned.

Staff keep full control of the department's own cameras. On an owner's camera they may lower
sharing (suspend it) or turn PTZ off, but only the owner raises sharing above what they chose,
allows PTZ or changes the time windows, and a camera changes owner only by a transfer the new
owner accepts: such writes are refused with 403, whole (an import writes nothing).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from catalog import io, params
from catalog.consent_changes import record_consent
from catalog.errors import CameraExists, FieldError, ImportConflict, ImportRejected
from catalog.geo import MAX_RADIUS_M
from catalog.keys import CATALOG_EVENTS, CATALOG_STORE
from catalog.live import close_feeds, events
from catalog.model import DEPARTMENT, Camera, Registrar, camera_public
from catalog.openapi import openapi_document
from catalog.query import SearchResult
from catalog.shapes import parse_polygon, parse_route
from catalog.store import STORE_ERRORS, CatalogStore
from catalog.validate import check_camera_id, parse_camera, registered
from rtcc.access_check import access_answers
from rtcc.appkeys import AUDIT, HUB, INCIDENTS, SECRET_BOX, clock_of
from rtcc.config import SharingLevel
from rtcc.http import MAX_BODY, read_body, required
from rtcc.policy import Role, allow, public, staff
from rtcc.principal import principal_of, require_principal

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_LIVE_LEVELS = frozenset({SharingLevel.LIVE_EMERGENCY, SharingLevel.LIVE_ALWAYS})
_SEARCH_KEYS = frozenset({"polygon", "route", "buffer_m", "filters", "offset", "limit"})
_CSV_TYPES = frozenset({"text/csv", "application/csv"})
_GEOJSON_TYPES = frozenset({"application/geo+json", "application/json"})
writers = functools.partial(allow, Role.ADMIN, Role.SUPERVISOR)
_LEVELS = tuple(SharingLevel)
_SEARCH_BODY = 256 * 1024


class OwnerDecides(Exception):
    """A change to a camera that only its owner may make."""

    def __init__(self, field: str, reason: str, allowed: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.allowed = allowed


def check_staff_write(before: Camera | None, after: Camera) -> None:
    """Raise OwnerDecides if staff writing ``after`` over ``before`` overrides its owner."""
    if after.owner_id != (before.owner_id if before is not None else DEPARTMENT):
        raise OwnerDecides(
            "owner_id", "only the owner can give a camera to another owner, and a camera "
            "becomes an owner's only when that owner accepts it",
            f"{before.owner_id if before is not None else DEPARTMENT}; offer a transfer with "
            "POST /api/owner/cameras/{id}/transfer")
    if before is None or not before.has_owner:
        return
    limit = before.sharing_limit()
    if _LEVELS.index(after.sharing) > _LEVELS.index(limit):
        allowed = ", ".join(str(level) for level in _LEVELS[:_LEVELS.index(limit) + 1])
        raise OwnerDecides("sharing", f"only the owner can raise this camera's sharing above "
                           f"{limit}, the level the owner chose", allowed)
    if after.ptz_allowed and not before.ptz_allowed:
        raise OwnerDecides("ptz_allowed", "only the owner can allow PTZ on this camera", "false")
    if (after.windows, after.timezone) != (before.windows, before.timezone):
        raise OwnerDecides("windows", "only the owner can change this camera's time windows",
                           "the windows and time zone the owner set")


def shows_urls(request: web.Request) -> bool:
    """Stream addresses are for administrators only: anyone else could open them outside the
    product, unaudited. Without the accounts layer (the catalog served on its own) the caller
    is its operator."""
    principal = principal_of(request)
    if principal is None:
        return AUDIT not in request.config_dict
    return principal.role == Role.ADMIN


def _error(status: int, reason: str, field: str = "", allowed: str = "",
           **extra: Any) -> web.Response:
    return web.json_response({"error": reason, "field": field, "allowed": allowed, **extra},
                             status=status)


def json_errors(handler: Handler) -> Handler:
    """Map the catalog's refusals to JSON answers."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except FieldError as exc:
            return _error(400, exc.reason, exc.field, exc.allowed)
        except ImportRejected as exc:
            return _error(400, str(exc), "rows", "see rows",
                          rows=[e.as_dict() for e in exc.errors])
        except CameraExists as exc:
            return _error(409, str(exc), "id", "an id not yet registered")
        except OwnerDecides as exc:
            return _error(403, exc.reason, exc.field, exc.allowed)
        except STORE_ERRORS as exc:
            log.warning("catalog store unavailable for %s %s: %s", request.method,
                        request.path, exc)
            return _error(503, "the catalog store is unavailable; try again shortly")

    return wrapper


def _store(request: web.Request) -> CatalogStore:
    return request.config_dict[CATALOG_STORE]


async def _publish(request: web.Request, event: dict[str, Any]) -> None:
    bus = request.config_dict.get(CATALOG_EVENTS)
    if bus is not None:
        await bus.publish(event)


def _end_live_sessions(request: web.Request, camera_id: str, reason: str) -> None:
    hub = request.config_dict.get(HUB)
    if hub is not None and hub.has_camera(camera_id):
        ended = hub.close_camera_sessions(camera_id, reason)
        if ended:
            log.info("camera %s: ended %d live session(s): %s", camera_id, ended, reason)


def _collection(result: SearchResult, offset: int, limit: int, urls: bool,
                access: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    features = [io.camera_feature(hit.camera, hit, urls=urls) for hit in result.hits]
    if access is not None:
        for feature in features:
            feature["properties"]["access"] = access[feature["id"]]
    return {
        "type": "FeatureCollection",
        "features": features,
        "total": result.total, "offset": offset, "limit": limit,
    }


def _asks_access(request: web.Request) -> bool:
    raw = request.query.get("access", "0")
    if raw not in ("0", "1"):
        raise FieldError("access", "must be 0 or 1", "access=1")
    return raw == "1"


async def _access(request: web.Request, result: SearchResult) -> dict[str, dict[str, Any]]:
    """Each found camera's live-view decision for the asker, as ``GET /api/console/access``
    gives it (same rules, same stand-in purpose): a ranked list then needs no second request.
    The consent is the one just read with the camera."""
    lookup = required(request, INCIDENTS, "the security core")
    consents = {hit.camera.id: hit.camera.consent() for hit in result.hits}
    return await access_answers(consents, require_principal(request), lookup,
                                clock_of(request)())


async def _json_body(request: web.Request, limit: int = MAX_BODY) -> Any:
    try:
        return json.loads(await read_body(request, limit))
    except (ValueError, UnicodeDecodeError):
        raise FieldError("body", "not valid JSON", "a JSON object") from None


# -- reads ------------------------------------------------------------------------------------


@staff()
@json_errors
async def list_cameras(request: web.Request) -> web.Response:
    """GET /api/cameras: near a point, able to see a point, or every camera by id."""
    query = request.query
    params.check_query_names(query, params.LIST_PARAMS)
    store = _store(request)
    urls = shows_urls(request)
    filters = params.query_filters(query)
    near = params.point(query, "near")
    sees = params.point(query, "sees")
    if near is not None and sees is not None:
        raise FieldError("sees", "use either near or sees", "near=LAT,LON or sees=LAT,LON")
    with_access = _asks_access(request)
    if near is not None:
        page = params.page_from(query, default_limit=20)
        result = await store.nearest(*near, limit=page.limit, offset=page.offset,
                                     radius_m=params.radius(query, MAX_RADIUS_M),
                                     filters=filters)
        access = await _access(request, result) if with_access else None
        return web.json_response(_collection(result, page.offset, page.limit, urls, access))
    if sees is not None:
        page = params.page_from(query, default_limit=50)
        result = await store.can_see(*sees, near_m=params.near_radius(query), filters=filters,
                                     page=page)
        access = await _access(request, result) if with_access else None
        return web.json_response(_collection(result, page.offset, page.limit, urls, access))
    if with_access:
        raise FieldError("access", "only with near or sees", "near=LAT,LON&access=1")
    if "radius_m" in query:
        raise FieldError("radius_m", "needs near or sees", "near=LAT,LON&radius_m=R")
    if "offset" in query:
        raise FieldError("offset", "a plain listing pages with after=<last id>", "after")
    page = params.page_from(query)
    cameras = await store.list_cameras(filters, after=query.get("after", ""), limit=page.limit)
    return web.json_response({
        "type": "FeatureCollection",
        "features": [io.camera_feature(c, urls=urls) for c in cameras],
        "limit": page.limit,
        "next": cameras[-1].id if len(cameras) == page.limit else None,
    })


@staff()
@json_errors
async def search(request: web.Request) -> web.Response:
    """POST /api/cameras/search: inside a polygon, or along a route with a buffer."""
    # A polygon or route of MAX_VERTICES points written at full precision.
    body = await _json_body(request, _SEARCH_BODY)
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object", "polygon or route")
    for key in body:
        if key not in _SEARCH_KEYS:
            raise FieldError(str(key)[:64], "unknown field", ", ".join(sorted(_SEARCH_KEYS)))
    raw_filters = body.get("filters") or {}
    if not isinstance(raw_filters, dict) or any(k not in params.FILTER_PARAMS
                                                for k in raw_filters):
        raise FieldError("filters", "must be an object of lists",
                         ", ".join(params.FILTER_PARAMS))
    filters = params.filters_from({k: v if isinstance(v, list) else [v]
                                   for k, v in raw_filters.items()})
    page = params.page_from(body)
    store = _store(request)
    if ("polygon" in body) == ("route" in body):
        raise FieldError("polygon", "give exactly one of polygon or route",
                         "polygon (GeoJSON Polygon) or route (GeoJSON LineString) and buffer_m")
    if "polygon" in body:
        if "buffer_m" in body:
            raise FieldError("buffer_m", "only for a route", "route with buffer_m")
        result = await store.within_polygon(parse_polygon(body["polygon"]), filters=filters,
                                            page=page)
    else:
        route = parse_route(body["route"], body.get("buffer_m", 50.0))
        result = await store.along_route(route, filters=filters, page=page)
    return web.json_response(_collection(result, page.offset, page.limit,
                                         shows_urls(request)))


@staff()
@json_errors
async def get_camera(request: web.Request) -> web.Response:
    camera_id = request.match_info["id"]
    camera = await _store(request).get(camera_id)
    if camera is None:
        return _error(404, f"camera {camera_id!r} is not registered", "id")
    return web.json_response(io.camera_feature(camera, urls=shows_urls(request)))


# -- writes -----------------------------------------------------------------------------------


def _feature_response(request: web.Request, camera: Camera, status: int) -> web.Response:
    response = web.json_response(io.camera_feature(camera, urls=shows_urls(request)),
                                 status=status)
    if status == 201:
        response.headers["Location"] = f"/api/cameras/{camera.id}"
    return response


async def _after_write(request: web.Request, before: Camera | None, after: Camera) -> None:
    await record_consent(request, before.consent() if before is not None else None,
                         after.consent())
    kind = "camera.updated" if before is not None else "camera.created"
    # The feed reaches every analyst: never stream addresses.
    await _publish(request, {"type": kind, "id": after.id,
                             "camera": camera_public(after, urls=False)})


@writers()
@json_errors
async def create_camera(request: web.Request) -> web.Response:
    fields = io.feature_fields(await _json_body(request))
    camera = parse_camera(fields, request.config_dict.get(SECRET_BOX))
    check_staff_write(None, camera)
    await _store(request).create(camera)
    await _after_write(request, None, camera)
    return _feature_response(request, camera, 201)


@writers()
@json_errors
async def put_camera(request: web.Request) -> web.Response:
    camera_id = check_camera_id(request.match_info["id"])
    fields = io.feature_fields(await _json_body(request))
    if fields.setdefault("id", camera_id) != camera_id:
        raise FieldError("id", "does not match the id in the URL", camera_id)
    store = _store(request)
    before = await store.get(camera_id)
    camera = registered(parse_camera(fields, request.config_dict.get(SECRET_BOX), before),
                        before, Registrar.DEPARTMENT)
    check_staff_write(before, camera)
    await store.put(camera)
    await _after_write(request, before, camera)
    return _feature_response(request, camera, 200 if before is not None else 201)


@writers()
@json_errors
async def patch_camera(request: web.Request) -> web.Response:
    camera_id = request.match_info["id"]
    store = _store(request)
    before = await store.get(camera_id)
    if before is None:
        return _error(404, f"camera {camera_id!r} is not registered", "id")
    changes = io.feature_fields(await _json_body(request))
    if changes.get("id", camera_id) != camera_id:
        raise FieldError("id", "cannot be changed", camera_id)
    fields = camera_public(before, urls=True)
    fields.update(changes)
    camera = registered(parse_camera(fields, request.config_dict.get(SECRET_BOX), before),
                        before, Registrar.DEPARTMENT)
    check_staff_write(before, camera)
    await store.put(camera)
    await _after_write(request, before, camera)
    return _feature_response(request, camera, 200)


@writers()
@json_errors
async def delete_camera(request: web.Request) -> web.Response:
    camera_id = request.match_info["id"]
    if not await _store(request).delete(camera_id):
        return _error(404, f"camera {camera_id!r} is not registered", "id")
    _end_live_sessions(request, camera_id, "camera removed from the catalog")
    await _publish(request, {"type": "camera.deleted", "id": camera_id})
    return web.Response(status=204)


@writers()
@json_errors
async def import_cameras(request: web.Request) -> web.Response:
    """POST /api/cameras/import?mode=create|upsert with a CSV or GeoJSON body."""
    params.check_query_names(request.query, frozenset({"mode"}))
    mode = request.query.get("mode", "create")
    if mode not in ("create", "upsert"):
        raise FieldError("mode", f"unknown mode {mode[:20]!r}", "create, upsert")
    content_type = request.content_type
    if content_type in _CSV_TYPES:
        read = io.csv_rows
    elif content_type in _GEOJSON_TYPES:
        read = io.geojson_rows
    else:
        return _error(415, f"cannot import {content_type}", "Content-Type",
                      "text/csv, application/geo+json")
    # Reading and validating a large file takes seconds: off the event loop.
    rows, unreadable = await asyncio.to_thread(read, await request.read())
    store = _store(request)
    previous = await store.get_many([str(f.get("id")) for _, f in rows]) if mode == "upsert" \
        else {}
    parsed = await asyncio.to_thread(io.cameras_from_rows, rows,
                                     request.config_dict.get(SECRET_BOX), previous, unreadable)
    cameras = [registered(camera, previous.get(camera.id), Registrar.DEPARTMENT)
               for camera in parsed]
    overriding: list[dict[str, Any]] = []
    for (number, _), camera in zip(rows, cameras, strict=True):
        try:
            check_staff_write(previous.get(camera.id), camera)
        except OwnerDecides as exc:
            overriding.append({"row": number, "field": exc.field, "reason": exc.reason,
                               "allowed": exc.allowed})
    if overriding:
        return _error(403, f"import refused: {len(overriding)} row(s) would override a "
                      "camera's owner, nothing was written", "rows", "see rows",
                      rows=overriding)
    try:
        count = await store.import_cameras(cameras, "upsert" if mode == "upsert" else "create")
    except ImportConflict as exc:
        taken = set(exc.camera_ids)
        report = [
            {"row": number, "field": "id", "reason": f"camera {fields['id']!r} is already "
             "registered", "allowed": "a new id, or ?mode=upsert to replace"}
            for number, fields in rows if fields.get("id") in taken
        ]
        return _error(409, f"import refused: {len(report)} camera(s) already registered, "
                      "nothing was written", "rows", "see rows", rows=report)
    for camera in cameras:
        before = previous.get(camera.id)
        if before is not None and before.consent() != camera.consent():
            await record_consent(request, before.consent(), camera.consent())
    await _publish(request, {"type": "catalog.imported", "count": count, "mode": mode})
    return web.json_response({"imported": count, "mode": mode})


@writers()
@json_errors
async def export_cameras(request: web.Request) -> web.StreamResponse:
    """GET /api/cameras/export?format=csv|geojson (streamed; no passwords)."""
    params.check_query_names(request.query, frozenset({"format"}))
    fmt = request.query.get("format", "geojson")
    if fmt not in ("csv", "geojson"):
        raise FieldError("format", f"unknown format {fmt[:20]!r}", "csv, geojson")
    content_type = "text/csv" if fmt == "csv" else "application/geo+json"
    response = web.StreamResponse(headers={
        "Content-Type": f"{content_type}; charset=utf-8",
        "Content-Disposition": f'attachment; filename="cameras.{fmt}"',
    })
    await response.prepare(request)
    store = _store(request)
    urls = shows_urls(request)
    if fmt == "csv":
        await response.write(io.csv_line(io.EXPORT_COLUMNS).encode())
        async for camera in store.iter_cameras():
            await response.write(io.csv_line(io.camera_csv_cells(camera, urls=urls)).encode())
    else:
        await response.write(b'{"type":"FeatureCollection","features":[')
        separator = b""
        async for camera in store.iter_cameras():
            feature = json.dumps(io.camera_feature(camera, urls=urls),
                                 separators=(",", ":")).encode()
            await response.write(separator + feature)
            separator = b","
        await response.write(b"]}")
    await response.write_eof()
    return response


@public()
async def openapi(request: web.Request) -> web.Response:
    """The API description: it lists routes and parameters, never data."""
    return web.json_response(openapi_document(request.app.router.routes()))


def add_routes(app: web.Application, *, serve_openapi: bool = True) -> None:
    """``serve_openapi=False`` when the application serves a description of all its routes."""
    router = app.router
    router.add_get("/api/cameras", list_cameras)
    router.add_post("/api/cameras", create_camera)
    router.add_post("/api/cameras/search", search)
    router.add_post("/api/cameras/import", import_cameras)
    router.add_get("/api/cameras/export", export_cameras)
    router.add_get("/api/cameras/{id}", get_camera)
    router.add_put("/api/cameras/{id}", put_camera)
    router.add_patch("/api/cameras/{id}", patch_camera)
    router.add_delete("/api/cameras/{id}", delete_camera)
    router.add_get("/api/events", events)
    if serve_openapi:
        router.add_get("/api/openapi.json", openapi)
    app.on_shutdown.append(close_feeds)


__all__ = ["add_routes"]
