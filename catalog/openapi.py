"""OpenAPI 3.1 description of the catalog API (served at ``GET /api/openapi.json``).

Each operation's ``x-rtcc-roles`` is read from the policy declared on the handler registered in
the application, so the document cannot disagree with what the server enforces.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp.web_urldispatcher import AbstractRoute

from catalog.geo import MAX_RADIUS_M
from catalog.io import CSV_COLUMNS
from catalog.model import CameraStatus
from catalog.query import MAX_PAGE
from catalog.shapes import MAX_POLYGON_RADIUS_M, MAX_ROUTE_BUFFER_M, MAX_VERTICES
from rtcc import __version__
from rtcc.config import CameraKind, SharingLevel
from rtcc.policy import policy_of

_JSON = "application/json"
_GEOJSON = "application/geo+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, description: str, schema: dict[str, Any],
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}


def _enum_list(values: Iterable[str]) -> dict[str, Any]:
    return {"type": "string", "description": "comma-separated; repeat the parameter to add more",
            "examples": [",".join(list(values)[:2])]}


_FILTERS = [
    _query("sharing", "only these sharing levels", _enum_list(s.value for s in SharingLevel)),
    _query("status", "only these live states", _enum_list(s.value for s in CameraStatus)),
    _query("kind", "only these kinds of place", _enum_list(k.value for k in CameraKind)),
    _query("owner", "only cameras of these owners", {"type": "string"}),
]
_PAGE = [
    _query("limit", f"page size (1..{MAX_PAGE})", {"type": "integer", "minimum": 1,
                                                   "maximum": MAX_PAGE}),
    _query("offset", "skip this many results (near and sees only)",
           {"type": "integer", "minimum": 0}),
]
_ID = {"name": "id", "in": "path", "required": True,
       "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"}}
_ERRORS = {
    "400": {"description": "bad input: the field at fault and what is allowed",
            "content": {_JSON: {"schema": _ref("Error")}}},
    "401": {"description": "not logged in"},
    "403": {"description": "the role may not do this"},
}


def _ok(description: str, schema: str, media: str = _GEOJSON) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": _ref(schema)}}}


def _camera_body() -> dict[str, Any]:
    return {"required": True, "content": {
        _JSON: {"schema": _ref("CameraInput")}, _GEOJSON: {"schema": _ref("Feature")}}}


PATHS: dict[str, dict[str, Any]] = {
    "/api/cameras": {
        "get": {
            "summary": "Cameras near a point, cameras that can see a point, or all cameras",
            "description": "With near: the nearest cameras (distance_m, bearing_deg from the "
                           "point). With sees: cameras whose view cone holds the point "
                           "(sees=true, nearest first), then cameras within radius_m that do "
                           "not (sees=false). Without either: every camera by id, paged with "
                           "after.",
            "parameters": [
                _query("near", "LAT,LON", {"type": "string", "examples": ["39.8017,-89.6438"]}),
                _query("sees", "LAT,LON", {"type": "string"}),
                _query("radius_m", f"with near: farthest distance (default and max "
                       f"{MAX_RADIUS_M:.0f}); with sees: radius for merely-near cameras "
                       "(default 100, 0 for none)",
                       {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RADIUS_M}),
                *_PAGE,
                _query("after", "plain listing: continue after this camera id",
                       {"type": "string"}),
                _query("access", "with near or sees, 1: each camera's properties.access is "
                       "the asker's live-view decision, as GET /api/console/access answers",
                       {"type": "integer", "enum": [0, 1]}),
                *_FILTERS,
            ],
            "responses": {"200": _ok("cameras", "FeatureCollection"), **_ERRORS},
        },
        "post": {
            "summary": "Register a camera",
            "requestBody": _camera_body(),
            "responses": {"201": _ok("registered", "Feature"),
                          "409": {"description": "the id is taken"}, **_ERRORS},
        },
    },
    "/api/cameras/search": {
        "post": {
            "summary": "Cameras inside a polygon or along a route",
            "requestBody": {"required": True, "content": {_JSON: {"schema":
                                                                  _ref("SearchRequest")}}},
            "responses": {"200": _ok("cameras", "FeatureCollection"), **_ERRORS},
        },
    },
    "/api/cameras/import": {
        "post": {
            "summary": "Bulk import (all or nothing) from CSV or GeoJSON",
            "parameters": [_query("mode", "create (refuses taken ids) or upsert",
                                  {"type": "string", "enum": ["create", "upsert"]})],
            "requestBody": {"required": True, "content": {
                "text/csv": {"schema": {"type": "string", "description": "header row of "
                                        + ", ".join(CSV_COLUMNS)}},
                _GEOJSON: {"schema": _ref("FeatureCollection")}}},
            "responses": {
                "200": {"description": "imported", "content": {_JSON: {"schema": {
                    "type": "object", "properties": {"imported": {"type": "integer"},
                                                     "mode": {"type": "string"}}}}}},
                "409": _ok("ids already registered (per-row report)", "ImportReport", _JSON),
                "415": {"description": "not CSV or GeoJSON"},
                **_ERRORS,
                "400": _ok("bad rows (per-row report) or a bad file", "ImportReport", _JSON),
            },
        },
    },
    "/api/cameras/export": {
        "get": {
            "summary": "Every camera as CSV or GeoJSON (never passwords)",
            "parameters": [_query("format", "csv or geojson (default)",
                                  {"type": "string", "enum": ["csv", "geojson"]})],
            "responses": {"200": {"description": "the file", "content": {
                "text/csv": {"schema": {"type": "string"}},
                _GEOJSON: {"schema": _ref("FeatureCollection")}}}, **_ERRORS},
        },
    },
    "/api/cameras/{id}": {
        "parameters": [_ID],
        "get": {"summary": "One camera", "responses": {
            "200": _ok("the camera", "Feature"), "404": {"description": "no such camera"},
            **_ERRORS}},
        "put": {"summary": "Register or replace a camera (a password left out is kept)",
                "requestBody": _camera_body(),
                "responses": {"200": _ok("replaced", "Feature"),
                              "201": _ok("registered", "Feature"), **_ERRORS}},
        "patch": {"summary": "Change some fields of a camera",
                  "requestBody": _camera_body(),
                  "responses": {"200": _ok("changed", "Feature"),
                                "404": {"description": "no such camera"}, **_ERRORS}},
        "delete": {"summary": "Remove a camera (ends its live sessions)", "responses": {
            "204": {"description": "removed"}, "404": {"description": "no such camera"},
            **_ERRORS}},
    },
    "/api/events": {
        "get": {
            "summary": "Server-Sent Events: camera status and catalog changes",
            "parameters": [
                _query("types", "only these event types (camera.status, camera.created, "
                       "camera.updated, camera.deleted, catalog.imported)", {"type": "string"}),
                _query("cameras", "only events about these camera ids", {"type": "string"}),
            ],
            "responses": {"200": {"description": "an endless text/event-stream; each data "
                                                 "line is one JSON event with a type",
                                  "content": {"text/event-stream": {"schema":
                                                                    {"type": "string"}}}},
                          **_ERRORS},
        },
    },
    "/api/openapi.json": {
        "get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI"}}},
    },
}

_PROFILE = {"type": "object", "additionalProperties": False, "required": ["url"], "properties": {
    "url": {"type": "string", "pattern": "^rtsps?://", "maxLength": 2048,
            "description": "no credentials (user name and password have their own fields, "
                           "neither in the authority nor in the query string); returned to "
                           "administrators only, other roles see the profile and transport"},
    "username": {"type": "string", "maxLength": 128,
                 "description": "returned to administrators only"},
    "password": {"type": "string", "writeOnly": True, "maxLength": 256,
                 "description": "stored encrypted; never returned; left out keeps the stored "
                                "one; empty removes it"},
    "has_password": {"type": "boolean", "readOnly": True},
    "transport": {"type": "string", "enum": ["tcp", "udp"]},
}}
_CAMERA_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "lat": {"type": "number", "minimum": -90, "maximum": 90},
    "lon": {"type": "number", "minimum": -180, "maximum": 180},
    "owner_id": {"type": "string"}, "site_id": {"type": "string"},
    "heading": {"type": "number", "minimum": 0, "maximum": 360},
    "fov": {"type": "number", "minimum": 1, "maximum": 360},
    "range_m": {"type": "number", "exclusiveMinimum": 0, "maximum": 5000},
    "kind": {"type": "string", "enum": [k.value for k in CameraKind]},
    "sharing": {"type": "string", "enum": [s.value for s in SharingLevel]},
    "windows": {"type": "array", "maxItems": 50, "items": {"type": "object", "properties": {
        "days": {"type": "array", "items": {"type": "string", "enum": [
            "mon", "tue", "wed", "thu", "fri", "sat", "sun"]}},
        "start": {"type": "string", "pattern": "^\\d\\d:\\d\\d$"},
        "end": {"type": "string", "pattern": "^\\d\\d:\\d\\d$"}}}},
    "timezone": {"type": "string", "description": "IANA time zone of the windows"},
    "ptz_allowed": {"type": "boolean"}, "preload": {"type": "boolean"},
    "record": {"type": "boolean"}, "via_agent": {"type": "boolean"},
    "profiles": {"type": "object", "properties": {"main": _PROFILE, "sub": _PROFILE}},
    "status": {"type": "string", "readOnly": True, "enum": [s.value for s in CameraStatus]},
    "last_frame_time": {"type": ["number", "null"], "readOnly": True},
    "distance_m": {"type": "number", "readOnly": True},
    "bearing_deg": {"type": "number", "readOnly": True,
                    "description": "from the query point to the camera"},
    "sees": {"type": "boolean", "readOnly": True},
    "along_m": {"type": "number", "readOnly": True},
}
SCHEMAS: dict[str, Any] = {
    "CameraInput": {"type": "object", "required": ["id", "name", "lat", "lon"],
                    "properties": _CAMERA_PROPERTIES},
    "Feature": {"type": "object", "required": ["type", "geometry", "properties"], "properties": {
        "type": {"const": "Feature"}, "id": {"type": "string"},
        "geometry": {"type": "object", "properties": {
            "type": {"const": "Point"},
            "coordinates": {"type": "array", "items": {"type": "number"}, "minItems": 2,
                            "maxItems": 2, "description": "[longitude, latitude]"}}},
        "properties": {"type": "object", "properties": _CAMERA_PROPERTIES}}},
    "FeatureCollection": {"type": "object", "properties": {
        "type": {"const": "FeatureCollection"},
        "features": {"type": "array", "items": _ref("Feature")},
        "total": {"type": ["integer", "null"]}, "offset": {"type": "integer"},
        "limit": {"type": "integer"}, "next": {"type": ["string", "null"]}}},
    "SearchRequest": {"type": "object", "additionalProperties": False, "properties": {
        "polygon": {"description": f"GeoJSON Polygon, at most {MAX_VERTICES} positions, no "
                                   f"self-intersection, within {MAX_POLYGON_RADIUS_M:.0f} m",
                    "type": "object"},
        "route": {"description": f"GeoJSON LineString, at most {MAX_VERTICES} positions",
                  "type": "object"},
        "buffer_m": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_ROUTE_BUFFER_M},
        "filters": {"type": "object", "properties": {
            name: {"type": "array", "items": {"type": "string"}}
            for name in ("sharing", "status", "kind", "owner")}},
        "offset": {"type": "integer", "minimum": 0},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}}},
    "Error": {"type": "object", "required": ["error", "field", "allowed"], "properties": {
        "error": {"type": "string"}, "field": {"type": "string"},
        "allowed": {"type": "string"}}},
    "ImportReport": {"allOf": [_ref("Error"), {"type": "object", "properties": {"rows": {
        "type": "array", "items": {"type": "object", "properties": {
            "row": {"type": "integer", "description": "1 = the first row after the header"},
            "field": {"type": "string"}, "reason": {"type": "string"},
            "allowed": {"type": "string"}}}}}}]},
}


def openapi_document(routes: Iterable[AbstractRoute] = ()) -> dict[str, Any]:
    """The description; given the application's routes, each operation names its roles."""
    paths: dict[str, dict[str, Any]] = {p: {m: (dict(op) if isinstance(op, dict) else op)
                                            for m, op in item.items()}
                                        for p, item in PATHS.items()}
    for route in routes:
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        operation = paths.get(str(path), {}).get(route.method.lower())
        policy = policy_of(route.handler)
        if isinstance(operation, dict) and policy is not None:
            operation["x-rtcc-roles"] = ["public"] if policy.public else sorted(
                str(role) for role in policy.roles)
    return {
        "openapi": "3.1.0",
        "info": {"title": "RTCC catalog API", "version": __version__,
                 "description": "Cameras, consent and geographic search. Errors are "
                                "{error, field, allowed}."},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
