"""Wiring of agent ingest into the application (``server.app.create_app``)::

    app.cleanup_ctx.append(agent_server.cleanup_ctx)   # after the security and hub contexts
    agent_server.add_routes(app)
"""

from __future__ import annotations

from aiohttp import web

from ingest.agentlink import routes as agent_routes
from ingest.agentlink import whip_routes
from ingest.agentlink.service import AGENT_SERVICE, AGENT_TIMINGS, agent_context, install

cleanup_ctx = agent_context


def add_routes(app: web.Application) -> None:
    agent_routes.add_routes(app)
    whip_routes.add_routes(app)
    install(app)


__all__ = ["AGENT_SERVICE", "AGENT_TIMINGS", "add_routes", "cleanup_ctx"]
