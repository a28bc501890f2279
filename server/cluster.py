"""This server as one node of several (``cluster.redis_url`` set): the wiring of ``cluster`` to
the stream hub, the relay and the view enforcement.

- What the node pulls is what its hub runs: every camera with a stream not idle holds a lease.
- A viewer's WHEP request reaches any node; the node that holds the camera's lease (or the least
  loaded live node, for a camera nobody pulls) serves it. Another node passes the signalling on
  (``_forward``): the same request, its credentials untouched, signed with the cluster secret.
  The serving node authenticates the viewer, decides consent and audits the view itself, and the
  media go from there to the viewer directly. The viewer's client sees one origin and one answer
  (no redirect a browser would have to follow across origins with its credentials and CORS).
- A camera that runs with no viewer (preloaded, or recorded) is leased like any other: each node
  asks ``ClusterNode.claim`` which of them it pulls (the recording manager through
  ``PULL_CLAIMS``, the preload watcher here), so one node pulls and records it, and when that node
  dies the others find its lease run out and one of them takes the camera, by load.
- A camera reached through its owner's agent is placed on the node the agent is connected to
  (each node announces its agents in Redis), where the agent publishes it; the agent's WHIP
  requests, whichever node the proxy sends them to, are passed to the node that pulls the camera.
- A change made on any node (a successful POST, PUT, PATCH or DELETE under ``/api/``: a
  revocation, a consent change, a grant, a logout) is announced to every node, which checks its
  open views again at once; the periodic check remains the backstop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import psycopg
import redis.asyncio as aioredis
from aiohttp import web
from multidict import CIMultiDict
from redis.exceptions import RedisError

import cluster
from cluster import ClusterNode
from ingest.agentlink.wiring import AGENT_SERVICE
from relay import SESSIONS
from rtcc.appkeys import HUB, PULL_CLAIMS, SETTINGS, VIEW_ENFORCEMENT
from rtcc.errors import RtccError
from rtcc.hub import StreamHub
from rtcc.media import StreamState
from rtcc.policy import staff
from rtcc.principal import CLIENT_ADDRESS, client_address, principal_of
from rtcc.tasks import TaskSupervisor

log = logging.getLogger(__name__)

CLUSTER = web.AppKey("cluster", ClusterNode)
_HTTP = web.AppKey("cluster_http", aiohttp.ClientSession)
NODE_HEADER = "RTCC-Cluster-Node"
"""On a WHEP answer: the node that serves the view."""
RECHECK = "recheck"
_FORWARD_TIMEOUT_S = 30.0
_WHEP_OFFER = "/whep/{camera_id}"
_WHEP_SESSION = "/whep/{camera_id}/{session_id}"
_WHIP_OFFER = "/whip/{camera_id}"
_WHIP_SESSION = "/whip/{camera_id}/{session_id}"
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                         "te", "trailer", "upgrade", "proxy-authorization",
                         "proxy-connection", "content-encoding", "date", "server"})

_LOOKUP_ERRORS = (RtccError, sqlite3.Error, psycopg.Error, RedisError, OSError, TimeoutError)
"""What reading the agents' store or Redis raises while either is unreachable."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def pulled_cameras(hub: StreamHub) -> set[str]:
    """Cameras whose source runs on this node (starting, live, reconnecting or failing)."""
    return {stream.key.camera_id for stream in hub.streams()
            if stream.state is not StreamState.IDLE}


async def cluster_context(app: web.Application) -> AsyncIterator[None]:
    """Build the node (joined once the server listens: ``join``); on exit stop the cameras it
    pulls, then release their leases and leave the registry."""
    config = app[SETTINGS].cluster
    url = config.redis_url.get_secret_value()
    if not url:
        yield
        return
    hub = app[HUB]
    sessions = app[SESSIONS]
    client = aioredis.from_url(url, socket_timeout=cluster.node.REDIS_TIMEOUT_S,
                               socket_connect_timeout=cluster.node.REDIS_TIMEOUT_S,
                               health_check_interval=10)

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") in (RECHECK, cluster.RESYNC) and event.get("origin") != node.node_id:
            enforcement = app.get(VIEW_ENFORCEMENT)
            if enforcement is not None:
                enforcement.poke()

    def on_lost(camera_id: str, holder: str) -> None:
        for stream in hub.streams():
            if stream.key.camera_id == camera_id:
                stream.unpin()
        ended = hub.close_camera_sessions(
            camera_id, f"camera {camera_id} is now served by node {holder}; reconnect")
        log.warning("cluster: ended %d views of camera %s (its lease went to %s)", ended,
                    camera_id, holder)

    node = ClusterNode(client, config.node_id, config.lease_seconds,
                       pulled=lambda: pulled_cameras(hub), viewers=lambda: len(sessions),
                       on_event=on_event, on_lost=on_lost,
                       start_grace_s=app[SETTINGS].hub.start_timeout + 5.0)
    app[CLUSTER] = node
    app[PULL_CLAIMS] = node
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_FORWARD_TIMEOUT_S),
                                      auto_decompress=False) as http,
                TaskSupervisor(f"cluster node {node.node_id}: preloaded cameras") as tasks):
        app[_HTTP] = http
        tasks.start("cluster:preload", lambda: _keep_preloaded(hub, node))
        tasks.start("cluster:agents", lambda: _announce_agents(app, node))
        try:
            yield
        finally:
            await tasks.aclose()
            for camera_id in node.held():  # stop pulling before another node may start
                await hub.unregister(camera_id, "this node is stopping")
            await node.aclose()


async def _keep_preloaded(hub: StreamHub, node: ClusterNode) -> None:
    """Run the preloaded cameras this node holds (taking the unheld ones placement gives it),
    and only those."""
    while True:
        await asyncio.sleep(node.lease_seconds / 3)
        preloaded = frozenset(stream.key.camera_id for stream in hub.streams()
                              if stream.settings.preload)
        mine = await node.claim(preloaded)
        for stream in hub.streams():
            if not stream.settings.preload:
                continue
            if stream.key.camera_id not in mine:
                if stream.pinned:
                    stream.unpin()
                continue
            if not stream.pinned:
                try:
                    await stream.pin()
                except RtccError as exc:  # the source retries by itself; the pin stays
                    log.warning("cluster: preloading %s failed: %s", stream.key, exc)


async def _announce_agents(app: web.Application, node: ClusterNode) -> None:
    """Tell the other nodes which owners' agents are connected here, so their cameras are
    placed on this node."""
    while True:
        await asyncio.sleep(node.lease_seconds / 3)
        service = app.get(AGENT_SERVICE)
        if service is None or not node.joined:
            continue
        try:
            await node.announce_agents([c.agent_id for c in service.registry.connected()])
        except cluster.REDIS_ERRORS as exc:
            log.warning("cluster: announcing this node's agents failed (%s)", exc)


async def join(app: web.Application, url: str, port: int, *, worker: int | None = None,
               own_port: int | None = None) -> None:
    """Join the cluster once the server listens at ``url`` on ``port`` (nothing when not
    clustered). Worker ``worker`` of ``--workers`` is node ``NODE_ID-wWORKER``, reached on its
    own port (``{port}`` in ``cluster.advertise_url``)."""
    node = app.get(CLUSTER)
    if node is None:
        return
    config = app[SETTINGS].cluster
    node_id = config.node_id or cluster.default_node_id(port)
    advertise = config.advertise_url.rstrip("/")
    if worker is not None:
        node_id = f"{node_id}-w{worker}"
        advertise = advertise.replace("{port}", str(own_port)) if "{port}" in advertise else ""
    await node.join(advertise or url, node_id)


def _secret(request: web.Request) -> bytes:
    return request.app[SETTINGS].cluster.secret.get_secret_value().encode()


def _canonical(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


@web.middleware
async def cluster_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    node = request.app.get(CLUSTER)
    if node is None or not node.joined:
        return await handler(request)
    route = _canonical(request)
    if route in (_WHEP_OFFER, _WHEP_SESSION) and request.method in ("POST", "DELETE"):
        return await _whep(request, handler, node, route)
    if route in (_WHIP_OFFER, _WHIP_SESSION) and request.method in ("POST", "PATCH", "DELETE"):
        return await _whip(request, handler, node)
    response = await handler(request)
    if (request.method in _CHANGES and request.path.startswith("/api/")
            and response.status < 400):
        await _announce_change(node, request.path)
    return response


async def _announce_change(node: ClusterNode, path: str) -> None:
    try:
        await node.publish(RECHECK, path=path)
    except cluster.REDIS_ERRORS as exc:
        # The other nodes' periodic check ends what this change forbids, seconds later.
        log.warning("cluster: could not announce a change (%s) to the other nodes: %s", path,
                    exc)


def _unavailable(text: str, retry_after: int = 2) -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(text=text, headers={"Retry-After": str(retry_after)})


async def _whep(request: web.Request, handler: Handler, node: ClusterNode,
                route: str) -> web.StreamResponse:
    camera_id = request.match_info["camera_id"]
    if request.headers.get(cluster.HOP_HEADER) is not None:
        sender = _verified(request)
        if request.method == "POST":
            try:
                holder = await node.take(camera_id)
            except cluster.REDIS_ERRORS as exc:
                raise _unavailable(f"the cluster's Redis does not answer ({exc})") from None
            if holder != node.node_id:
                raise _unavailable(f"camera {camera_id} was just taken by node {holder}; "
                                   "try again", 1)
        log.debug("serving %s %s for node %s", request.method, request.path, sender)
        return _mark(await handler(request), node)
    if principal_of(request) is None:
        return await handler(request)  # refused there (401), before any placement
    if route == _WHEP_SESSION:
        if request.app[SESSIONS].get(request.match_info["session_id"]) is not None:
            return await handler(request)
        owner: str | None = None
        url: str | None = None
        try:
            owner = await node.leases.holder(camera_id)
            url = node.url_of(await node.nodes(), owner) if owner else None
        except cluster.REDIS_ERRORS:
            owner = None
        if owner is None or owner == node.node_id or url is None:
            return await handler(request)
        return await _forward(request, node, owner, url)
    try:
        placement = await node.place(camera_id,
                                     prefer=lambda: _agent_node(request, node, camera_id))
    except cluster.REDIS_ERRORS as exc:
        raise _unavailable(f"the cluster's Redis does not answer, so the node serving camera "
                           f"{camera_id} is unknown ({exc}); try again shortly", 5) from None
    if placement.local:
        return _mark(await handler(request), node)
    if placement.url is None:
        raise _unavailable(f"camera {camera_id} is moving: node {placement.node_id}, which "
                           "pulled it, stopped answering; try again in a few seconds")
    return await _forward(request, node, placement.node_id, placement.url)


def _verified(request: web.Request) -> str:
    """The node that signed this internal request (HTTPForbidden when the signature fails);
    the request's client address becomes the one that node saw."""
    viewer = request.headers.get(cluster.CLIENT_HEADER, "")
    try:
        sender = cluster.verify(_secret(request), request.headers[cluster.HOP_HEADER],
                                request.method, request.path_qs, viewer)
    except cluster.HopRefused as exc:
        log.warning("refused an internal request for %s: %s", request.path, exc)
        raise web.HTTPForbidden(text=str(exc)) from None
    if viewer:  # the audit names the viewer, not the node that passed the request on
        request[CLIENT_ADDRESS] = viewer
    return sender


async def _agent_node(request: web.Request, node: ClusterNode, camera_id: str) -> str | None:
    """The node the camera's agent is connected to, for a camera reached through its owner's
    agent (None for any other camera, or when it cannot be told)."""
    service = request.app.get(AGENT_SERVICE)
    if service is None:
        return None
    try:
        camera = await service.store.camera(camera_id)
        return None if camera is None else await node.agent_node(camera.agent_id)
    except _LOOKUP_ERRORS as exc:
        log.warning("cluster: cannot tell which node the agent of camera %s is connected to "
                    "(%s); placing it by load", camera_id, exc)
        return None


async def _whip(request: web.Request, handler: Handler, node: ClusterNode) -> web.StreamResponse:
    """An agent's WHIP request reaches the node that pulls the camera (where its source waits
    for the publication), whichever node the proxy sent it to."""
    if request.headers.get(cluster.HOP_HEADER) is not None:
        _verified(request)
        return await handler(request)
    try:
        owner = await node.leases.holder(request.match_info["camera_id"])
        url = node.url_of(await node.nodes(), owner) if owner else None
    except cluster.REDIS_ERRORS:
        owner = url = None
    if owner is None or owner == node.node_id or url is None:
        return await handler(request)
    return await _forward(request, node, owner, url)


def _mark(response: web.StreamResponse, node: ClusterNode) -> web.StreamResponse:
    if not response.prepared:
        response.headers[NODE_HEADER] = node.node_id
    return response


async def _forward(request: web.Request, node: ClusterNode, target: str,
                   url: str) -> web.Response:
    """Pass the viewer's request to node ``target`` and its answer back, unchanged."""
    limit = request.app[SESSIONS].settings.max_offer_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length,
                                            text=f"the offer is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(16384):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body),
                                                text=f"the offer is larger than {limit} bytes")
    node.forwarded += 1
    headers = CIMultiDict((name, value) for name, value in request.headers.items()
                          if name.lower() not in _HOP_BY_HOP)
    viewer = client_address(request)
    headers[cluster.CLIENT_HEADER] = viewer
    headers[cluster.HOP_HEADER] = cluster.sign(_secret(request), node.node_id, request.method,
                                               request.path_qs, viewer)
    try:
        async with request.app[_HTTP].request(request.method, url + request.path_qs,
                                              data=bytes(body), headers=headers,
                                              allow_redirects=False) as answer:
            payload = await answer.read()
            out = CIMultiDict((name, value) for name, value in answer.headers.items()
                              if name.lower() not in _HOP_BY_HOP)
            return web.Response(status=answer.status, body=payload, headers=out)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("cluster: node %s at %s did not answer a viewer's %s %s: %s", target, url,
                    request.method, request.path, exc or type(exc).__name__)
        raise _unavailable(f"node {target}, which serves camera "
                           f"{request.match_info['camera_id']}, did not answer; "
                           "try again in a few seconds") from None


@staff()
async def cluster_status(request: web.Request) -> web.Response:
    node = request.app.get(CLUSTER)
    if node is None:
        return web.json_response({"enabled": False})
    try:
        nodes = await node.nodes()
        leases = await node.leased()
    except cluster.REDIS_ERRORS as exc:
        raise _unavailable(f"the cluster's Redis does not answer ({exc})") from None
    return web.json_response({
        "enabled": True, "node": node.node_id, "url": node.url,
        "nodes": [info.as_json() for info in nodes],
        "leases": dict(sorted(leases.items())), "lost_leases": node.lost_leases,
        "forwarded": node.forwarded,
    })


async def metrics_lines(app: web.Application) -> str:
    """Prometheus lines: the nodes alive and dead, each node's load and leased cameras."""
    node = app.get(CLUSTER)
    if node is None or not node.joined:
        return ""
    try:
        nodes = await node.nodes()
        leases = await node.leased()
    except cluster.REDIS_ERRORS:
        return "# the cluster's Redis did not answer\nrtcc_cluster_redis_up 0\n"
    alive = sum(1 for info in nodes if info.alive)
    lines = ["rtcc_cluster_redis_up 1",
             f'rtcc_cluster_nodes{{state="alive"}} {alive}',
             f'rtcc_cluster_nodes{{state="dead"}} {len(nodes) - alive}',
             f"rtcc_cluster_lost_leases_total {node.lost_leases}",
             f"rtcc_cluster_forwarded_total {node.forwarded}"]
    held: dict[str, int] = {}
    for holder in leases.values():
        held[holder] = held.get(holder, 0) + 1
    for info in nodes:
        label = f'node="{_label(info.node_id)}"'
        lines += [f"rtcc_cluster_node_cameras{{{label}}} {info.load.cameras}",
                  f"rtcc_cluster_node_viewers{{{label}}} {info.load.viewers}",
                  f"rtcc_cluster_node_cpu_percent{{{label}}} {info.load.cpu}",
                  f"rtcc_cluster_node_leases{{{label}}} {held.get(info.node_id, 0)}",
                  f"rtcc_cluster_node_age_seconds{{{label}}} {info.age_s:.3f}"]
    return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/cluster", cluster_status)


__all__ = ["CLUSTER", "NODE_HEADER", "add_routes", "cluster_context", "cluster_middleware",
           "join", "metrics_lines"]
