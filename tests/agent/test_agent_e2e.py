"""The agent as a real process: camsim (RTSP, digest auth) and its ONVIF side, the agent
(`rtcc agent`), and the server (the real application on loopback).

Enroll, discover by unicast WS-Discovery probe, report inventory, publish with WHIP when a
viewer subscribes (frames decoded with PyAV after camera -> agent -> WHIP -> hub), survive a
server restart, then revocation: the session ends, new publishes are refused and the agent
stops. The camera password never appears in a response, a log line or a database file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from camsim.onvif_runner import OnvifDeviceConfig, OnvifProfile
from ingest.agentlink.wiring import AGENT_SERVICE
from rtcc.errors import CameraNotFound, StreamClosed
from rtcc.hub import StreamHub, Subscription
from rtcc.media import EncodedFrame
from tests.agent.harness import (
    AgentProcess,
    Api,
    ServerHarness,
    agent_settings,
    bootstrap,
    enrollment_token,
    list_agents,
    wait_for,
)
from tests.fixtures.auth import bearer
from tests.fixtures.camsim import SECURE_PASSWORD, SECURE_USER, CamsimHandle
from tests.fixtures.onvif import OnvifSimFactory
from tests.ingest.helpers import decode_keyframe

pytestmark = pytest.mark.slow

DEVICE = OnvifDeviceConfig(
    name="Shop entrance", username=SECURE_USER, password=SECURE_PASSWORD, ptz=True,
    profiles=(OnvifProfile("main", "secure", 640, 360, 15), OnvifProfile("sub", "open", 640, 360)),
)


async def _keyframe(hub: StreamHub, camera_id: str) -> tuple[int, int]:
    stream = hub.get(camera_id, "main")
    asked = time.monotonic()
    async with await stream.subscribe("test-viewer", wait=True) as subscription:
        print(f"agent camera: live {(time.monotonic() - asked) * 1000:.0f} ms after the "
              "first viewer subscribed (RTSP pull + WHIP publish + keyframe)")
        frame: EncodedFrame = await subscription.get()
        while not frame.keyframe:
            frame = await subscription.get()
        for _ in range(5):  # more than one frame: the publish keeps flowing
            await subscription.get()
    return decode_keyframe(frame)


async def _drain(subscription: Subscription) -> None:
    while True:
        await subscription.get()


def _assert_no_secret(where: str, text: str) -> None:
    for form in (SECURE_PASSWORD, quote(SECURE_PASSWORD, safe="")):
        assert form not in text, f"the camera password appears in {where}"


async def test_enroll_discover_publish_restart_revoke(
    tmp_path: Path, camsim: CamsimHandle, onvif_sim_factory: OnvifSimFactory,
    bootstrap_token: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ingest")
    caplog.set_level(logging.DEBUG, logger="rtcc")
    sim = await onvif_sim_factory([DEVICE], rtsp_base=f"rtsp://127.0.0.1:{camsim.port}")
    server = ServerHarness(agent_settings(tmp_path))
    await server.start()
    agent = AgentProcess(tmp_path / "agent.log")
    state_dir = tmp_path / "agent-state"
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(server.url, http)
            admin = bearer(bootstrap_token)
            owner = await bootstrap(api, admin, "shop1")
            await agent.start(
                ["--server", server.url, "--enroll", await enrollment_token(api, owner),
                 "--state-dir", str(state_dir), "--name", "shop pc",
                 "--discovery-target", f"127.0.0.1:{sim.discovery_port}",
                 "--discovery-wait", "0.5", "--onvif-user", SECURE_USER,
                 "--onvif-password-env", "CAMERA_PASSWORD", "--backoff-max", "2"],
                env={"CAMERA_PASSWORD": SECURE_PASSWORD},
            )

            async def inventory_ready() -> list[dict[str, Any]]:
                agents = await list_agents(api, owner)
                return agents if agents and agents[0]["connected"] and agents[0]["cameras"] \
                    else []

            (described,) = await wait_for(inventory_ready, 40, "the agent's inventory")
            (camera,) = described["cameras"]
            assert camera["status"] == "ok", camera
            assert camera["name"] == "Shop entrance"
            assert [p["name"] for p in camera["profiles"]] == ["main", "sub"]
            assert camera["ptz"]
            assert camera["snapshot"]
            camera_id = camera["camera_id"]

            credential_file = state_dir / "credential.json"
            assert stat.S_IMODE(credential_file.stat().st_mode) == 0o600
            assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700

            # a viewer arrives: the server asks the agent, the agent publishes with WHIP
            assert await _keyframe(server.hub, camera_id) == (640, 360)
            whip: Any = server.hub.get(camera_id, "main").stats()["source"]
            assert whip["kind"] == "whip"
            assert whip["frames"] > 0
            assert sim.count("sync") >= 1  # the agent asked the camera for a keyframe
            assert server.app is not None
            publishers = server.app[AGENT_SERVICE].publishers
            await wait_for(lambda: not publishers.stats(), 10,
                           "the publish to stop once nobody watches")

            # the server restarts: the agent reconnects by itself and the stream plays again
            await server.stop()
            await server.start()
            await wait_for(lambda: server.app is not None and server.app[
                AGENT_SERVICE].registry.get(described["id"]), 30, "the agent to reconnect")
            assert await _keyframe(server.hub, camera_id) == (640, 360)

            # the agent restarts (no token needed any more): a viewer that stayed resumes
            stream = server.hub.get(camera_id, "main")
            viewer = await stream.subscribe("patient-viewer", wait=True)
            await agent.stop()
            stopped_at = time.time()
            agent = AgentProcess(tmp_path / "agent-2.log")
            await agent.start(
                ["--server", server.url, "--state-dir", str(state_dir), "--no-discovery",
                 "--onvif", sim.xaddr(0), "--onvif-user", SECURE_USER,
                 "--onvif-password-env", "CAMERA_PASSWORD", "--backoff-max", "2"],
                env={"CAMERA_PASSWORD": SECURE_PASSWORD},
            )
            async with asyncio.timeout(40):
                frame = await viewer.get()
                while not (frame.discontinuity and frame.capture_time > stopped_at):
                    frame = await viewer.get()
            assert decode_keyframe(frame) == (640, 360)

            # revocation ends the live session and refuses new publishes
            await api.ok("POST", f"/api/agents/{described['id']}/revoke", owner)
            with pytest.raises(StreamClosed):
                await _drain(viewer)
            assert await agent.wait(20) == 3
            with pytest.raises(CameraNotFound):
                server.hub.get(camera_id, "main")
            credential = json.loads(credential_file.read_text())["credential"]
            status, _ = await api.call(
                "POST", f"/whip/{camera_id}",
                {**bearer(credential), "Content-Type": "application/sdp"}, data=b"v=0\r\n")
            assert status == 401
            listing = await list_agents(api, owner)
            assert listing[0]["revoked"] is not None
            assert not listing[0]["connected"]
    finally:
        await agent.stop()
        await server.stop()

    assert "revoked" in agent.log()
    assert "enrolled as agent" in (tmp_path / "agent.log").read_text()
    for text in api.seen:
        _assert_no_secret("a server response", text)
    _assert_no_secret("the server's log", caplog.text)
    for name in ("agent.log", "agent-2.log"):
        _assert_no_secret("the agent's log", (tmp_path / name).read_text(errors="replace"))
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            _assert_no_secret(path.name, path.read_bytes().decode("latin-1"))
