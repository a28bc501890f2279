"""A camera reached through its owner's agent, with two nodes: the agent is connected to node A;
a viewer whose request lands on node B is served by node A (where the agent publishes), through
the internal hop, and decodes frames that went camera -> agent -> WHIP -> node A -> WHEP."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from camsim.onvif_runner import OnvifDeviceConfig, OnvifProfile
from tests.agent.harness import (
    AgentProcess,
    Api,
    account,
    bootstrap,
    enrollment_token,
    list_agents,
    wait_for,
)
from tests.cluster.nodes import PURPOSE, Cluster, get_json
from tests.fixtures.auth import bearer
from tests.fixtures.camsim import SECURE_PASSWORD, SECURE_USER, CamsimHandle
from tests.fixtures.canary import BOOTSTRAP_TOKEN
from tests.fixtures.onvif import OnvifSimFactory
from tests.relay.whep_client import WhepError, WhepViewer

pytestmark = pytest.mark.slow
ADMIN = bearer(BOOTSTRAP_TOKEN)
NODE = "RTCC-Cluster-Node"
DEVICE = OnvifDeviceConfig(
    name="Corner store", username=SECURE_USER, password=SECURE_PASSWORD,
    profiles=(OnvifProfile("main", "secure", 640, 360),),
)


async def test_an_agent_camera_is_served_by_the_node_its_agent_is_connected_to(
        tmp_path: Path, redis_url: str, postgres_url: str, camsim: CamsimHandle,
        onvif_sim_factory: OnvifSimFactory) -> None:
    sim = await onvif_sim_factory([DEVICE], rtsp_base=f"rtsp://127.0.0.1:{camsim.port}")
    cluster = Cluster(tmp_path, redis_url, postgres_url, camsim.url("open"))
    agent = AgentProcess(tmp_path / "agent.log")
    viewer: WhepViewer | None = None
    try:
        a = await cluster.start("node-1")
        b = await cluster.start("node-2")
        async with aiohttp.ClientSession() as http:
            api = Api(a.url, http)
            owner = await bootstrap(api, ADMIN, "store7")
            await agent.start(
                ["--server", a.url, "--enroll", await enrollment_token(api, owner),
                 "--state-dir", str(tmp_path / "state"), "--no-discovery",
                 "--onvif", sim.xaddr(0), "--onvif-user", SECURE_USER,
                 "--onvif-password-env", "CAMERA_PASSWORD"],
                env={"CAMERA_PASSWORD": SECURE_PASSWORD},
            )

            async def camera() -> dict[str, Any] | None:
                agents = await list_agents(api, owner)
                cameras = agents[0]["cameras"] if agents else []
                return cameras[0] if cameras and cameras[0]["status"] == "ok" else None

            camera_id = (await wait_for(camera, 60, "the agent's camera"))["camera_id"]
            await api.ok("POST", "/api/owner/cameras", owner, 201, json={
                "id": camera_id, "name": "Corner store entrance", "lat": 40.0, "lon": -75.0,
                "sharing": "live_always", "via_agent": True})
            analyst = await account(api, ADMIN, "analyst7", "analyst", token_name="t")

            # By load alone node B, which is asked, would serve it: both pull nothing; wait
            # until neither is busy starting (placement compares CPU in tens of percent).
            async def idle() -> bool:
                nodes = (await get_json(http, f"{b.url}/api/cluster", ADMIN))["nodes"]
                return all(n["alive"] and n["cameras"] == 0 and n["cpu"] < 5 for n in nodes)

            await wait_for(idle, 60, "both nodes to be idle")
            deadline = time.monotonic() + 60
            while True:
                viewer = WhepViewer(b.url, camera_id, headers=analyst, query=PURPOSE)
                try:
                    await viewer.connect(http)
                    break
                except WhepError as exc:
                    await viewer.close()
                    viewer = None
                    if exc.status != 503 or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
            assert viewer.response_headers[NODE] == a.name
            await viewer.wait_frames(15, timeout=30)
            assert viewer.decoded.first_at is not None
            leases = (await get_json(http, f"{b.url}/api/cluster", ADMIN))["leases"]
            assert leases.get(camera_id) == a.name
            status = await get_json(http, f"{b.url}/api/cluster", ADMIN)
            assert status["forwarded"] >= 1
    finally:
        if viewer is not None:
            await viewer.close()
        await agent.stop()
        cluster.close()
