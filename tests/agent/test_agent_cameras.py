"""What an agent does with the cameras it finds: broken and hostile cameras fail alone with a
clear state in the owner's view, snapshots and PTZ go through the agent, and only where the
owner allows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest

from camsim.onvif_runner import OnvifDeviceConfig, OnvifProfile
from rtcc.access import CameraConsent
from rtcc.config import SharingLevel
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
from tests.fixtures.onvif import ONVIF_PASSWORD, ONVIF_USER, HostileOnvif, OnvifSimFactory

pytestmark = pytest.mark.slow

PTZ_CAMERA = OnvifDeviceConfig(
    name="Parking PTZ", username=ONVIF_USER, password=ONVIF_PASSWORD, ptz=True,
    profiles=(OnvifProfile("main", "open", 640, 360),),
)
OTHER_PASSWORD = OnvifDeviceConfig(
    name="Back door", username=ONVIF_USER, password="a-different-password", ptz=False,
    profiles=(OnvifProfile("main", "open", 640, 360),),
)


async def test_hostile_and_broken_cameras_fail_alone_snapshot_and_ptz(
    tmp_path: Path, onvif_sim_factory: OnvifSimFactory, hostile_onvif: HostileOnvif,
    bootstrap_token: str,
) -> None:
    sim = await onvif_sim_factory([PTZ_CAMERA, OTHER_PASSWORD])
    hostile = {kind: await hostile_onvif(kind) for kind in ("xxe", "bomb", "fault", "garbage")}
    server = ServerHarness(agent_settings(tmp_path))
    await server.start()
    agent = AgentProcess(tmp_path / "agent.log")
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(server.url, http)
            admin = bearer(bootstrap_token)
            owner = await bootstrap(api, admin, "mall")
            args = ["--server", server.url, "--enroll", await enrollment_token(api, owner),
                    "--state-dir", str(tmp_path / "state"),
                    "--discovery-target", f"127.0.0.1:{sim.discovery_port}",
                    "--discovery-wait", "0.5", "--onvif-user", ONVIF_USER,
                    "--onvif-password-env", "ONVIF_PASSWORD"]
            for url in hostile.values():
                args += ["--onvif", url]
            await agent.start(args, env={"ONVIF_PASSWORD": ONVIF_PASSWORD})

            async def cameras() -> list[dict[str, Any]]:
                agents = await list_agents(api, owner)
                found: list[dict[str, Any]] = agents[0]["cameras"] if agents else []
                return found if len(found) == 6 else []

            listed = await wait_for(cameras, 60, "six cameras in the inventory")
            states = {c["status"] for c in listed}
            assert states == {"ok", "error"}
            good = next(c for c in listed if c["name"] == "Parking PTZ")
            assert good["status"] == "ok"
            assert good["ptz"]
            errors = {c["name"]: c["error"] for c in listed if c["status"] == "error"}
            assert any("refused the user name or password" in e for e in errors.values())
            unsafe = [e for e in errors.values() if "DTD or entities" in e]
            assert len(unsafe) == 2, errors  # the external entity and the entity bomb
            assert any("SOAP fault" in e for e in errors.values()), errors
            assert any("not what ONVIF specifies" in e for e in errors.values()), errors

            camera_id = good["camera_id"]
            jpeg = await api.ok("GET", f"/api/agent-cameras/{camera_id}/snapshot", owner)
            picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert picture is not None
            assert picture.shape == (360, 640, 3)

            analyst = await account(api, admin, "analyst1", "analyst", token_name="t")
            move = {"action": "move", "pan": 0.5, "tilt": 0.0, "zoom": 0.0, "timeout": 2}
            status, body = await api.call("POST", f"/api/agent-cameras/{camera_id}/ptz",
                                          analyst, json=move)
            assert status == 403, body  # not in the catalog: no PTZ consent
            server.directory.consents[camera_id] = CameraConsent(
                camera_id, "mall", SharingLevel.LIVE_ALWAYS, ptz_allowed=False)
            status, body = await api.call("POST", f"/api/agent-cameras/{camera_id}/ptz",
                                          analyst, json=move)
            assert status == 403, body
            assert "does not allow PTZ" in body["error"]
            server.directory.consents[camera_id] = CameraConsent(
                camera_id, "mall", SharingLevel.REGISTRY_ONLY, ptz_allowed=True)
            status, body = await api.call(
                "POST", f"/api/agent-cameras/{camera_id}/ptz?purpose=test", analyst, json=move)
            assert status == 403, body  # PTZ allowed, but the camera is not shared live
            server.directory.consents[camera_id] = CameraConsent(
                camera_id, "mall", SharingLevel.LIVE_ALWAYS, ptz_allowed=True)
            status, body = await api.call("POST", f"/api/agent-cameras/{camera_id}/ptz",
                                          analyst, json=move)
            assert status == 400, body  # moving a camera needs a purpose, like viewing it
            await api.ok("POST", f"/api/agent-cameras/{camera_id}/ptz?purpose=test", analyst,
                         json=move)
            await api.ok("POST", f"/api/agent-cameras/{camera_id}/ptz", owner,
                         json={"action": "stop"})
            await wait_for(lambda: sim.count("ptz-move", "Parking PTZ") == 1
                           and sim.count("ptz-stop", "Parking PTZ") == 1, 10, "PTZ commands")

            status, body = await api.call(
                "GET", f"/api/agent-cameras/{camera_id}/snapshot", analyst)
            assert status == 400, body  # a staff snapshot needs a purpose
            jpeg = await api.ok("GET", f"/api/agent-cameras/{camera_id}/snapshot?purpose=test",
                                analyst)
            assert jpeg.startswith(b"\xff\xd8")
            neighbour = await bootstrap(api, admin, "bakery")
            status, _ = await api.call("GET", f"/api/agent-cameras/{camera_id}/snapshot",
                                       neighbour)
            assert status == 404
    finally:
        await agent.stop()
        await server.stop()
    for text in [*api.seen, agent.log()]:
        assert ONVIF_PASSWORD not in text
