"""OpenAPI 3.1 description of every HTTP route, generated from the application's router.

Each operation's security requirement and ``x-rtcc-roles`` come from the policy declared on its
handler (``rtcc.policy``), its summary from the handler's docstring, so the document cannot
disagree with what the server routes and enforces. The catalog's hand-written operations (query
parameters, GeoJSON schemas) are merged in; a few other operations carry small schema
declarations below. Served at ``/api/openapi.json``, browsable at ``/api/docs``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator
from importlib import resources
from typing import Any

from aiohttp import web

from catalog.openapi import PATHS as CATALOG_PATHS
from catalog.openapi import SCHEMAS as CATALOG_SCHEMAS
from rtcc import __version__
from rtcc.policy import Policy, policy_of, public

_JSON = "application/json"
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"sessionCookie": []}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {_JSON: {"schema": schema}}}


def _json_ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


SCHEMAS: dict[str, Any] = {
    "Login": {"type": "object", "required": ["username", "password"], "properties": {
        "username": {"type": "string", "maxLength": 256},
        "password": {"type": "string", "writeOnly": True},
        "totp": {"type": "string", "description": "the one-time code, when the account has one"},
    }},
    "User": {"type": "object", "properties": {
        "id": {"type": "integer"}, "username": {"type": "string"}, "role": {"type": "string"},
        "csrf_token": {"type": "string", "description": "send as X-CSRF-Token with a session "
                                                        "cookie on unsafe methods"},
    }},
    "TokenRequest": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 100},
        "expires_days": {"type": "number", "exclusiveMinimum": 0, "maximum": 3650},
    }},
    "Token": {"type": "object", "required": ["id", "token"], "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"},
        "token": {"type": "string", "description": "shown only once; send as "
                                                   "Authorization: Bearer"},
        "expires": {"type": ["number", "null"]},
    }},
    "SimpleError": {"type": "object", "required": ["error"],
                    "properties": {"error": {"type": "string"}}},
}

# Declarations for operations outside the catalog, keyed by (method, path template).
_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/login"): {
        "requestBody": _json_body(_ref("Login")),
        "responses": {"200": _json_ok("logged in; the session cookie is set", _ref("User")),
                      "401": _json_ok("wrong user name, password or code", _ref("SimpleError")),
                      "429": _json_ok("too many attempts", _ref("SimpleError"))}},
    ("POST", "/api/tokens"): {
        "requestBody": _json_body(_ref("TokenRequest")),
        "responses": {"201": _json_ok("the new API token", _ref("Token"))}},
    ("POST", "/whep/{camera_id}"): {
        "parameters": [
            {"name": "profile", "in": "query", "schema": {"type": "string",
                                                          "enum": ["main", "sub"]}},
            {"name": "purpose", "in": "query", "schema": {"type": "string"},
             "description": "why the camera is viewed (audited)"},
            {"name": "incident", "in": "query", "schema": {"type": "string", "maxLength": 64},
             "description": "the incident the view belongs to"},
        ],
        "requestBody": {"required": True, "content": {
            "application/sdp": {"schema": {"type": "string", "description": "the SDP offer"}}}},
        "responses": {
            "201": {"description": "the SDP answer; Location names the session resource",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": {"application/sdp": {"schema": {"type": "string"}}}},
            "403": {"description": "no grant allows this view"},
            "415": {"description": "the offer has no H.264"},
            "429": {"description": "the account holds its share of live views"},
            "503": {"description": "the relay is at its viewer limit"}}},
}


# Summaries for handlers without a docstring.
_SUMMARIES: dict[str, str] = {
    "GET /api/health": "Health: version, stream states, database reachability",
    "GET /api/streams": "Statistics of every stream in the hub",
    "GET /metrics": "Prometheus metrics of every subsystem",
    "POST /api/login": "Log in (JSON or form); sets the session cookie",
    "POST /login": "The login page's form",
    "GET /login": "The login page",
    "POST /api/logout": "Log out and end the session's open views",
    "GET /api/me": "The logged-in account",
    "POST /api/tokens": "Create an API token for the logged-in account",
    "GET /api/tokens": "The logged-in account's API tokens",
    "DELETE /api/tokens/{token_id}": "Revoke an API token",
    "POST /api/users": "Create an account",
    "GET /api/users": "Every account",
    "POST /api/users/{user_id}/unlock": "Unlock an account locked after failed logins",
    "POST /api/users/{user_id}/disable": "Disable an account",
    "POST /api/users/{user_id}/enable": "Enable an account",
    "GET /api/audit": "The audit log (hash-chained)",
    "POST /api/incidents": "Open an incident",
    "GET /api/incidents": "Incidents",
    "GET /api/incidents/{incident_id}": "One incident",
    "POST /api/incidents/{incident_id}/cameras": "Link cameras to an incident (asks for grants)",
    "POST /api/incidents/{incident_id}/close": "Close an incident; its grants end",
    "GET /api/incidents/{incident_id}/grants": "The grants of an incident",
    "GET /api/owner/cameras/{camera_id}/grants": "Grants on an owner's camera",
    "POST /api/owner/cameras/{camera_id}/grants/{grant_id}/revoke": "Revoke a grant",
    "POST /api/owner/signup": "Sign up as a camera owner",
    "POST /whep/{camera_id}": "Open a live view (WHEP): SDP offer in, SDP answer out",
    "OPTIONS /whep/{camera_id}": "WHEP preflight",
    "DELETE /whep/{camera_id}/{session_id}": "Close a live view",
    "PATCH /whep/{camera_id}/{session_id}": "Trickle ICE candidates to a live view",
    "OPTIONS /whep/{camera_id}/{session_id}": "WHEP preflight",
    "POST /whip/{camera_id}": "An agent publishes a camera (WHIP)",
    "DELETE /whip/{camera_id}/{session_id}": "An agent stops publishing",
    "PATCH /whip/{camera_id}/{session_id}": "Trickle ICE candidates to a publication",
    "GET /api/relay/sessions": "Live views open on the relay",
    "GET /play/{camera_id}": "A page that plays one camera",
    "POST /api/agent/enroll": "An agent enrolls with a one-time code",
    "POST /api/agent/enrollments": "Create an enrollment code for an agent",
    "GET /api/agent/ws": "The agent's control WebSocket",
    "GET /api/agents": "Enrolled agents",
    "POST /api/agents/{agent_id}/revoke": "Revoke an agent",
    "POST /api/exports": "Export recorded footage as a signed evidence package",
    "GET /api/exports": "Evidence exports",
    "GET /api/exports/{export_id}/download": "Download an evidence export",
    "GET /api/evidence/public-key": "The key that verifies evidence signatures",
    "POST /api/footage-requests": "Ask owners for recorded footage",
    "GET /api/footage-requests": "Footage requests",
    "GET /api/footage-requests/{request_id}": "One footage request",
    "POST /api/footage-requests/{request_id}/approve": "The owner approves a footage request",
    "POST /api/footage-requests/{request_id}/decline": "The owner declines a footage request",
    "POST /api/holds": "Place a legal hold on recordings",
    "GET /api/holds": "Legal holds",
    "POST /api/holds/{hold_id}/release": "Release a legal hold",
    "GET /api/recordings": "Recorded segments",
    "GET /api/recordings/status": "Recording state per camera",
    "GET /api/tips": "The tip queue",
    "GET /api/tips/{tip_id}": "One tip (audited)",
    "PATCH /api/tips/{tip_id}": "Change a tip's status",
    "POST /api/tips/{tip_id}/incident": "Link a tip to an incident",
    "POST /api/tips/{tip_id}/messages": "Reply to a tipster",
    "POST /tips/api/tips": "Send an anonymous tip",
}


def _template(resource: web.AbstractResource) -> str:
    info = resource.get_info()
    if "prefix" in info:  # static files
        return f"{str(info['prefix']).rstrip('/')}/{{filename}}"
    return _PARAM.sub(r"{\1}", str(info.get("path") or info.get("formatter")))


def iter_operations(app: web.Application) -> Iterator[tuple[str, str, web.AbstractRoute]]:
    """(method, path template, route) for every route, sub-applications included; HEAD is left
    out (aiohttp adds it beside GET with the same handler)."""
    for resource in app.router.resources():
        sub_app = getattr(resource, "_app", None)
        if isinstance(sub_app, web.Application):
            yield from iter_operations(sub_app)
            continue
        for route in resource:
            if route.method != "HEAD":
                yield route.method, _template(resource), route


def _summary(route: web.AbstractRoute, method: str, path: str) -> tuple[str, str]:
    handler: object = route.handler
    if inspect.ismethod(handler) and isinstance(route.resource, web.StaticResource):
        return "Static files", ""
    doc = inspect.getdoc(handler) or ""
    first, _, rest = doc.partition("\n\n")
    summary = _SUMMARIES.get(f"{method} {path}") or " ".join(first.split()) or f"{method} {path}"
    return summary, rest.strip()


def _security(policy: Policy | None) -> dict[str, Any]:
    if policy is None:
        return {"x-rtcc-roles": []}  # refused by the security middleware
    if policy.public:
        return {"security": [], "x-rtcc-roles": ["public"],
                **({"x-rtcc-anonymous": True} if policy.anonymous else {})}
    return {"security": _SECURITY, "x-rtcc-roles": sorted(str(r) for r in policy.roles)}


def _operation(method: str, path: str, route: web.AbstractRoute) -> dict[str, Any]:
    catalog = CATALOG_PATHS.get(path, {}).get(method.lower())
    if isinstance(catalog, dict) and path != "/api/openapi.json":
        operation: dict[str, Any] = dict(catalog)
    else:
        summary, description = _summary(route, method, path)
        operation = {"summary": summary}
        if description:
            operation["description"] = description
        operation.update(_OPERATIONS.get((method, path), {}))
    operation.setdefault("responses", {"default": {"description": "see the summary"}})
    names = _PARAM.findall(path)
    declared = {p.get("name") for p in operation.get("parameters", []) if isinstance(p, dict)}
    shared = {p.get("name") for p in CATALOG_PATHS.get(path, {}).get("parameters", [])}
    extra = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
             for name in names if name not in declared and name not in shared]
    if extra:
        operation["parameters"] = [*operation.get("parameters", []), *extra]
    segments = [s for s in path.split("/") if s and s != "api" and not s.startswith("{")]
    operation["tags"] = [segments[0] if segments else "root"]
    operation.update(_security(policy_of(route.handler)))
    return operation


def openapi_document(app: web.Application) -> dict[str, Any]:
    """The description of every route of ``app``."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, route in iter_operations(app):
        item = paths.setdefault(path, {})
        if "parameters" in CATALOG_PATHS.get(path, {}):
            item["parameters"] = CATALOG_PATHS[path]["parameters"]
        item[method.lower()] = _operation(method, path, route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "RTCC API", "version": __version__,
                 "description": "Every route of the server. Log in with POST /api/login "
                                "(session cookie) or send an API token as "
                                "Authorization: Bearer. x-rtcc-roles lists the roles each "
                                "operation admits."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**CATALOG_SCHEMAS, **SCHEMAS},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "an API token from POST /api/tokens"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "rtcc_session",
                                  "description": "set by POST /api/login"},
            },
        },
    }


@public()
async def openapi(request: web.Request) -> web.Response:
    """This description: it lists routes and parameters, never data."""
    return web.json_response(openapi_document(request.app))


_Handler = Callable[[web.Request], Awaitable[web.Response]]


def _page(name: str, content_type: str, summary: str) -> _Handler:
    # Read once while the application is built, not on the event loop per request.
    text = resources.files("server").joinpath("static", name).read_text(encoding="utf-8")

    async def handler(request: web.Request) -> web.Response:  # noqa: ARG001 -- aiohttp handler
        return web.Response(text=text, content_type=content_type, charset="utf-8")

    handler.__doc__ = summary
    return public()(handler)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/api/docs", _page(
        "api_docs.html", "text/html", "A browsable list of the operations in /api/openapi.json"))
    app.router.add_get("/api/docs.js", _page(
        "api_docs.js", "text/javascript", "The script of the browsable API page"))


__all__ = ["add_routes", "iter_operations", "openapi_document"]
