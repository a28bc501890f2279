"""Wires the RTSP re-publishing server (``relay.rtsp_out``) to security: a VMS account is a
named account (staff role) whose API token is its RTSP password (Basic), and every view passes
``MediaAccess.open_view_as`` (the same decision and audit entry as ``open_view``, with the RTSP
client's address) and continuous enforcement exactly like a WHEP view."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from relay.rtsp_out import RtspOutServer, RtspOutSettings, ViewRefused
from rtcc.access import ViewGrant, ViewStopper
from rtcc.appkeys import HUB, MEDIA_ACCESS, SETTINGS, VIEW_ENFORCEMENT
from rtcc.errors import StoreUnavailable
from rtcc.principal import Principal
from security import SECURITY

log = logging.getLogger(__name__)

RTSP_OUT = web.AppKey[RtspOutServer]("rtsp_out")


class SecurityGate:
    """Implements ``relay.rtsp_out.RtspGate`` on the application's security contracts."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def authenticate(self, username: str, password: str) -> Principal | None:
        principal = await self._app[SECURITY].tokens.resolve(password)
        if principal is None or not hmac.compare_digest(principal.username.encode(),
                                                        username.encode()):
            return None
        return principal

    async def open_view(self, principal: Principal, camera_id: str, profile: str,
                        purpose: str, incident: str, source: str) -> ViewGrant:
        try:
            return await self._app[MEDIA_ACCESS].open_view_as(
                principal, camera_id, profile, purpose=purpose, incident=incident,
                source=source)
        except web.HTTPException as exc:
            raise ViewRefused(exc.status, _message(exc)) from None
        except StoreUnavailable as exc:
            raise ViewRefused(503, str(exc)) from None

    async def close_view(self, grant: ViewGrant, reason: str) -> None:
        try:
            await self._app[MEDIA_ACCESS].close_view(grant, reason)
        except Exception:
            log.exception("recording the end of view %s failed", grant.view_id)

    def attach(self, grant: ViewGrant, stop: ViewStopper) -> None:
        enforcement = self._app.get(VIEW_ENFORCEMENT)
        if enforcement is not None:
            enforcement.attach(grant, stop)


def _message(exc: web.HTTPException) -> str:
    try:
        found = json.loads(exc.text or "")
    except ValueError:
        return exc.text or exc.reason
    error = found.get("error") if isinstance(found, dict) else None
    return error if isinstance(error, str) else exc.reason


async def vms_rtsp_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the RTSP server while ``vms_rtsp.enabled``; after security and the hub."""
    config = app[SETTINGS].vms_rtsp
    if not config.enabled:
        yield
        return
    settings = RtspOutSettings(
        host=config.host, port=config.port, max_sessions=config.max_sessions,
        request_timeout=config.request_timeout, write_timeout=config.write_timeout,
        max_request_bytes=config.max_request_bytes, max_auth_failures=config.max_auth_failures,
        udp=config.udp,
        profile=config.profile, purpose=config.purpose)
    server = RtspOutServer(settings, app[HUB], SecurityGate(app))
    await server.start()
    app[RTSP_OUT] = server
    try:
        yield
    finally:
        await server.aclose()
