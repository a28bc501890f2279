"""Operational routes: health, stream statistics, Prometheus metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from incidents.routes import STA024
from rtcc import __version__, metrics
from rtcc.appkeys import DATABASE, HUB
from rtcc.policy import public, staff
from server import ops_metrics
from server.cluster import metrics_lines
from server.db_health import DATABASE_PROBE, DatabaseProbe, render_metrics
from server.resilience import LOOP_LAG


@public()
async def health(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    states: dict[str, int] = {}
    for stream in hub.streams():
        states[str(stream.state)] = states.get(str(stream.state), 0) + 1
    database = await request.app[DATABASE_PROBE].check()
    # A database outage degrades the server (new views that need it are refused) but live
    # views continue, so the node still answers 200.
    body: dict[str, Any] = {
        "status": "ok" if database.reachable else "degraded", "version": __version__,
        "time": time.time(), "streams": states, "database": database.as_json()}
    subscriber = request.app.get(STA024)
    if subscriber is not None:
        # Public: whether the CAD feed is up, not its address or its errors (those are logged).
        state = subscriber.state()
        body["cad_sta024"] = {"connected": state.connected,
                              "subscribed": bool(state.subscriptions),
                              "last_event_at": state.last_event_at, "events": state.events}
    return web.json_response(body)


@staff()
async def streams(request: web.Request) -> web.Response:
    return web.json_response({"streams": request.app[HUB].stats()})


@staff()
async def prometheus(request: web.Request) -> web.Response:
    """Prometheus metrics: streams (ingest per camera), relay, grants, agents, database."""
    database = await request.app[DATABASE_PROBE].check()
    body = (metrics.render(request.app[HUB].stats()) + ops_metrics.render(request.app)
            + render_metrics(database) + await metrics_lines(request.app))
    lag = request.app.get(LOOP_LAG)
    if lag is not None:
        body += lag.prometheus()
    return web.Response(text=body, content_type="text/plain", charset="utf-8",
                        headers={"X-Prometheus-Format": "0.0.4"})


async def _probe_context(app: web.Application) -> AsyncIterator[None]:
    app[DATABASE_PROBE] = DatabaseProbe(app[DATABASE])
    yield


def add_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_probe_context)  # after the database's own context
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/streams", streams)
    app.router.add_get("/metrics", prometheus)


__all__ = ["add_routes"]
