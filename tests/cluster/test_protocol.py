"""The Redis protocol of the cluster against a real redis-server: leases, the registry, the
signed hop, events to every node."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

import cluster
from cluster import ClusterNode, NodeLoad
from cluster.leases import Leases
from cluster.registry import SEEN_KEY, announce, least_loaded, nodes
from rtcc.config import Settings
from tests.fixtures.server_process import ROOT


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.from_url(redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()


async def test_a_lease_is_held_by_one_node_and_only_its_holder_renews_or_releases_it(
        client: aioredis.Redis) -> None:
    a, b = Leases(client, "a", 1.0), Leases(client, "b", 1.0)
    assert await a.acquire("cam") == "a"
    assert await b.acquire("cam") == "a"
    assert not await b.renew("cam")
    assert not await b.release("cam")
    assert await a.renew("cam")
    assert await b.holder("cam") == "a"
    # The holder stops renewing (its node died): the lease runs out and another node takes it.
    deadline = asyncio.get_running_loop().time() + 10
    while await b.acquire("cam") != "b":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    assert not await a.renew("cam")  # the old holder cannot extend the new holder's lease
    assert not await a.release("cam")
    assert await b.release("cam")
    assert await a.holder("cam") is None


async def test_a_node_that_stops_announcing_is_dead_and_not_chosen(
        client: aioredis.Redis) -> None:
    await announce(client, "busy", "http://127.0.0.1:1", NodeLoad(5, 10, 50.0))
    await announce(client, "idle", "http://127.0.0.1:2", NodeLoad(0, 0, 1.0))
    await announce(client, "me", "http://127.0.0.1:3", NodeLoad(1, 0, 1.0))
    found = await nodes(client)
    assert [n.node_id for n in found] == ["busy", "idle", "me"]
    assert all(n.alive for n in found)
    choice = least_loaded(found, prefer="me")
    assert choice is not None
    assert choice.node_id == "idle"
    # "idle" last announced ten seconds ago (as Redis's clock counts).
    seconds, micros = await client.time()
    await client.hset(SEEN_KEY, "idle", seconds * 1000 + micros // 1000 - 10_000)
    found = await nodes(client)
    assert [n.node_id for n in found if not n.alive] == ["idle"]
    choice = least_loaded(found, prefer="me")
    assert choice is not None
    assert choice.node_id == "me"


def test_the_hop_signature_is_refused_when_forged_replayed_late_or_moved() -> None:
    key = b"k" * 32
    value = cluster.sign(key, "a", "POST", "/whep/cam?x=1", "192.0.2.7", now=1000.0)
    assert cluster.verify(key, value, "POST", "/whep/cam?x=1", "192.0.2.7", now=1001.0) == "a"
    with pytest.raises(cluster.HopRefused, match="does not match"):
        cluster.verify(key, value, "POST", "/whep/cam?x=1", "192.0.2.8", now=1001.0)
    with pytest.raises(cluster.HopRefused, match="does not match"):
        cluster.verify(b"x" * 32, value, "POST", "/whep/cam?x=1", "192.0.2.7", now=1001.0)
    with pytest.raises(cluster.HopRefused, match="does not match"):
        cluster.verify(key, value, "POST", "/whep/other?x=1", "192.0.2.7", now=1001.0)
    with pytest.raises(cluster.HopRefused, match="too old"):
        cluster.verify(key, value, "POST", "/whep/cam?x=1", "192.0.2.7", now=1100.0)
    with pytest.raises(cluster.HopRefused, match="malformed"):
        cluster.verify(key, "a;1000", "POST", "/whep/cam?x=1", "192.0.2.7", now=1000.0)


async def test_events_reach_every_node_and_a_camera_taken_elsewhere_is_stopped_here(
        redis_url: str) -> None:
    heard: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    lost: list[tuple[str, str]] = []
    pulled = {"a": {"cam"}, "b": set[str]()}

    def node(name: str) -> ClusterNode:
        return ClusterNode(aioredis.from_url(redis_url), name, 1.0,
                           pulled=lambda: pulled[name], viewers=lambda: 0,
                           on_event=heard[name].append,
                           on_lost=lambda camera, holder: lost.append((camera, holder)))

    async with node("a") as a, node("b") as b:
        await a.join("http://127.0.0.1:1")
        await b.join("http://127.0.0.1:2")
        assert (await b.place("cam")).node_id == "b"  # nobody pulls it: the caller, least loaded
        await b.release("cam")
        assert await a.take("cam") == "a"
        placement = await b.place("cam")
        assert (placement.node_id, placement.url, placement.local) == (
            "a", "http://127.0.0.1:1", False)
        await asyncio.sleep(0.3)  # both subscribed
        await a.publish("recheck", path="/api/tokens/1")
        async with asyncio.timeout(10):
            while not heard["b"] or not heard["a"]:
                await asyncio.sleep(0.05)
        assert heard["b"][0] == {"type": "recheck", "origin": "a", "path": "/api/tokens/1"}
        # Another node holds the camera's lease (node A was cut off too long): A stops it.
        await a.client.set("rtcc:cluster:camera:cam", "b")
        async with asyncio.timeout(10):
            while not lost:
                await asyncio.sleep(0.05)
        assert lost == [("cam", "b")]
        assert a.lost_leases == 1


def test_a_cluster_without_its_secret_or_workers_without_a_cluster_are_refused(
        tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"cluster\.secret must hold at least 32"):
        Settings.model_validate({"cluster": {"redis_url": "redis://127.0.0.1:1/0"}})
    config = tmp_path / "one.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--config", str(config), "--workers", "2"],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert "--workers needs cluster.redis_url" in result.stderr


async def test_cameras_without_viewers_are_spread_and_placement_follows_the_agent(
        redis_url: str) -> None:
    def node(name: str) -> ClusterNode:
        return ClusterNode(aioredis.from_url(redis_url), name, 1.0, pulled=set,
                           viewers=lambda: 0, on_event=lambda _event: None,
                           on_lost=lambda _camera, _holder: None)

    async with node("a") as a, node("b") as b:
        await a.join("http://127.0.0.1:1")
        await b.join("http://127.0.0.1:2")
        recorded = frozenset({"r1", "r2", "r3", "r4"})
        # Both nodes ask at once which recorded cameras they pull: each takes a share.
        mine_a, mine_b = await asyncio.gather(a.claim(recorded), b.claim(recorded))
        deadline = asyncio.get_running_loop().time() + 10
        while mine_a | mine_b != recorded:
            assert asyncio.get_running_loop().time() < deadline, (mine_a, mine_b)
            await asyncio.sleep(0.1)
            mine_a, mine_b = await a.claim(recorded), await b.claim(recorded)
        assert not mine_a & mine_b
        assert await a.leased() == {**dict.fromkeys(mine_a, "a"), **dict.fromkeys(mine_b, "b")}
        # Placed at the same moment, two new cameras go to two nodes, not both to the caller.
        await announce(a.client, "a", "http://127.0.0.1:1", NodeLoad(0, 0, 0.0))
        await announce(b.client, "b", "http://127.0.0.1:2", NodeLoad(0, 0, 0.0))
        for camera in recorded:
            await (a if camera in mine_a else b).release(camera)
        first, second = await asyncio.gather(a.place("v1"), a.place("v2"))
        assert {first.node_id, second.node_id} == {"a", "b"}
        # An agent's camera goes to the node its agent is connected to, whatever the load.
        await b.announce_agents(["agent-7"])
        assert await a.agent_node("agent-7") == "b"

        async def agents_node() -> str | None:
            return await a.agent_node("agent-7")

        placed = await a.place("via-agent", prefer=agents_node)
        assert placed.node_id == "b"
        assert not placed.local
        assert await a.leases.holder("via-agent") == "b"
