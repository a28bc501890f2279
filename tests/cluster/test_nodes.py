"""Three ``rtcc serve`` nodes on loopback with one PostgreSQL, one redis-server and a GStreamer
camera: a viewer on any node watches a camera pulled by one node; the camera moves when its node
is killed; a revocation on one node ends a view on another; the camera is never pulled twice."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from rtcc.policy import Role
from tests.cluster.nodes import CAMERA, PURPOSE, Cluster, Node, get_json, pulled_by
from tests.fixtures.auth import PASSWORD, TestUser, bearer
from tests.fixtures.camsim import CamsimHandle
from tests.fixtures.canary import BOOTSTRAP_TOKEN
from tests.fixtures.redis_server import RedisServer, start_redis
from tests.relay.whep_client import WhepError, WhepViewer

pytestmark = pytest.mark.slow
ADMIN = bearer(BOOTSTRAP_TOKEN)
NODE = "RTCC-Cluster-Node"


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str, postgres_url: str,
            camsim: CamsimHandle) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path, redis_url, postgres_url, camsim.url("open"))
    try:
        yield nodes
    finally:
        nodes.close()


async def _watch(base_url: str, headers: dict[str, str], http: aiohttp.ClientSession,
                 deadline_s: float = 60.0) -> WhepViewer:
    """A viewer that decodes frames, posting again while the cluster answers 503."""
    deadline = time.monotonic() + deadline_s
    while True:
        viewer = WhepViewer(base_url, CAMERA, headers=headers, query=PURPOSE)
        try:
            await viewer.connect(http)
            await viewer.wait_first_frame(timeout=20)
            return viewer
        except WhepError as exc:
            await viewer.close()
            if exc.status != 503 or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)
        except BaseException:
            await viewer.close()
            raise


async def _served_once(http: aiohttp.ClientSession, cluster: Cluster) -> list[str]:
    pulled = await pulled_by(http, cluster, ADMIN)
    assert len(pulled) <= 1, f"camera pulled by {pulled} at once"
    return pulled


async def _start(cluster: Cluster, count: int) -> list[Node]:
    # One after the other: the first seeds the catalog and creates the administrator.
    return [await cluster.start(f"node-{i + 1}") for i in range(count)]


def _puller_first(cluster: Cluster, nodes: list[Node], first: WhepViewer) -> list[Node]:
    """The nodes, the one serving ``first`` (the least loaded when it asked) first."""
    puller = cluster.nodes[first.response_headers[NODE]]
    return [puller, *(node for node in nodes if node is not puller)]


async def test_a_camera_pulled_by_one_node_is_watched_through_another_and_moves_when_it_dies(
        cluster: Cluster) -> None:
    nodes = await _start(cluster, 3)
    async with aiohttp.ClientSession() as http:
        status = await get_json(http, f"{nodes[2].url}/api/cluster", ADMIN)
        assert sorted(n["node_id"] for n in status["nodes"] if n["alive"]) == [
            "node-1", "node-2", "node-3"]

        first = await _watch(nodes[0].url, ADMIN, http)
        a, b, c = _puller_first(cluster, nodes, first)
        on_b = await _watch(b.url, ADMIN, http)
        # Node B passed the signalling to node A, which pulls the camera and sends the media.
        assert on_b.response_headers[NODE] == a.name
        await on_b.wait_frames(on_b.decoded.count + 15)
        assert await _served_once(http, cluster) == [a.name]
        leases = (await get_json(http, f"{b.url}/api/cluster", ADMIN))["leases"]
        assert leases == {CAMERA: a.name}
        async with http.get(f"{c.url}/metrics", headers=ADMIN) as r:
            metrics = await r.text()
        assert 'rtcc_cluster_nodes{state="alive"} 3' in metrics
        assert f'rtcc_cluster_node_leases{{node="{a.name}"}} 1' in metrics
        # A viewer's DELETE reaches node A through node B too.
        async with http.delete(f"{b.url}{first.location}", headers=ADMIN) as r:
            assert r.status == 200, await r.text()
        await first.close()

        a.kill()
        killed = time.monotonic()
        await on_b.close()
        again = await _watch(b.url, ADMIN, http, deadline_s=60)
        leases = (await get_json(http, f"{b.url}/api/cluster", ADMIN))["leases"]
        moved_to = leases.get(CAMERA)
        assert moved_to in (b.name, c.name)
        assert again.response_headers[NODE] == moved_to
        await again.wait_frames(again.decoded.count + 15)
        assert await _served_once(http, cluster) == [moved_to]
        assert again.decoded.first_at is not None
        print(f"\nfailover: the first POST {moved_to} accepted was sent "
              f"{again.posted_at - killed:.2f} s and its viewer decoded again "
              f"{again.decoded.first_at - killed:.2f} s after {a.name}, which pulled the "
              "camera, was killed")
        await again.close()

        # A node stopped as an operator stops it hands its camera over at once.
        puller = cluster.nodes[moved_to]
        other = c if puller is b else b
        stopping = time.monotonic()
        assert await asyncio.to_thread(puller.stop) == 0, puller.stderr()
        stopped = time.monotonic() - stopping
        handed = await _watch(other.url, ADMIN, http, deadline_s=60)
        assert handed.response_headers[NODE] == other.name
        assert handed.decoded.first_at is not None
        print(f"clean stop: {puller.name} stopped in {stopped:.2f} s; a viewer through "
              f"{other.name} decoded {handed.decoded.first_at - stopping:.2f} s after the stop "
              "began")
        assert await _served_once(http, cluster) == [other.name]
        await handed.close()
    assert other.stop() == 0, other.stderr()


async def _views(http: aiohttp.ClientSession, a: Node, user: str) -> int:
    stats = await get_json(http, f"{a.url}/api/relay/sessions", ADMIN)
    return sum(1 for s in stats["sessions"] if s.get("user") == user)


async def _ended(http: aiohttp.ClientSession, a: Node, user: str, since: float) -> float:
    """Seconds from ``since`` until ``user`` has no view left on node ``a`` (at most 20)."""
    while await _views(http, a, user) and time.monotonic() < since + 20:
        await asyncio.sleep(0.1)
    assert await _views(http, a, user) == 0
    return time.monotonic() - since


async def test_a_revocation_on_one_node_ends_a_view_served_by_another(cluster: Cluster) -> None:
    nodes = await _start(cluster, 3)
    async with aiohttp.ClientSession() as http:
        holder = await _watch(nodes[0].url, ADMIN, http)
        a, b, c = _puller_first(cluster, nodes, holder)
        async with http.post(f"{c.url}/api/users", headers=ADMIN, json={
                "username": "analyst1", "role": "analyst", "password": PASSWORD}) as r:
            assert r.status == 201, await r.text()
            created = await r.json()
            user_id = created["user"]["id"]
        user = TestUser(id=user_id, username="analyst1", role=Role.ANALYST, password=PASSWORD,
                        totp_secret=parse_qs(urlsplit(created["totp_uri"]).query)["secret"][0])

        # A console's cookie session, logged in on node C, watches through node B; logging
        # out on node C ends the view node A serves.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.post(f"{c.url}/api/login", json={
                    "username": user.username, "password": user.password,
                    "totp": user.next_code()}) as r:
                assert r.status == 200, await r.text()
                csrf = (await r.json())["csrf_token"]
            console = {"Origin": b.url, "X-CSRF-Token": csrf}
            tile = await _watch(b.url, console, browser)
            assert tile.response_headers[NODE] == a.name
            assert await _views(http, a, user.username) == 1
            logout = time.monotonic()
            async with browser.post(f"{c.url}/api/logout",
                                    headers={"Origin": c.url, "X-CSRF-Token": csrf}) as r:
                assert r.status == 200, await r.text()
            print(f"\nlogout on {c.name} ended the view on {a.name} after "
                  f"{await _ended(http, a, user.username, logout):.2f} s")
            await tile.close()
        async with http.post(f"{c.url}/api/users/{user_id}/tokens", headers=ADMIN,
                             json={"name": "wall"}) as r:
            assert r.status == 201, await r.text()
            issued = await r.json()
        analyst = bearer(issued["token"])

        viewer = await _watch(b.url, analyst, http)
        assert viewer.response_headers[NODE] == a.name
        assert await _views(http, a, user.username) == 1
        revoked = time.monotonic()
        async with http.delete(f"{c.url}/api/tokens/{issued['id']}", headers=ADMIN) as r:
            assert r.status == 200, await r.text()
        # The periodic check is a minute away: only the cluster's message can end it sooner.
        print(f"revocation on {c.name} ended the view on {a.name} after "
              f"{await _ended(http, a, user.username, revoked):.2f} s")
        assert holder.decoded.count > 0
        await holder.delete(http)
        await holder.close()
        await viewer.close()
    for node in (a, b, c):
        assert node.stop() == 0, node.stderr()


def _restart(server: RedisServer) -> None:
    """Stop the redis-server (its data is gone: no persistence) and start it on the same port."""
    server.process.terminate()
    server.process.wait(timeout=10)
    server.process = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(server.port),
         "--bind", server.host, "--save", "", "--appendonly", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            if server.command("PING", timeout=1.0) == b"+PONG":
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "redis-server did not come back"
        time.sleep(0.05)


async def test_the_cluster_recovers_when_redis_restarts_empty(
        tmp_path: Path, postgres_url: str, camsim: CamsimHandle) -> None:
    redis = start_redis(tmp_path)
    nodes = Cluster(tmp_path, redis.url, postgres_url, camsim.url("open"))
    try:
        started = await _start(nodes, 2)
        async with aiohttp.ClientSession() as http:
            viewer = await _watch(started[0].url, ADMIN, http)
            a, b = _puller_first(nodes, started, viewer)
            await asyncio.to_thread(_restart, redis)
            # Live views do not depend on Redis: the viewer keeps decoding meanwhile.
            await viewer.wait_frames(viewer.decoded.count + 30, timeout=30)
            # The nodes announce themselves again and node A, which pulls the camera, takes its
            # lease back.
            deadline = time.monotonic() + 30
            status: dict[str, Any] = {}
            while time.monotonic() < deadline:
                status = await get_json(http, f"{b.url}/api/cluster", ADMIN)
                alive = sorted(n["node_id"] for n in status["nodes"] if n["alive"])
                if alive == ["node-1", "node-2"] and status["leases"] == {CAMERA: a.name}:
                    break
                await asyncio.sleep(0.2)
            assert status["leases"] == {CAMERA: a.name}, status
            second = await _watch(b.url, ADMIN, http)
            assert second.response_headers[NODE] == a.name
            assert await _served_once(http, nodes) == [a.name]
            for each in (viewer, second):
                await each.close()
        assert a.stop() == 0, a.stderr()
        assert b.stop() == 0, b.stderr()
    finally:
        nodes.close()
        redis.process.kill()
        redis.process.wait()


async def test_workers_share_one_port_and_pull_each_camera_once(cluster: Cluster) -> None:
    node = await cluster.start("machine", workers=2)
    async with aiohttp.ClientSession() as http:
        status = await get_json(http, f"{node.url}/api/cluster", ADMIN)
        alive = sorted((n["node_id"], n["url"]) for n in status["nodes"] if n["alive"])
        assert [node_id for node_id, _ in alive] == ["machine-w0", "machine-w1"]
        assert len({url for _, url in alive} | {node.url}) == 3  # each worker's own port
        # New connections land on either worker (the kernel's choice); each viewer is
        # served by the worker holding the camera, which pulls it alone.
        viewers = [await _watch(node.url, ADMIN, http) for _ in range(4)]
        served = {viewer.response_headers[NODE] for viewer in viewers}
        leases = (await get_json(http, f"{node.url}/api/cluster", ADMIN))["leases"]
        assert len(served) == 1
        assert leases == {CAMERA: served.pop()}
        for viewer in viewers:
            await viewer.wait_frames(viewer.decoded.count + 10)
            await viewer.close()
        # Twenty new connections: the worker not holding the camera gets some of them (the
        # kernel hashes each connection's addresses) and passes them on.
        for _ in range(20):
            async with aiohttp.ClientSession() as fresh, fresh.post(
                    f"{node.url}/whep/{CAMERA}", data="v=0\r\n", params=PURPOSE,
                    headers={**ADMIN, "Content-Type": "application/sdp"}) as r:
                assert r.status == 400
                assert r.headers.get(NODE) is None  # refused before a view
        other = next(url for node_id, url in alive if node_id != leases[CAMERA])
        assert (await get_json(http, f"{other}/api/cluster", ADMIN))["forwarded"] > 0
    assert node.stop() == 0, node.stderr()
