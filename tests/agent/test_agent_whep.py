"""Frames that travelled camera -> agent -> WHIP -> server -> WHEP, decoded by an aiortc viewer;
the camera's consent comes from the real catalog (a ``via_agent`` record under the id the agent
server assigned); revoking the agent ends that view and refuses the next one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from camsim.onvif_runner import OnvifDeviceConfig, OnvifProfile
from tests.agent.harness import (
    AgentProcess,
    Api,
    ServerHarness,
    account,
    agent_settings,
    bootstrap,
    enrollment_token,
    list_agents,
    wait_for,
)
from tests.fixtures.auth import bearer
from tests.fixtures.camsim import SECURE_PASSWORD, SECURE_USER, CamsimHandle
from tests.fixtures.onvif import OnvifSimFactory

relay = pytest.importorskip("relay", reason="the relay package (WHEP) is not available")
whep_client = pytest.importorskip("tests.relay.whep_client",
                                  reason="the relay's WHEP test client is not available")

pytestmark = pytest.mark.slow

DEVICE = OnvifDeviceConfig(
    name="Corner store", username=SECURE_USER, password=SECURE_PASSWORD,
    profiles=(OnvifProfile("main", "secure", 640, 360),),
)


def _with_relay(app: web.Application) -> None:
    if not any(getattr(r, "canonical", "") == "/whep/{camera_id}"
               for r in app.router.resources()):
        relay.add_routes(app)


async def test_whep_viewer_decodes_agent_camera_until_revoked(
    tmp_path: Path, camsim: CamsimHandle, onvif_sim_factory: OnvifSimFactory,
    bootstrap_token: str,
) -> None:
    sim = await onvif_sim_factory([DEVICE], rtsp_base=f"rtsp://127.0.0.1:{camsim.port}")
    server = ServerHarness(agent_settings(tmp_path), configure=_with_relay,
                           test_directory=False)
    await server.start()
    agent = AgentProcess(tmp_path / "agent.log")
    viewer = None
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(server.url, http)
            admin = bearer(bootstrap_token)
            owner = await bootstrap(api, admin, "store7")
            await agent.start(
                ["--server", server.url, "--enroll", await enrollment_token(api, owner),
                 "--state-dir", str(tmp_path / "state"), "--no-discovery",
                 "--onvif", sim.xaddr(0), "--onvif-user", SECURE_USER,
                 "--onvif-password-env", "CAMERA_PASSWORD"],
                env={"CAMERA_PASSWORD": SECURE_PASSWORD},
            )

            async def camera() -> dict[str, Any] | None:
                agents = await list_agents(api, owner)
                cameras = agents[0]["cameras"] if agents else []
                return cameras[0] if cameras and cameras[0]["status"] == "ok" else None

            camera_id = (await wait_for(camera, 40, "the agent's camera"))["camera_id"]
            # The owner puts the agent's camera on the map (staff may not give cameras away).
            await api.ok("POST", "/api/owner/cameras", owner, 201, json={
                "id": camera_id, "name": "Corner store entrance", "lat": 40.0, "lon": -75.0,
                "sharing": "live_always", "via_agent": True})
            analyst = await account(api, admin, "analyst7", "analyst", token_name="t")

            viewer = whep_client.WhepViewer(server.url, camera_id, headers=analyst,
                                            query={"purpose": "incident 24-0042"})
            await viewer.connect(http)
            await viewer.wait_frames(15, timeout=30)
            assert viewer.decoded.first_at is not None
            sessions = await api.ok("GET", "/api/relay/sessions", analyst)
            assert len(sessions["sessions"]) == 1

            agent_id = (await list_agents(api, owner))[0]["id"]
            await api.ok("POST", f"/api/agents/{agent_id}/revoke", owner)

            async def no_sessions() -> bool:
                listed = await api.ok("GET", "/api/relay/sessions", analyst)
                return not listed["sessions"]

            await wait_for(no_sessions, 5, "the WHEP session to end")
            again = whep_client.WhepViewer(server.url, camera_id, headers=analyst,
                                           query={"purpose": "incident 24-0042"})
            try:
                with pytest.raises(whep_client.WhepError) as refused:
                    await again.connect(http)
                assert refused.value.status in (403, 404)
            finally:
                await again.close()
    finally:
        if viewer is not None:
            await viewer.close()
        await agent.stop()
        await server.stop()
