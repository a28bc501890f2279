"""HTTP routes for agents: enrollment, the control WebSocket, the owner's view of agents,
revocation, and snapshots and PTZ of agent cameras.

``POST /api/agent/enrollments``   owner (own owner_id) or admin: a one-time enrollment token
``POST /api/agent/enroll``        the agent trades the token for its credential (shown once)
``GET  /api/agent/ws``            the agent's control WebSocket (bearer credential)
``GET  /api/agents``              owner: their agents and cameras; admin: all
``POST /api/agents/{id}/revoke``  owner or admin: revoke now (sessions end)
``GET  /api/agent-cameras/{camera_id}/snapshot``  a JPEG through the agent (consent checked)
``POST /api/agent-cameras/{camera_id}/ptz``       move, stop or preset (only where PTZ is allowed)
``GET  /api/agent-cameras/{camera_id}/ptz/presets``  the camera's presets, through the agent
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from ingest.agentlink.registry import AgentCommandError, AgentConnection, AgentOffline
from ingest.agentlink.service import (
    AGENT_SERVICE,
    DEFAULT_ENROLLMENT_MINUTES,
    MAX_ENROLLMENT_MINUTES,
    AgentService,
    EnrollmentRefused,
)
from ingest.agentlink.store import AgentCamera
from rtcc import agent_protocol as proto
from rtcc.appkeys import CAMERA_DIRECTORY, MEDIA_ACCESS
from rtcc.errors import AuditWriteError
from rtcc.http import json_error, read_body
from rtcc.policy import STAFF_ROLES, Role, allow, public
from rtcc.principal import actor_of, client_address, require_principal

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
VIEWERS = (Role.ADMIN, Role.SUPERVISOR, Role.ANALYST, Role.INVESTIGATOR, Role.OWNER)
PTZ_ROLES = (Role.ADMIN, Role.SUPERVISOR, Role.ANALYST, Role.OWNER)


def _service(request: web.Request) -> AgentService:
    service = request.config_dict.get(AGENT_SERVICE)
    if service is None:
        raise web.HTTPServiceUnavailable(text='{"error": "agent support is not running"}',
                                         content_type="application/json")
    return service


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    body = await read_body(request, MAX_BODY)
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "the body is not valid JSON"}',
                                 content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "the body must be a JSON object"}',
                                 content_type="application/json")
    return data


# -- enrollment -------------------------------------------------------------------------------


@allow(Role.OWNER, Role.ADMIN)
async def create_enrollment(request: web.Request) -> web.Response:
    service = _service(request)
    principal = require_principal(request)
    body = await _json_body(request)
    if principal.role == Role.OWNER:
        owner_id = principal.owner_id or ""
        if body.get("owner_id") not in (None, "", owner_id):
            return json_error(403, "an owner can only enroll agents for their own cameras")
    else:
        raw_owner = body.get("owner_id")
        owner_id = raw_owner if isinstance(raw_owner, str) else ""
        if not owner_id:
            return json_error(400, "owner_id is required: whose cameras will this agent serve?")
    minutes = body.get("expires_minutes", DEFAULT_ENROLLMENT_MINUTES)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not (
        1 <= minutes <= MAX_ENROLLMENT_MINUTES
    ):
        return json_error(400, f"expires_minutes must be between 1 and {MAX_ENROLLMENT_MINUTES}")
    try:
        enrollment, token = await service.create_enrollment(owner_id[:64], actor_of(request),
                                                            float(minutes))
    except AuditWriteError:
        return json_error(503, "the audit log cannot be written; no token was issued")
    return web.json_response(
        {"id": enrollment.id, "token": token, "owner_id": owner_id,
         "expires": enrollment.expires,
         "command": f"rtcc agent --server URL --enroll {token}",
         "note": "the token is shown only now and works once"},
        status=201,
    )


@public()
async def enroll(request: web.Request) -> web.Response:
    service = _service(request)
    body = await _json_body(request)
    token = body.get("token")
    if not isinstance(token, str) or not token or len(token) > 200:
        return json_error(400, "send {\"token\": \"<enrollment token>\"}")
    raw_name = body.get("name")
    name = raw_name if isinstance(raw_name, str) else ""
    try:
        result = await service.enroll(token, name, client_address(request))
    except EnrollmentRefused as exc:
        return json_error(exc.status, str(exc))
    agent = result.agent
    return web.json_response(
        {"agent_id": agent.id, "owner_id": agent.owner_id, "credential": result.credential,
         "note": "keep the credential secret: it is shown only now"},
        status=201,
    )


# -- the control WebSocket --------------------------------------------------------------------


@allow(Role.AGENT)
async def control_socket(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    agent = await service.agent_of(require_principal(request))
    if agent is None:
        return json_error(403, "this credential belongs to no enrolled agent (or it was revoked)")
    ws = web.WebSocketResponse(heartbeat=proto.HEARTBEAT_SECONDS * 2,
                               max_msg_size=proto.MAX_MESSAGE_BYTES)
    if not ws.can_prepare(request).ok:
        return json_error(400, "this endpoint needs a WebSocket upgrade")
    await ws.prepare(request)
    connection = AgentConnection(agent.id, agent.owner_id, ws, client_address(request))
    await service.connected(connection)
    try:
        await connection.send("welcome", agent_id=agent.id, owner_id=agent.owner_id,
                              version=proto.VERSION, heartbeat=proto.HEARTBEAT_SECONDS)
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                if message.type == WSMsgType.BINARY:
                    await ws.close(code=1003, message=b"text messages only")
                break
            try:
                data = proto.decode(message.data)
                await _handle(service, connection, data)
            except proto.ProtocolError as exc:
                log.warning("agent %s: %s", agent.id, exc)
                await connection.send("error", error=str(exc))
    except AgentOffline:
        pass
    finally:
        await service.disconnected(connection)
    return ws


async def _handle(service: AgentService, connection: AgentConnection,
                  data: dict[str, Any]) -> None:
    service.heard_from(connection, data)
    kind = data["type"]
    if kind == "result":
        connection.resolve(data)
    elif kind == "heartbeat":
        stats = data.get("stats")
        if isinstance(stats, dict):
            connection.stats = {k: v for k, v in list(stats.items())[:20]
                                if isinstance(k, str) and isinstance(v, int | float | str)}
    elif kind == "inventory":
        agent = await service.store.agent(connection.agent_id)
        if agent is None or agent.revoked is not None:
            return
        cameras, refused = await service.inventory(agent, data)
        await connection.send("inventory_ack", cameras=[
            {"key": c.report.key, "camera_id": c.camera_id} for c in cameras
        ], refused=refused)
        if refused:
            await connection.send("error", error=f"{len(refused)} camera(s) not registered: "
                                  f"{refused[0]['reason']}")
    elif kind == "event":
        log.info("agent %s: %s", connection.agent_id, proto.text_field(data, "message", limit=300))
    elif kind != "hello":
        raise proto.ProtocolError(f"unknown message type {kind[:40]!r}")


# -- owners and administrators ----------------------------------------------------------------


@allow(Role.OWNER, Role.ADMIN)
async def list_agents(request: web.Request) -> web.Response:
    service = _service(request)
    principal = require_principal(request)
    owner = None if principal.role == Role.ADMIN else (principal.owner_id or "")
    agents = [await service.describe(agent) for agent in await service.store.agents(owner)]
    return web.json_response({"agents": agents})


@allow(Role.OWNER, Role.ADMIN)
async def revoke_agent(request: web.Request) -> web.Response:
    service = _service(request)
    principal = require_principal(request)
    agent = await service.store.agent(request.match_info["agent_id"])
    if agent is None or not service.may_manage(principal, agent):
        return json_error(404, "no such agent")
    if agent.revoked is not None:
        return web.json_response({"ok": True, "already_revoked": agent.revoked, "ended": 0})
    try:
        ended = await service.revoke(agent, actor_of(request))
    except AuditWriteError:
        return json_error(503, "the audit log cannot be written; the agent was not revoked")
    return web.json_response({"ok": True, "agent_id": agent.id, "ended": ended})


# -- agent cameras ----------------------------------------------------------------------------


async def _camera(request: web.Request, service: AgentService) -> AgentCamera:
    camera = await service.store.camera(request.match_info["camera_id"])
    agent = await service.store.agent(camera.agent_id) if camera is not None else None
    if camera is None or agent is None or agent.revoked is not None:
        raise web.HTTPNotFound(text='{"error": "no such agent camera"}',
                               content_type="application/json")
    return camera


def _own_camera(request: web.Request, camera: AgentCamera) -> bool:
    principal = require_principal(request)
    return principal.role == Role.OWNER and principal.owner_id == camera.owner_id


def _command_error(exc: Exception) -> web.Response:
    if isinstance(exc, AgentOffline):
        return json_error(503, str(exc))
    return json_error(502, str(exc))


@allow(*VIEWERS)
async def snapshot(request: web.Request) -> web.Response:
    service = _service(request)
    camera = await _camera(request, service)
    profile = request.query.get("profile", "main")
    if profile not in proto.PROFILES:
        return json_error(400, "profile must be 'main' or 'sub'")
    principal = require_principal(request)
    grant = None
    access = None
    if _own_camera(request, camera):
        await service.audit.append(actor=principal.username, role=str(principal.role),
                                  action="snapshot", camera_id=camera.camera_id,
                                  owner_id=camera.owner_id, source=client_address(request))
    elif principal.role in STAFF_ROLES:
        access = request.config_dict.get(MEDIA_ACCESS)
        if access is None:
            return json_error(503, "the access check is not available")
        grant = await access.open_view(request, camera.camera_id, profile)
    else:
        return json_error(404, "no such agent camera")
    try:
        data = await service.registry.send_command(camera.agent_id, "snapshot", within=20.0,
                                                   key=camera.report.key, profile=profile)
        image = base64.b64decode(str(data.get("jpeg", "")), validate=True)
    except (AgentOffline, AgentCommandError) as exc:
        return _command_error(exc)
    except (binascii.Error, ValueError):
        return json_error(502, "the agent sent a snapshot that is not Base64")
    finally:
        if grant is not None and access is not None:
            await access.close_view(grant, "snapshot sent")
    if not image.startswith(b"\xff\xd8") or len(image) > proto.MAX_SNAPSHOT_BYTES:
        return json_error(502, "the agent's snapshot is not a JPEG image of acceptable size")
    return web.Response(body=image, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})


async def _refuse_ptz(request: web.Request, camera: AgentCamera) -> web.Response | None:
    """None when this user may move the camera now, else the refusal."""
    principal = require_principal(request)
    if not _own_camera(request, camera):
        if principal.role not in STAFF_ROLES:
            return json_error(404, "no such agent camera")
        directory = request.config_dict.get(CAMERA_DIRECTORY)
        consent = await directory.consent_of(camera.camera_id) if directory else None
        if consent is None or not consent.ptz_allowed:
            return json_error(403, "the owner does not allow PTZ control of this camera")
        # Moving a camera is using it: the same consent as a live view (sharing level, windows,
        # incident, purpose), and the same audit trail.
        access = request.config_dict.get(MEDIA_ACCESS)
        if access is None:
            return json_error(503, "the access check is not available")
        grant = await access.open_view(request, camera.camera_id, "main")
        await access.close_view(grant, "ptz command")
    if not camera.report.ptz:
        return json_error(409, "this camera has no PTZ")
    return None


@allow(*PTZ_ROLES)
async def ptz_presets(request: web.Request) -> web.Response:
    service = _service(request)
    camera = await _camera(request, service)
    refused = await _refuse_ptz(request, camera)
    if refused is not None:
        return refused
    try:
        reply = await service.registry.send_command(camera.agent_id, "ptz", within=10.0,
                                                    key=camera.report.key, ptz_allowed=True,
                                                    presets=True)
    except (AgentOffline, AgentCommandError) as exc:
        return _command_error(exc)
    if "presets" not in reply:
        return json_error(502, "this agent does not list presets; update the owner's agent")
    try:
        return web.json_response({"presets": proto.presets_field(reply["presets"])})
    except proto.ProtocolError as exc:
        return json_error(502, f"the agent's presets are malformed: {exc}")


@allow(*PTZ_ROLES)
async def ptz(request: web.Request) -> web.Response:
    service = _service(request)
    camera = await _camera(request, service)
    principal = require_principal(request)
    refused = await _refuse_ptz(request, camera)
    if refused is not None:
        return refused
    body = await _json_body(request)
    action = body.get("action", "move")
    try:
        if action == "move":
            params: dict[str, Any] = {
                "move": {axis: proto.number_field(body, axis, low=-1, high=1)
                         for axis in ("pan", "tilt", "zoom")},
            }
            params["move"]["timeout"] = proto.number_field(body, "timeout", low=0.1, high=60,
                                                           default=1.0)
        elif action == "stop":
            params = {"stop": True}
        elif action == "preset":
            params = {"goto_preset": proto.preset_token(body.get("preset"))}
        else:
            return json_error(400, "action must be 'move', 'stop' or 'preset'")
    except proto.ProtocolError as exc:
        return json_error(400, str(exc))
    await service.audit.append(actor=principal.username, role=str(principal.role),
                              action=f"ptz.{action}", camera_id=camera.camera_id,
                              owner_id=camera.owner_id, source=client_address(request),
                              details={k: v for k, v in body.items()
                                       if k in ("pan", "tilt", "zoom", "timeout", "preset")})
    try:
        reply = await service.registry.send_command(camera.agent_id, "ptz", within=10.0,
                                                    key=camera.report.key, ptz_allowed=True,
                                                    **params)
    except (AgentOffline, AgentCommandError) as exc:
        return _command_error(exc)
    if action == "preset" and "preset" not in reply:
        return json_error(502, "this agent cannot recall presets; update the owner's agent")
    return web.json_response({"ok": True, "action": action})


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post("/api/agent/enrollments", create_enrollment)
    router.add_post("/api/agent/enroll", enroll)
    router.add_get("/api/agent/ws", control_socket)
    router.add_get("/api/agents", list_agents)
    router.add_post("/api/agents/{agent_id}/revoke", revoke_agent)
    router.add_get("/api/agent-cameras/{camera_id}/snapshot", snapshot)
    router.add_post("/api/agent-cameras/{camera_id}/ptz", ptz)
    router.add_get("/api/agent-cameras/{camera_id}/ptz/presets", ptz_presets)
