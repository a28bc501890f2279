"""Camera control of a directly pulled camera over its own ONVIF services, in headless Chromium:
the focused tile of a camera whose owner allows PTZ lists the camera's presets; a preset chosen
with the keyboard, a pan and a stop reach the (simulated) camera and are audited. A camera whose
owner does not allow PTZ, and a request without a purpose, are refused and move nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from rtcc.config import OnvifControlConfig
from rtcc.policy import Role
from server.app import create_app
from tests.console.conftest import PIN, ConsoleServer, console_settings, pair
from tests.console.helpers import PageProblems, pin_at, tile, wait_decoding
from tests.fixtures.auth import MakeClient, bearer, create_user, token_for
from tests.fixtures.browser import artifact, login_form, poll
from tests.fixtures.camsim import CamsimFactory
from tests.fixtures.onvif import LOBBY, ONVIF_PASSWORD, ONVIF_USER, OnvifSimFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROW = "#results li[data-camera-id='{}']"


async def test_presets_and_moves_of_an_onvif_camera_from_its_tile(
    tmp_path: Path, camsim_factory: CamsimFactory, onvif_sim_factory: OnvifSimFactory,
    bootstrap_token: str, make_client: MakeClient, chromium: Browser,
) -> None:
    alpha_sim = await camsim_factory(pair("alpha"))
    others_sim = await camsim_factory(pair("bravo") + pair("charlie") + pair("delta")
                                      + pair("echo"))
    onvif = await onvif_sim_factory([LOBBY])
    control = OnvifControlConfig(url=onvif.xaddr(0), username=ONVIF_USER,
                                 password=ONVIF_PASSWORD)  # type: ignore[arg-type]
    base = console_settings(tmp_path, alpha_sim, others_sim)
    cameras = [c.model_copy(update={"onvif": control, "ptz_allowed": c.id == "alpha"})
               if c.id in ("alpha", "bravo") else c for c in base.cameras]
    settings = base.model_copy(update={"cameras": cameras})
    client = await make_client(create_app(settings))
    admin = bearer(bootstrap_token)
    analyst = await create_user(client, admin, Role.ANALYST, username="analyst9",
                                display_name="Analyst Nine")
    server = ConsoleServer(client, str(client.make_url("")).rstrip("/"), alpha_sim, others_sim,
                           admin, analyst)

    context = await chromium.new_context(viewport={"width": 1440, "height": 860})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    problems = PageProblems()
    problems.watch(page)
    try:
        await login_form(page, server.base, analyst.username, analyst.password,
                         analyst.next_code())
        await page.wait_for_selector("body[data-ready=true]")
        await page.fill("#purpose", "case 77")
        await page.press("#purpose", "Enter")
        await page.click("#layouts button[data-layout='1']")
        await pin_at(page, *PIN)
        await page.click(f"{ROW.format('alpha')} button.add")
        await wait_decoding(page, 0)
        await page.click(f"{tile(0)} .tile-video")
        ptz = f"{tile(0)} .tile-tools .ptz"
        await page.wait_for_selector(f"{ptz}[data-presets='3']", state="visible")
        names = await page.locator(f"{ptz} select option").all_text_contents()
        assert names == ["Presets…", "Entrance", "Parking lot", "Loading dock"]

        # Keyboard only: the preset list, then its button.
        await page.focus(f"{ptz} select")
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("ArrowDown")
        assert await page.input_value(f"{ptz} select") == "2"
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        status = f"{tile(0)} .tile-tools .tool-status"
        await page.wait_for_selector(f"{status}[data-kind='ok']")
        assert await page.text_content(status) == "Camera turning to Parking lot"
        await poll(lambda: _counted(onvif.count("ptz-preset", "Lobby PTZ"), 1), timeout=10,
                   what="the camera to be told the preset")

        await page.click(f"{ptz} button[data-ptz='right']")
        await poll(lambda: _counted(onvif.count("ptz-move", "Lobby PTZ"), 1), timeout=10,
                   what="the camera to be told to pan")
        await page.click(f"{ptz} button[data-ptz='stop']")
        await poll(lambda: _counted(onvif.count("ptz-stop", "Lobby PTZ"), 1), timeout=10,
                   what="the camera to be told to stop")
        assert await page.text_content(status) == "Camera stopped"
        await page.screenshot(path=str(artifact("onvif-ptz-presets.png")))

        for action, details in (("ptz.preset", {"preset": "2", "name": "Parking lot"}),
                                ("ptz.move", {"pan": 0.5, "tilt": 0.0, "zoom": 0.0,
                                              "timeout": 0.5}),
                                ("ptz.stop", {})):
            audit = await client.get(f"/api/audit?action={action}&camera=alpha", headers=admin)
            entries = (await audit.json())["entries"]
            assert [(e["actor"], e["details"]) for e in entries] == [("analyst9", details)]

        # No purpose (no view grant): refused. An owner who does not allow PTZ: refused.
        headers = await token_for(client, admin, analyst)
        refused = await client.post("/api/cameras/alpha/ptz", headers=headers,
                                    json={"action": "preset", "preset": "1"})
        assert refused.status in (400, 403), await refused.text()
        refused = await client.post("/api/cameras/bravo/ptz?purpose=case+77", headers=headers,
                                    json={"action": "preset", "preset": "1"})
        assert refused.status == 403
        assert "does not allow PTZ" in (await refused.json())["error"]
        assert onvif.count("ptz-preset") == 1
        assert problems.errors == []
    finally:
        await context.close()


async def _counted(value: int, wanted: int) -> bool:
    return value >= wanted
