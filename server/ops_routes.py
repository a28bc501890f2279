"""Operational routes: health, stream statistics, Prometheus metrics."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from aiohttp import web

from incidents.routes import STA024
from rtcc import __version__, metrics
from rtcc.appkeys import HUB
from rtcc.policy import public, staff


@public()
async def health(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    states: dict[str, int] = {}
    for stream in hub.streams():
        states[str(stream.state)] = states.get(str(stream.state), 0) + 1
    body: dict[str, Any] = {"status": "ok", "version": __version__, "time": time.time(),
                            "streams": states}
    subscriber = request.app.get(STA024)
    if subscriber is not None:
        body["cad_sta024"] = dataclasses.asdict(subscriber.state())
    return web.json_response(body)


@staff()
async def streams(request: web.Request) -> web.Response:
    return web.json_response({"streams": request.app[HUB].stats()})


@staff()
async def prometheus(request: web.Request) -> web.Response:
    body = metrics.render(request.app[HUB].stats())
    return web.Response(text=body, content_type="text/plain", charset="utf-8",
                        headers={"X-Prometheus-Format": "0.0.4"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/streams", streams)
    app.router.add_get("/metrics", prometheus)


__all__ = ["add_routes"]
