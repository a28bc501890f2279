"""Cameras that run with no viewer (``record: true``, ``preload: true``) are leased like the
others: one node of two pulls and records the camera, and when that node is killed the other
takes it by itself, with no viewer asking."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cluster.nodes import CAMERA, Cluster, Node, get_json, pulled_by
from tests.fixtures.auth import bearer
from tests.fixtures.camsim import CamsimHandle
from tests.fixtures.canary import BOOTSTRAP_TOKEN

pytestmark = pytest.mark.slow
ADMIN = bearer(BOOTSTRAP_TOKEN)


@pytest.fixture(params=[{"record": True}, {"preload": True}], ids=["record", "preload"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, postgres_url: str,
            camsim: CamsimHandle) -> Iterator[Cluster]:
    options: dict[str, Any] = request.param
    nodes = Cluster(tmp_path, redis_url, postgres_url, camsim.url("open"),
                    camera_options=options)
    try:
        yield nodes
    finally:
        nodes.close()


async def _recording(http: aiohttp.ClientSession, node: Node) -> list[str]:
    """The cameras node records now (a recorder that has written frames)."""
    status = await get_json(http, f"{node.url}/api/recordings/status", ADMIN)
    return [r["camera_id"] for r in status["recorders"]
            if r["state"] == "recording" and int(r["frames"]) > 0]


async def _held_by(http: aiohttp.ClientSession, node: Node, deadline_s: float,
                   among: set[str]) -> str:
    """The node (one of ``among``) that holds the camera's lease and pulls it, polled from
    ``node``'s /api/cluster."""
    deadline = time.monotonic() + deadline_s
    while True:
        leases = (await get_json(http, f"{node.url}/api/cluster", ADMIN))["leases"]
        holder = leases.get(CAMERA)
        if holder in among:
            return str(holder)
        assert time.monotonic() < deadline, f"no node of {among} took {CAMERA}: {leases}"
        await asyncio.sleep(0.25)


async def _pulled_once(http: aiohttp.ClientSession, cluster: Cluster, holder: str,
                       recorded: bool, deadline_s: float = 60.0) -> None:
    """Wait until ``holder`` pulls (and records) the camera; no other node ever does."""
    deadline = time.monotonic() + deadline_s
    while True:
        pulled = await pulled_by(http, cluster, ADMIN)
        assert pulled in ([], [holder]), f"camera pulled by {pulled}, leased to {holder}"
        recording = {name: await _recording(http, node)
                     for name, node in cluster.nodes.items() if node.process.poll() is None}
        assert all(name == holder for name, cameras in recording.items() if cameras), recording
        if pulled == [holder] and (not recorded or recording[holder] == [CAMERA]):
            return
        assert time.monotonic() < deadline, (
            f"{holder} holds {CAMERA} but does not pull{' and record' if recorded else ''} "
            f"it: pulled by {pulled}, recording {recording}")
        await asyncio.sleep(0.5)


async def test_a_camera_without_viewers_runs_on_one_node_and_moves_when_it_dies(
        cluster: Cluster) -> None:
    recorded = bool(cluster.camera_options.get("record"))
    nodes = [await cluster.start(f"node-{i + 1}") for i in range(2)]
    names = {node.name for node in nodes}
    async with aiohttp.ClientSession() as http:
        holder = await _held_by(http, nodes[0], 60, names)
        await _pulled_once(http, cluster, holder, recorded)
        # A few more looks: the other node leaves it alone.
        for _ in range(6):
            await _pulled_once(http, cluster, holder, recorded)
            await asyncio.sleep(0.5)

        dead = cluster.nodes[holder]
        survivor = next(node for node in nodes if node is not dead)
        dead.kill()
        killed = time.monotonic()
        taken = await _held_by(http, survivor, 60, {survivor.name})
        took = time.monotonic() - killed
        await _pulled_once(http, cluster, taken, recorded)
        running = time.monotonic() - killed
        print(f"\n{CAMERA} ({'recorded' if recorded else 'preloaded'}): {survivor.name} took "
              f"the lease {took:.2f} s and pulled{' and recorded' if recorded else ''} it "
              f"{running:.2f} s after {holder} was killed")
    assert survivor.stop() == 0, survivor.stderr()
