"""Pan, tilt, zoom and presets of cameras the server pulls directly, over their ONVIF services
(``cameras[].onvif`` in the configuration). Agent cameras are moved through their agent
(``/api/agent-cameras/{camera_id}/ptz``).

``GET  /api/cameras/{camera_id}/ptz/presets?purpose=...&incident=...``
    ``{"presets": [{"token", "name"}]}``: the camera's presets.
``POST /api/cameras/{camera_id}/ptz?purpose=...&incident=...``
    body ``{"action": "move", "pan", "tilt", "zoom", "timeout"}`` (velocities -1..1, seconds),
    ``{"action": "stop"}`` or ``{"action": "preset", "preset": TOKEN}``.

Only where the owner allows PTZ (the camera's consent) and only while the analyst may view the
camera: every call opens and closes a view grant (the same consent check and audit as a live
view), and every move, stop and preset recall is written to the audit log before the camera is
told. The ONVIF address is checked like a stream address (private hosts only when allowlisted),
and the service addresses the camera announces are never followed to another host
(``ingest.onvif.addresses``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ingest.onvif.addresses import AddressRules
from ingest.onvif.client import OnvifClient
from ingest.onvif.models import OnvifError, PtzPreset
from rtcc.access import ViewGrant
from rtcc.appkeys import AUDIT, CAMERA_DIRECTORY, MEDIA_ACCESS, SETTINGS
from rtcc.camera_url import check_camera_url
from rtcc.config import CameraConfig, OnvifControlConfig
from rtcc.errors import AuditWriteError, UnsafeUrl
from rtcc.http import error, read_json, required
from rtcc.policy import Role, allow
from rtcc.principal import actor_of

log = logging.getLogger(__name__)

PTZ_ROLES = (Role.ADMIN, Role.SUPERVISOR, Role.ANALYST)
MAX_PRESET_TOKEN = 64


class OnvifControls:
    """One connected ONVIF client per camera, opened on first use and kept while it answers
    (connecting reads the camera's service addresses, too slow to repeat for each click)."""

    def __init__(self, allow_networks: list[str]) -> None:
        self._allow = allow_networks
        self._clients: dict[str, tuple[OnvifClient, str]] = {}
        self._lock = asyncio.Lock()

    async def client(self, camera_id: str, onvif: OnvifControlConfig) -> tuple[OnvifClient, str]:
        """The camera's client and the profile token PTZ commands name."""
        async with self._lock:
            known = self._clients.get(camera_id)
            if known is not None:
                return known
            checked = await check_camera_url(onvif.url, purpose="onvif",
                                              allow_networks=self._allow)
            client = OnvifClient(checked.address or checked.host, checked.port, onvif.username,
                                 onvif.password.get_secret_value(),
                                 rules=AddressRules(tuple(self._allow)))
            await client.connect()
            try:
                token = onvif.profile or (await client.profiles())[0].token
            except (OnvifError, IndexError):
                await client.aclose()
                raise OnvifError(f"ONVIF camera {client.where} has no media profile to move; "
                                 "set cameras[].onvif.profile") from None
            self._clients[camera_id] = (client, token)
            return client, token

    async def forget(self, camera_id: str) -> None:
        """Drop a client that failed: the next command connects again."""
        async with self._lock:
            known = self._clients.pop(camera_id, None)
        if known is not None:
            await known[0].aclose()

    async def aclose(self) -> None:
        async with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client, _ in clients:
            await client.aclose()


ONVIF_CONTROLS = web.AppKey("onvif_controls", OnvifControls)


async def controls_context(app: web.Application) -> AsyncIterator[None]:
    controls = OnvifControls(app[SETTINGS].security.allow_private_camera_hosts)
    app[ONVIF_CONTROLS] = controls
    try:
        yield
    finally:
        await controls.aclose()


def _configured(request: web.Request, camera_id: str) -> CameraConfig:
    for camera in request.config_dict[SETTINGS].cameras:
        if camera.id == camera_id:
            if camera.onvif is None:
                break
            return camera
    raise error(409, f"camera {camera_id} has no ONVIF control configured "
                     "(cameras[].onvif); no PTZ from the console")


async def _grant(request: web.Request, camera_id: str) -> ViewGrant:
    directory = required(request, CAMERA_DIRECTORY, "the camera catalog")
    consent = await directory.consent_of(camera_id)
    if consent is None:
        raise error(404, f"no camera {camera_id}")
    if not consent.ptz_allowed:
        raise error(403, "the owner does not allow PTZ control of this camera")
    # Moving a camera is using it: the same consent as a live view (sharing level, windows,
    # incident, purpose), and the same audit trail.
    return await required(request, MEDIA_ACCESS, "the access check").open_view(
        request, camera_id, "main")


async def _run_onvif(request: web.Request, camera: CameraConfig, what: str,
                     command: Any) -> Any:
    controls = request.config_dict[ONVIF_CONTROLS]
    assert camera.onvif is not None
    try:
        client, token = await controls.client(camera.id, camera.onvif)
        return await command(client, token)
    except UnsafeUrl as exc:
        raise error(502, f"camera {camera.id}: its ONVIF address is refused: {exc}") from None
    except OnvifError as exc:
        await controls.forget(camera.id)
        log.warning("camera %s: %s failed: %s", camera.id, what, exc)
        raise error(502, f"camera {camera.id} did not take the command: {exc}") from None


@allow(*PTZ_ROLES)
async def presets(request: web.Request) -> web.Response:
    camera = _configured(request, request.match_info["camera_id"])
    grant = await _grant(request, camera.id)
    access = required(request, MEDIA_ACCESS, "the access check")
    try:
        found: list[PtzPreset] = await _run_onvif(
            request, camera, "listing presets",
            lambda client, token: client.ptz_presets(token))
    finally:
        await access.close_view(grant, "ptz presets listed")
    return web.json_response({"presets": [{"token": p.token, "name": p.name} for p in found]})


def _number(body: dict[str, Any], name: str, low: float, high: float, default: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise error(400, f"{name} must be a number from {low:g} to {high:g}")
    return float(value)


@allow(*PTZ_ROLES)
async def control(request: web.Request) -> web.Response:
    camera = _configured(request, request.match_info["camera_id"])
    body = await read_json(request)
    action = body.get("action", "move")
    details: dict[str, Any]
    if action == "move":
        details = {axis: _number(body, axis, -1, 1, 0.0) for axis in ("pan", "tilt", "zoom")}
        details["timeout"] = _number(body, "timeout", 0.1, 60, 1.0)
    elif action == "stop":
        details = {}
    elif action == "preset":
        preset = body.get("preset")
        if not isinstance(preset, str) or not 0 < len(preset) <= MAX_PRESET_TOKEN:
            raise error(400, "preset must be the token of one of the camera's presets")
        details = {"preset": preset, "name": str(body.get("name", ""))[:100]}
    else:
        raise error(400, "action must be 'move', 'stop' or 'preset'")
    grant = await _grant(request, camera.id)
    access = required(request, MEDIA_ACCESS, "the access check")
    actor = actor_of(request)
    try:
        try:
            await required(request, AUDIT, "the audit log").append(
                actor=actor.name, role=actor.role, action=f"ptz.{action}", camera_id=camera.id,
                owner_id=camera.owner, source=actor.source, details=details)
        except AuditWriteError:
            raise error(503, "the audit log cannot be written, so the camera was not moved; "
                             "try again shortly") from None

        async def command(client: OnvifClient, token: str) -> None:
            if action == "move":
                await client.ptz_move(token, details["pan"], details["tilt"], details["zoom"],
                                      duration=details["timeout"])
            elif action == "stop":
                await client.ptz_stop(token)
            else:
                await client.ptz_goto_preset(token, details["preset"])

        await _run_onvif(request, camera, f"ptz {action}", command)
    finally:
        await access.close_view(grant, "ptz command")
    return web.json_response({"ok": True, "action": action})


def onvif_ptz_cameras(request: web.Request) -> list[str]:
    """Ids of the configured cameras the console can move over ONVIF (the owner's consent is
    asked on each command, and shown by the catalog's ``ptz_allowed``)."""
    return [camera.id for camera in request.config_dict[SETTINGS].cameras
            if camera.onvif is not None]


def add_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(controls_context)
    app.router.add_get("/api/cameras/{camera_id}/ptz/presets", presets)
    app.router.add_post("/api/cameras/{camera_id}/ptz", control)
