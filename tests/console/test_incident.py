"""Incidents from the console, drag and drop, and owner-supplied names shown as text."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from tests.console.conftest import XSS_NAME
from tests.console.helpers import (
    PageProblems,
    attr,
    tile,
    wait_decoding,
    wait_state,
)
from tests.fixtures.browser import artifact, poll

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROW = "#results li[data-camera-id='{}']"


async def test_an_incident_opens_emergency_cameras_and_names_stay_text(
    console_page: Page,
) -> None:
    page = console_page
    problems = PageProblems()
    problems.watch(page)
    await page.click("#layouts button[data-layout='4']")

    # The configured address places the pin; a name made of HTML is shown as its characters.
    await page.select_option("#places", label="1 Test Corner")
    await page.wait_for_selector("#results[data-mode=ranked] li.result")
    assert await page.text_content(f"{ROW.format('xss')} .cam-name") == XSS_NAME
    assert await page.locator("#results img").count() == 0
    await page.locator(ROW.format("xss")).hover()
    await page.wait_for_timeout(300)  # an on-error handler would have fired by now

    # echo is shared live only in an emergency: nobody may open it until an incident links it.
    assert await attr(page, ROW.format("echo"), "data-access") == "incident"
    assert await page.locator(f"{ROW.format('echo')} button.add").is_disabled()
    async with page.expect_response(lambda r: r.url.endswith("/api/incidents")
                                    and r.request.method == "POST") as opened:
        await page.click("#open-incident")
    incident = await (await opened.value).json()
    assert (await opened.value).status == 201
    assert incident["cameras"] == ["echo"]
    await poll(lambda: _access_is(page, "echo", "open"), timeout=10,
               what="echo to become viewable")
    assert incident["id"] in (await page.text_content("#incident-bar") or "")
    await poll(lambda: _text_has(page, ".pin-label", incident["id"]), timeout=5,
               what="the pin to become the incident")

    # Dragged onto tile 1 it plays, and the view names the incident (no purpose was typed).
    async with page.expect_request(lambda r: r.method == "POST" and "/view/echo?" in r.url
                                   ) as posted:
        await page.drag_and_drop(ROW.format("echo"), tile(0))
    assert f"incident={incident['id']}" in (await posted.value).url
    assert "purpose=" not in (await posted.value).url
    await wait_decoding(page, 0)

    # The HTML-named camera dragged onto tile 2 plays under its literal name.
    await page.drag_and_drop(ROW.format("xss"), tile(1))
    await wait_decoding(page, 1)
    assert await page.text_content(f"{tile(1)} .tile-name") == XSS_NAME
    assert await page.locator("#wall img").count() == 0
    # A tile dragged onto another swaps them.
    await page.drag_and_drop(f"{tile(1)} .tile-top", tile(2))
    await poll(lambda: _tile_camera_is(page, 2, "xss"), timeout=5, what="the swap")
    assert await attr(page, tile(1), "data-camera") == ""
    await wait_decoding(page, 2)
    await page.screenshot(path=artifact("console-incident.png"))

    # Closing the incident ends the emergency camera's view; the tile says why, not "live".
    await page.click("#close-incident")
    await poll(lambda: _access_is(page, "echo", "incident"), timeout=10,
               what="echo to need an incident again")
    await wait_state(page, 0, "refused", timeout=20)
    message = await page.text_content(f"{tile(0)} .tile-message") or ""
    assert "emergency" in message, message
    assert problems.dialogs == []
    assert problems.errors == []


async def _access_is(page: Page, camera_id: str, kind: str) -> bool:
    return await attr(page, ROW.format(camera_id), "data-access") == kind


async def _tile_camera_is(page: Page, index: int, camera_id: str) -> bool:
    return await attr(page, tile(index), "data-camera") == camera_id


async def _text_has(page: Page, selector: str, text: str) -> bool:
    return text in (await page.text_content(selector) or "")
