"""The analyst's tools on the wall, in headless Chromium: finding a camera or an address (geocoded
offline against the department's address points), the keyboard help, the camera health list
with its tone when a camera on the wall drops, and saved walls shown in a second window."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from rtcc.policy import Role
from tests.console.conftest import ADDRESS, PIN, ConsoleServer
from tests.console.helpers import (
    PageProblems,
    attr,
    pin_at,
    tile,
    wait_decoding,
    wait_state,
    wall_cameras,
)
from tests.fixtures.auth import role_headers
from tests.fixtures.browser import artifact, poll

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FOUND = "#find-results li[data-kind='{}']"
CAMERA_ROW = "#find-results li[data-camera-id='{}']"


async def _find(page: Page, text: str) -> None:
    """Type into the search box and wait for the results of exactly this text."""
    await page.fill("#find-text", text)
    await page.wait_for_selector(f"#find-results[data-query='{text}']")


async def _purpose(page: Page, text: str) -> None:
    await page.fill("#purpose", text)
    await page.press("#purpose", "Enter")


async def test_find_a_camera_or_an_address_and_the_keyboard_help(console_page: Page) -> None:
    page = console_page
    problems = PageProblems()
    problems.watch(page)
    await _purpose(page, "case 41")

    # By part of the name: the camera, its status, and buttons to show it or put it on the wall.
    await _find(page, "bank")
    rows = page.locator("#find-results li")
    assert await rows.count() == 1
    assert "Bravo Bank ATM" in (await rows.first.text_content() or "")
    await page.click(f"{CAMERA_ROW.format('bravo')} button:text('Show')")
    await poll(lambda: _body_attr_is(page, "data-shown-camera", "bravo"), timeout=10,
               what="the map to show bravo")
    await page.click(f"{CAMERA_ROW.format('bravo')} button:text('Add to wall')")
    await poll(lambda: _wall_has(page, "bravo"), timeout=10, what="bravo on the wall")
    index = (await wall_cameras(page)).index("bravo")
    await wait_decoding(page, index)

    # By id; a name with HTML in it stays text.
    await _find(page, "xss")
    assert await page.locator(CAMERA_ROW.format("xss")).count() == 1
    assert "<img" in (await page.text_content(CAMERA_ROW.format("xss")) or "")
    assert await page.locator("#find-results img").count() == 0

    # A street address: the department's address point first, and the camera named after it.
    await _find(page, "12 Oak St")
    assert "12 Oak St, Springfield" in (await page.text_content(FOUND.format("address")) or "")
    assert await page.locator(CAMERA_ROW.format("doorbell")).count() == 1
    await page.screenshot(path=artifact("console-find.png"))

    # Enter pins the address: the ranked cameras around it follow.
    await page.fill("#find-text", ADDRESS)
    await page.press("#find-text", "Enter")
    await poll(lambda: _text_has(page, "#pin-info", f"{ADDRESS}, Springfield"), timeout=10,
               what="the pin on the address")
    await page.wait_for_selector("#results[data-mode=ranked] li.result[data-camera-id='alpha']")

    # An address the points do not hold says so; nothing is pinned elsewhere.
    await _find(page, "999 Nowhere Rd")
    none = await page.text_content(FOUND.format("none")) or ""
    assert "no address point matches" in none, none

    # "?" opens the shortcuts, Escape closes them; "/" goes to the search box.
    await page.press("#find-text", "Escape")
    await page.keyboard.press("?")
    await page.wait_for_selector("#help:not([hidden])")
    help_text = await page.text_content("#help") or ""
    for shortcut in ("Focus a tile", "Full screen", "Find a camera", "This help"):
        assert shortcut in help_text, help_text
    await page.keyboard.press("Escape")
    await page.wait_for_selector("#help", state="hidden")
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement && document.activeElement.id") == \
        "find-text"
    await page.click("#help-button")
    await page.wait_for_selector("#help:not([hidden])")
    await page.click("#help-close")
    await page.wait_for_selector("#help", state="hidden")
    assert not problems.errors, problems.errors


async def test_camera_health_lists_a_dropped_camera_and_sounds_for_the_wall(
    console_server: ConsoleServer, console_page: Page
) -> None:
    page = console_page
    problems = PageProblems()
    problems.watch(page)
    await _purpose(page, "case 42")
    assert await page.locator("#health-list li").count() == 0
    assert await page.text_content("#health-count") == "0"

    await _find(page, "alpha")
    await page.click(f"{CAMERA_ROW.format('alpha')} button:text('Add to wall')")
    await poll(lambda: _wall_has(page, "alpha"), timeout=10, what="alpha on the wall")
    index = (await wall_cameras(page)).index("alpha")
    await wait_decoding(page, index)

    # The camera drops: its tile says so, the health list names it (on the wall), a tone plays.
    await console_server.alpha_sim.stop()
    await wait_state(page, index, "reconnecting", timeout=20)
    row = "#health-list li[data-camera-id='alpha']"
    await page.wait_for_selector(row, timeout=20_000)
    text = await page.text_content(row) or ""
    assert "Alpha Ave & 1st, northbound" in text, text
    assert "on the wall" in text, text
    assert await attr(page, row, "data-status") in {"reconnecting", "error"}
    assert await page.text_content("#health-count") == "1"
    assert int(await attr(page, "body", "data-drop-alerts") or "0") == 1
    assert int(await attr(page, "body", "data-tones-played") or "0") == 1
    await page.screenshot(path=artifact("console-health.png"))

    # Back: the tile plays again and the camera leaves the list.
    await console_server.alpha_sim.start()
    await wait_state(page, index, "live", timeout=45)
    await page.wait_for_selector(row, state="detached", timeout=30_000)
    assert await page.text_content("#health-count") == "0"
    assert not problems.errors, problems.errors


async def test_saved_walls_shared_and_a_second_window_with_its_own_wall(
    console_server: ConsoleServer, console_page: Page
) -> None:
    page = console_page
    problems = PageProblems()
    problems.watch(page)
    await _purpose(page, "case 43")
    await pin_at(page, *PIN)
    await page.click("#auto-wall")
    await poll(lambda: _wall_full(page), timeout=15, what="auto-wall to fill the 2x2")
    saved = await wall_cameras(page)

    # Save it for everyone.
    await page.click("#walls summary")
    await page.fill("#wall-save-name", "Night shift")
    await page.check("#wall-shared")
    await page.click("#wall-save")
    await poll(lambda: _text_has(page, "#walls-info", "Saved “Night shift” for everyone"),
               timeout=10, what="the wall to be saved")
    # And a personal one, which nobody else sees.
    await page.fill("#wall-save-name", "Mine only")
    await page.uncheck("#wall-shared")
    await page.click("#wall-save")
    await poll(lambda: _text_has(page, "#walls-info", "Saved “Mine only”"), timeout=10,
               what="the personal wall to be saved")

    # Another analyst sees the shared wall, not the personal one, and may not remove it.
    _, headers = await role_headers(console_server.client, console_server.admin, Role.ANALYST)
    listed = await (await console_server.client.get("/api/console/layouts",
                                                    headers=headers)).json()
    names = {(w["name"], w["shared"]) for w in listed["layouts"]}
    assert names == {("Night shift", True)}, names
    refused = await console_server.client.delete(
        "/api/console/layouts?name=Night%20shift&shared=true", headers=headers)
    assert refused.status == 403, await refused.text()
    assert "analyst7" in (await refused.json())["error"]

    # A second window for another monitor shows the saved wall, wall only.
    second = await page.context.new_page()
    second.set_default_timeout(20_000)
    second_problems = PageProblems()
    second_problems.watch(second)
    await second.goto(f"{console_server.base}/console/?wall=Night%20shift")
    await second.wait_for_selector("body[data-ready=true]")
    await _purpose(second, "case 43")
    assert await second.get_attribute("body", "data-wall-loaded") == "Night shift"
    assert await wall_cameras(second) == saved
    assert await second.locator("#side").is_hidden()
    assert "Night shift" in (await second.text_content("h1") or "")
    await wait_decoding(second, 0)
    await second.screenshot(path=artifact("console-second-window.png"))

    # Each window has its own wall: closing a tile there leaves the first window's wall alone.
    await second.click(f"{tile(1)} .tile-close")
    await poll(lambda: _tile_camera_is(second, 1, ""), timeout=10, what="tile 2 emptied")
    await second.reload()
    await second.wait_for_selector("body[data-ready=true]")
    assert (await wall_cameras(second))[1] == ""
    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    assert await wall_cameras(page) == saved

    # Delete the personal wall; the shared one stays.
    await page.click("#walls summary")
    await page.select_option("#wall-pick", label="Mine only (4 cameras)")
    await page.click("#wall-delete")
    await poll(lambda: _text_has(page, "#walls-info", "Deleted “Mine only”"), timeout=10,
               what="the wall to be deleted")
    options = await page.locator("#wall-pick option").all_text_contents()
    assert not any("Mine only" in o for o in options), options
    assert any(o.startswith("Night shift") for o in options), options
    assert not problems.errors, problems.errors
    assert not second_problems.errors, second_problems.errors


async def _body_attr_is(page: Page, name: str, value: str) -> bool:
    return await attr(page, "body", name) == value


async def _text_has(page: Page, selector: str, text: str) -> bool:
    return text in (await page.text_content(selector) or "")


async def _wall_has(page: Page, camera_id: str) -> bool:
    return camera_id in await wall_cameras(page)


async def _wall_full(page: Page) -> bool:
    cameras = await wall_cameras(page)
    return len(cameras) == 4 and all(cameras)


async def _tile_camera_is(page: Page, index: int, camera_id: str) -> bool:
    return await attr(page, tile(index), "data-camera") == camera_id
