"""The incident board in headless Chromium: a CAD incident posted by an integration account
appears on every console with its ranked cameras; "Put on wall" makes it the console's incident
and purpose and pins its place; the CAD closing it takes it off the board."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from rtcc.config import EmergencyPolicy, IncidentsConfig
from rtcc.policy import Role
from server.app import create_app
from tests.console.conftest import PIN, ConsoleServer, console_settings, pair
from tests.console.helpers import PageProblems, wall_cameras
from tests.fixtures.auth import MakeClient, bearer, create_user, role_headers
from tests.fixtures.browser import artifact, login_form, poll
from tests.fixtures.camsim import CamsimFactory
from tests.incidents.eidos import eido, tracking_id

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ITEM = "#board-list li.board-item[data-incident-id='{}']"


@pytest.fixture
async def board_server(tmp_path: Path, camsim_factory: CamsimFactory, bootstrap_token: str,
                       make_client: MakeClient) -> ConsoleServer:
    alpha_sim = await camsim_factory(pair("alpha"))
    others_sim = await camsim_factory(pair("bravo") + pair("charlie") + pair("delta")
                                      + pair("echo"))
    settings = console_settings(tmp_path, alpha_sim, others_sim).model_copy(update={
        "incidents": IncidentsConfig(emergency_policies={
            "SHOTS": EmergencyPolicy(unlock=True, minutes=30)})})
    client = await make_client(create_app(settings))
    admin = bearer(bootstrap_token)
    analyst = await create_user(client, admin, Role.ANALYST, username="analyst8")
    return ConsoleServer(client, str(client.make_url("")).rstrip("/"), alpha_sim, others_sim,
                         admin, analyst)


@pytest.fixture
async def board_page(board_server: ConsoleServer, chromium: Browser) -> AsyncIterator[Page]:
    context = await chromium.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    try:
        server = board_server
        await login_form(page, server.base, server.analyst.username, server.analyst.password,
                         server.analyst.next_code())
        await page.wait_for_selector("body[data-ready=true]")
        yield page
    finally:
        await context.close()


async def test_a_cad_incident_arrives_on_the_board_and_goes_on_the_wall(
        board_server: ConsoleServer, board_page: Page) -> None:
    page = board_page
    problems = PageProblems()
    problems.watch(page)
    client = board_server.client
    _, cad = await role_headers(client, board_server.admin, Role.INTEGRATION)
    posted = await client.post("/api/cad/eido", json=eido(7, lat=PIN[0], lon=PIN[1]),
                               headers=cad)
    assert posted.status == 200, await posted.text()
    sid = (await posted.json())["accepted"][0]["security_incident_id"]

    item = ITEM.format(tracking_id(7))
    await page.wait_for_selector(item)
    assert await page.get_attribute(item, "data-security-id") == sid
    await page.wait_for_selector(f"{item} .board-cams li[data-camera-id='echo']")
    assert await page.get_attribute(f"{item} .board-cams li[data-camera-id='echo']",
                                    "data-unlocked") == "true"

    await page.click(f"{item} button.board-wall")
    await poll(lambda: page.input_value("#purpose"), timeout=10, what="the purpose")
    assert sid in await page.input_value("#purpose")
    await poll(lambda: _bar_names(page, sid), timeout=10, what="the incident bar")
    await page.wait_for_selector("#results[data-mode=ranked] li.result")
    await poll(lambda: _wall_filled(page), timeout=15, what="cameras on the wall")
    await page.screenshot(path=str(artifact("incident-board.png")))

    closed = await client.post("/api/cad/eido", json=eido(7, minute=3, status="CLSD",
                                                         lat=PIN[0], lon=PIN[1]), headers=cad)
    assert closed.status == 200
    await page.wait_for_selector(item, state="detached")
    assert problems.errors == []


async def _bar_names(page: Page, sid: str) -> bool:
    return sid in (await page.text_content("#incident-bar") or "")


async def _wall_filled(page: Page) -> bool:
    return any(await wall_cameras(page))
