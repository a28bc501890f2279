"""The one place that wires the packages together into an aiohttp application."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

import catalog
import relay
from catalog.owner_api import add_owner_routes
from console_web import layouts as console_layouts
from console_web import portal
from console_web import routes as console_routes
from console_web.panic import routes as panic_pages
from console_web.public import routes as public_pages
from console_web.tips import routes as tip_pages
from evidence import add_routes as add_evidence_routes
from evidence import evidence_context
from facilities import wiring as facility_wiring
from incidents import routes as incident_routes
from ingest.agentlink import wiring as agent_server
from notify import routes as notify_routes
from rtcc.appkeys import DATABASE, HUB, SETTINGS, WORKERS
from rtcc.config import Settings
from rtcc.db import Database
from rtcc.hub import StreamHub
from rtcc.workers import WorkerPool
from security import add_routes as add_security_routes
from security import security_context, security_middleware
from server import cluster as cluster_node
from server import facility_access, incident_access, notify_wiring, openapi, ops_routes
from server.camera_sync import camera_sync_context
from server.resilience import admission_middleware, loop_lag_context, store_errors_middleware
from server.security_headers import security_headers_on_prepare
from server.transparency_wiring import transparency_context
from server.vms_rtsp import vms_rtsp_context
from tips import wiring as tip_line
from transparency import routes as transparency_routes

log = logging.getLogger(__name__)


async def _hub_context(app: web.Application) -> AsyncIterator[None]:
    # Clustered, a preloaded camera runs on the one node that holds its lease (server.cluster).
    clustered = bool(app[SETTINGS].cluster.redis_url.get_secret_value())
    async with StreamHub(pin_preloaded=not clustered) as hub:
        app[HUB] = hub
        yield
        log.info("stopping %d streams", len(hub.streams()))


async def _database_context(app: web.Application) -> AsyncIterator[None]:
    database = Database.from_settings(app[SETTINGS])
    app[DATABASE] = database
    log.info("tables: %s", database.describe())
    try:
        yield
    finally:
        await asyncio.to_thread(database.close)


async def _workers_context(app: web.Application) -> AsyncIterator[None]:
    async with WorkerPool() as workers:
        app[WORKERS] = workers
        yield


def _relay_settings(settings: Settings) -> relay.RelaySettings:
    config = settings.relay
    return relay.RelaySettings(
        max_sessions=config.max_sessions,
        max_sessions_per_user=config.max_sessions_per_user,
        max_sessions_per_owner=config.max_sessions_per_owner,
        connect_timeout=config.connect_timeout,
        ice_servers=tuple(relay.IceServer(url) for url in config.ice_servers),
        turn_secret=config.turn_secret.get_secret_value(),
        turn_ttl=config.turn_ttl,
        host_addresses=tuple(config.host_addresses),
        public_addresses=tuple(config.public_addresses),
    )


def create_app(settings: Settings) -> web.Application:
    # Outermost first: a store outage is a 503 from any layer; an overloaded loop refuses new
    # work before spending anything on it.
    app = web.Application(middlewares=[store_errors_middleware, admission_middleware,
                                       security_middleware, cluster_node.cluster_middleware],
                          client_max_size=16 * 1024**2)
    app[SETTINGS] = settings
    app.on_response_prepare.append(security_headers_on_prepare)
    app.cleanup_ctx.append(loop_lag_context)  # measures the loop from the first moment
    app.cleanup_ctx.append(_database_context)  # every store's connections, closed last
    app.cleanup_ctx.append(_workers_context)  # CPU-heavy work (password hashing)
    app.cleanup_ctx.append(security_context)  # next in, next to last out: audits the shutdown
    app.cleanup_ctx.append(catalog.catalog_context)  # needs SECRET_BOX
    app.cleanup_ctx.append(_hub_context)
    app.cleanup_ctx.append(catalog.live_status_context)  # needs the hub
    app.cleanup_ctx.append(camera_sync_context)  # catalog cameras -> hub streams
    app.cleanup_ctx.append(agent_server.cleanup_ctx)  # after the hub: agent cameras are streams
    app.cleanup_ctx.append(evidence_context)  # after security and hub: records streams
    app.cleanup_ctx.append(tip_line.tips_context)  # needs SECRET_BOX and WORKERS
    app.cleanup_ctx.append(incident_routes.incidents_context)  # CAD feeds and the board
    app.cleanup_ctx.append(incident_access.incident_access_context)  # CAD -> emergency grants
    app.cleanup_ctx.append(facility_wiring.facilities_context)  # profiles, panic devices, alerts
    app.cleanup_ctx.append(facility_access.facility_access_context)  # alerts -> incident, grants
    app.cleanup_ctx.append(notify_routes.notify_context)  # the outbox and its worker
    app.cleanup_ctx.append(notify_wiring.notify_wiring_context)  # CAD -> alerts, audit
    app.cleanup_ctx.append(console_layouts.layouts_context)  # the console's saved walls
    app.cleanup_ctx.append(transparency_context)  # reads incidents, catalog and audit
    app.cleanup_ctx.append(vms_rtsp_context)  # the VMS's RTSP views: needs security and hub
    app.cleanup_ctx.append(cluster_node.cluster_context)  # needs the hub; leaves first
    ops_routes.add_routes(app)
    cluster_node.add_routes(app)
    # -- packages add their routes below (each module exposes add_routes(app)) --
    add_security_routes(app)
    relay.add_routes(app, _relay_settings(settings))
    catalog.add_routes(app, serve_openapi=False)  # server.openapi describes every route
    add_owner_routes(app)  # the owners' own cameras, sites and sign-up
    console_routes.add_routes(app)
    portal.add_routes(app)  # the owner portal under /register/
    agent_server.add_routes(app)
    add_evidence_routes(app)
    tip_line.add_routes(app)  # the anonymous tip line under /tips/, the queue under /api/tips
    tip_pages.add_routes(app)
    incident_routes.add_routes(app)
    incident_access.add_routes(app)
    facility_wiring.add_routes(app)  # facility profiles, the panic app's API, the alert console
    panic_pages.add_routes(app)  # the panic app under /panic/, the portal's facility pages
    notify_routes.add_routes(app)
    transparency_routes.add_routes(app)  # the open data API under /public/api/v1/
    public_pages.add_routes(app)  # the public crime map and metrics under /public/
    openapi.add_routes(app)
    return app
