"""A small application carrying only the security core, for tests that do not need the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from aiohttp import web

from rtcc.access import CameraConsent
from rtcc.appkeys import CAMERA_DIRECTORY, CLOCK, CONSENT_CHANGES, HUB, MEDIA_ACCESS, SETTINGS
from rtcc.config import Settings, SharingLevel
from rtcc.hub import StreamHub, StreamSettings
from rtcc.policy import Role, allow
from security import add_routes, security_context, security_middleware
from security.store import Clock
from server.security_headers import security_headers_on_prepare
from tests.hub.memory_source import MemorySource

DIRECTORY = web.AppKey["Directory"]("test_directory")


class Directory:
    """The catalog's part of the contract, in memory."""

    def __init__(self) -> None:
        self.cameras: dict[str, CameraConsent] = {}

    def add(self, camera_id: str, sharing: SharingLevel, owner_id: str = "shop1",
            **extra: object) -> CameraConsent:
        consent = CameraConsent(camera_id, owner_id, sharing, **extra)  # type: ignore[arg-type]
        self.cameras[camera_id] = consent
        return consent

    async def consent_of(self, camera_id: str) -> CameraConsent | None:
        return self.cameras.get(camera_id)


@allow(*Role)
async def view(request: web.Request) -> web.Response:
    """Stands in for a media path (WHEP, snapshot): ask, then end the view."""
    access = request.app[MEDIA_ACCESS]
    grant = await access.open_view(request, request.match_info["camera"], "main")
    await access.close_view(grant, "test finished")
    return web.json_response({"purpose": grant.purpose, "incident": grant.incident,
                              "user": grant.user, "view_id": grant.view_id})


@allow(Role.OWNER)
async def set_sharing(request: web.Request) -> web.Response:
    """Stands in for the owner portal changing a camera's sharing level."""
    directory = request.app[DIRECTORY]
    camera_id = request.match_info["camera"]
    before = directory.cameras[camera_id]
    after = replace(before, sharing=SharingLevel((await request.json())["sharing"]))
    directory.cameras[camera_id] = after
    ended = await request.config_dict[CONSENT_CHANGES].consent_changed(request, before, after)
    return web.json_response({"ended": ended})


async def _hub(app: web.Application) -> AsyncIterator[None]:
    async with StreamHub() as hub:
        hub.register("cam1", "main", lambda: MemorySource([]), StreamSettings(close_after=0))
        app[HUB] = hub
        yield


def security_app(settings: Settings, *, clock: Clock | None = None,
                 directory: Directory | None = None) -> web.Application:
    app = web.Application(middlewares=[security_middleware])
    app.on_response_prepare.append(security_headers_on_prepare)
    app[SETTINGS] = settings
    if clock is not None:
        app[CLOCK] = clock
    directory = directory or Directory()
    app[DIRECTORY] = directory
    app[CAMERA_DIRECTORY] = directory
    app.cleanup_ctx.append(_hub)
    app.cleanup_ctx.append(security_context)
    add_routes(app)
    app.router.add_get("/test/view/{camera}", view)
    app.router.add_post("/test/sharing/{camera}", set_sharing)
    return app
