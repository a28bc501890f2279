"""Camera control from the wall, in headless Chromium: an agent camera whose owner allows PTZ
shows pan, tilt and zoom buttons and its presets on its focused tile; a click reaches the camera through the
agent and is audited; once the owner withdraws PTZ the next click is refused, in words. The
simulated camera does not move its picture, so the test reads what the camera was told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser

from camsim.onvif_runner import OnvifDeviceConfig, OnvifProfile
from rtcc.config import HubConfig, SecurityConfig, Settings
from tests.agent.harness import (
    AgentProcess,
    Api,
    ServerHarness,
    account,
    bootstrap,
    enrollment_token,
    list_agents,
    wait_for,
)
from tests.console.helpers import PageProblems, pin_at, tile, wait_decoding
from tests.fixtures.auth import bearer
from tests.fixtures.browser import artifact, login_form, poll
from tests.fixtures.camsim import SECURE_PASSWORD, SECURE_USER, CamsimHandle
from tests.fixtures.onvif import OnvifSimFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEVICE = OnvifDeviceConfig(
    name="Parking PTZ", username=SECURE_USER, password=SECURE_PASSWORD, ptz=True,
    profiles=(OnvifProfile("main", "secure", 640, 360),),
)
WHERE = (39.8, -89.645)
ANALYST_PASSWORD = "correct horse battery staple"


async def test_ptz_buttons_move_an_allowed_agent_camera_and_are_audited(
    tmp_path: Path, camsim: CamsimHandle, onvif_sim_factory: OnvifSimFactory,
    bootstrap_token: str, chromium: Browser,
) -> None:
    sim = await onvif_sim_factory([DEVICE], rtsp_base=f"rtsp://127.0.0.1:{camsim.port}")
    settings = Settings(data_dir=tmp_path / "data",
                        hub=HubConfig(start_timeout=25.0, close_after=1.0),
                        security=SecurityConfig(require_totp=False))
    server = ServerHarness(settings, test_directory=False)
    await server.start()
    agent = AgentProcess(tmp_path / "agent.log")
    context = await chromium.new_context(viewport={"width": 1440, "height": 860})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    problems = PageProblems()
    problems.watch(page)
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(server.url, http)
            admin = bearer(bootstrap_token)
            owner = await bootstrap(api, admin, "garage")
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
            await api.ok("POST", "/api/owner/cameras", owner, 201, json={
                "id": camera_id, "name": "Garage ramp", "lat": WHERE[0], "lon": WHERE[1],
                "sharing": "live_always", "via_agent": True, "ptz_allowed": True})
            analyst = await account(api, admin, "analyst5", "analyst")

            await login_form(page, server.url, "analyst5", ANALYST_PASSWORD)
            await page.wait_for_selector("body[data-ready=true]")
            await page.fill("#purpose", "case 51")
            await page.press("#purpose", "Enter")
            await page.click("#layouts button[data-layout='1']")
            await pin_at(page, *WHERE)
            await page.click(f"#results li[data-camera-id='{camera_id}'] button.add")
            await wait_decoding(page, 0, timeout=40)
            await page.click(f"{tile(0)} .tile-video")
            ptz = f"{tile(0)} .tile-tools .ptz"
            await page.wait_for_selector(ptz, state="visible")
            await page.screenshot(path=str(artifact("ptz-controls.png")))

            await page.click(f"{ptz} button[data-ptz='right']")
            status = f"{tile(0)} .tile-tools .tool-status"
            await poll(lambda: _text_has(page, status, "Camera moving"), timeout=15,
                       what="the move to be accepted")
            await wait_for(lambda: sim.count("ptz-move", "Parking PTZ") >= 1, 15,
                           "the camera to be told to move")
            audit = await api.ok("GET", f"/api/audit?action=ptz.move&camera={camera_id}",
                                 admin)
            entries = audit["entries"]
            assert [e["actor"] for e in entries] == ["analyst5"]
            assert entries[0]["details"]["pan"] > 0

            # The presets come through the agent; the one chosen is recalled and audited.
            await page.wait_for_selector(f"{ptz}[data-presets='3']")
            await page.select_option(f"{ptz} select", label="Loading dock")
            await page.click(f"{ptz} button.ptz-goto")
            await wait_for(lambda: sim.count("ptz-preset", "Parking PTZ") == 1, 15,
                           "the camera to be told the preset")
            recalled = await api.ok("GET", f"/api/audit?action=ptz.preset&camera={camera_id}",
                                    admin)
            assert [e["details"]["preset"] for e in recalled["entries"]] == ["3"]

            # The owner withdraws camera control: the buttons go from the open tile, and the
            # server refuses a command all the same.
            await api.ok("PATCH", f"/api/owner/cameras/{camera_id}", owner,
                         json={"ptz_allowed": False})
            await page.wait_for_selector(ptz, state="hidden", timeout=15_000)
            moves = sim.count("ptz-move", "Parking PTZ")
            status_code, body = await api.call(
                "POST", f"/api/agent-cameras/{camera_id}/ptz?purpose=case+51", analyst,
                json={"action": "move", "pan": 0.0, "tilt": 0.5, "zoom": 0.0})
            assert status_code == 403, body
            assert "does not allow PTZ" in body["error"]
            assert sim.count("ptz-move", "Parking PTZ") == moves
            assert problems.errors == []
    finally:
        await context.close()
        await agent.stop()
        await server.stop()


async def _text_has(page: Any, selector: str, text: str) -> bool:
    return text in (await page.text_content(selector, timeout=2000) or "")
