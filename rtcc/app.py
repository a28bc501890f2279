"""The one place that wires the packages together into an aiohttp application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

import catalog
import relay
from console_web import routes as console_routes
from ingest import agent_server
from ingest.handoff import LoopHandoff
from ingest.rtsp import RtspTarget
from rtcc import ops_routes
from rtcc.appkeys import HUB, SETTINGS
from rtcc.camera_sources import rtsp_source_factory
from rtcc.config import CameraConfig, Settings
from rtcc.evidence import add_routes as add_evidence_routes
from rtcc.evidence import evidence_context
from rtcc.hub import SourceFactory, StreamHub, StreamSettings
from rtcc.security import add_routes as add_security_routes
from rtcc.security import security_context, security_middleware
from rtcc.security_headers import security_headers_middleware

log = logging.getLogger(__name__)


def _stream_settings(settings: Settings, camera: CameraConfig) -> StreamSettings:
    hub = settings.hub
    return StreamSettings(
        close_after=hub.close_after,
        start_timeout=hub.start_timeout,
        preload=camera.preload,
        gop_cache_bytes=hub.gop_cache_bytes,
        gop_cache_age=hub.gop_cache_age,
        subscriber_queue=hub.subscriber_queue,
    )


def _rtsp_factory(
    settings: Settings, camera: CameraConfig, profile: str, handoff: LoopHandoff
) -> SourceFactory:
    config = camera.profiles[profile]  # type: ignore[index]
    target = RtspTarget(
        url=config.url,
        username=config.username,
        password=config.password.get_secret_value(),
        transport=config.transport,
    )
    return rtsp_source_factory(
        f"{camera.id}/{profile}", target, settings.ingest, settings.security, handoff
    )


def register_cameras(hub: StreamHub, settings: Settings) -> None:
    # One handoff for every source: one event-loop wakeup carries frames of many cameras.
    handoff = LoopHandoff()
    for camera in settings.cameras:
        for profile in camera.profiles:
            hub.register(
                camera.id,
                profile,
                _rtsp_factory(settings, camera, profile, handoff),
                _stream_settings(settings, camera),
            )


async def _hub_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with StreamHub() as hub:
        app[HUB] = hub
        register_cameras(hub, settings)
        await hub.start_preloaded()
        yield
        log.info("stopping %d streams", len(hub.streams()))


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[security_headers_middleware, security_middleware],
                          client_max_size=16 * 1024**2)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(security_context)  # first in, last out: audits the others' shutdown
    app.cleanup_ctx.append(catalog.catalog_context)  # needs SECRET_BOX
    app.cleanup_ctx.append(_hub_context)
    app.cleanup_ctx.append(catalog.live_status_context)  # needs the hub
    app.cleanup_ctx.append(agent_server.cleanup_ctx)  # after the hub: agent cameras are streams
    app.cleanup_ctx.append(evidence_context)  # after security and hub: records streams
    ops_routes.add_routes(app)
    # -- packages add their routes below (each module exposes add_routes(app)) --
    add_security_routes(app)
    relay.add_routes(app)
    catalog.add_routes(app)
    console_routes.add_routes(app)
    agent_server.add_routes(app)
    add_evidence_routes(app)
    return app
