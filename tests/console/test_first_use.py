"""What a new analyst runs into on the wall, the map and the player, in headless Chromium at
1600x900: a refused tile plays again when the owner shares the camera again, frame rates read
from the decoder, "wall only" without failing searches, reasons without internal ids, typed
coordinates in the usual forms, and the one-camera player."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, Response

from tests.console.conftest import PIN, ConsoleServer
from tests.console.helpers import (
    PageProblems,
    attr,
    pin_at,
    ranked_ids,
    tile,
    wait_decoding,
    wait_state,
)
from tests.fixtures.browser import poll

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROW = "#results li[data-camera-id='{}']"
FPS = re.compile(r"(\d+) fps")
SIM_FPS = 15
"""What every simulated camera sends (tests/console/conftest.py)."""


async def _share(server: ConsoleServer, camera_id: str, sharing: str) -> None:
    response = await server.client.patch(f"/api/cameras/{camera_id}", json={"sharing": sharing},
                                          headers=server.admin)
    assert response.status == 200, await response.text()


async def _stats_fps(page: Page) -> list[int | None]:
    lines: list[str] = await page.locator("#wall .tile .tile-stats").evaluate_all(
        "(nodes) => nodes.map((node) => node.textContent || '')")
    found = [FPS.search(line) for line in lines]
    return [int(m.group(1)) if m else None for m in found]


async def test_frame_rates_and_a_refused_tile_that_plays_again(
    console_server: ConsoleServer, console_page: Page
) -> None:
    page = console_page
    await page.set_viewport_size({"width": 1600, "height": 900})
    problems = PageProblems()
    problems.watch(page)
    await page.fill("#purpose", "case 31")
    await page.press("#purpose", "Enter")
    await page.check("#auto-on-pin")

    # One tile first, then a re-pin with "fill the wall on pin" on a 2x2: every tile gets a
    # new stream, and the rates it shows are what the decoder counts, never a burst.
    await page.click("#layouts button[data-layout='1']")
    await pin_at(page, *PIN)
    await wait_decoding(page, 0)
    await page.click("#layouts button[data-layout='4']")
    await pin_at(page, PIN[0] + 0.00001, PIN[1])
    for index in range(4):
        await wait_decoding(page, index)
    seen: list[int] = []

    async def every_tile_shows_a_rate() -> bool:
        rates = await _stats_fps(page)
        seen.extend(rate for rate in rates if rate is not None)
        return len(rates) == 4 and all(rate is not None for rate in rates)

    await poll(every_tile_shows_a_rate, timeout=20, interval=0.1,
               what="a frame rate on every tile")
    for _ in range(20):  # a few more readings, as they change
        await every_tile_shows_a_rate()
        await page.wait_for_timeout(100)
    assert seen
    assert max(seen) <= 2 * SIM_FPS, seen
    assert min(seen) >= 1, seen

    # The owner stops sharing alpha live: its tile is refused, and the list says so too.
    await _share(console_server, "alpha", "registry_only")
    await wait_state(page, 0, "refused", timeout=40)
    assert "Not shown" in (await page.text_content(f"{tile(0)} .tile-message") or "")
    await poll(lambda: _access_is(page, "alpha", "closed"), timeout=10,
               what="the ranked list to show alpha closed")

    # Shared live again: the same tile plays by itself (no remove and re-add), and the list
    # says it may be opened.
    await _share(console_server, "alpha", "live_always")
    await wait_state(page, 0, "live", timeout=40)
    await wait_decoding(page, 0)
    assert await attr(page, tile(0), "data-camera") == "alpha"
    await poll(lambda: _access_is(page, "alpha", "open"), timeout=10,
               what="the ranked list to show alpha open again")
    assert problems.errors == []


async def test_locations_wall_only_reasons_and_the_player(
    console_server: ConsoleServer, console_page: Page
) -> None:
    page = console_page
    await page.set_viewport_size({"width": 1600, "height": 900})
    problems = PageProblems()
    problems.watch(page)
    info = "#pin-info"
    lat, lon = PIN

    # Swapped (longitude first): read the right way round, and said so.
    await pin_at(page, lon, lat)
    text = await page.text_content(info) or ""
    assert f"read as {lat:.5f}, {lon:.5f} (latitude first)" in text, text
    assert (await ranked_ids(page))[0] == "alpha"
    # Hemisphere letters and degrees-minutes-seconds: 39°48'00"N 89°38'42"W is the corner.
    for typed in (f"{lat} N, {-lon} W", "39°48'00\"N 89°38'42\"W"):
        before = await page.evaluate("document.body.dataset.resultsAt || ''")
        await page.fill("#coords", typed)
        await page.click("#locate button[type=submit]")
        await page.wait_for_function(
            "(before) => (document.body.dataset.resultsAt || '') !== before", arg=before)
        assert (await ranked_ids(page))[0] == "alpha", typed
        assert await attr(page, ".pin-icon", "data-pin") == f"{lat:.5f}, {lon:.5f}", typed
    # A bad entry removes the old pin and its list, and says what is wrong.
    await page.fill("#coords", "39.8, west")
    await page.click("#locate button[type=submit]")
    await poll(lambda: _text_has(page, info, "Not a location"), timeout=5,
               what="the entry to be refused")
    assert "west" in (await page.text_content(info) or "")
    assert await page.locator(".pin-icon").count() == 0
    assert await attr(page, "#results", "data-mode") != "ranked"

    # "Wall only" hides the map: no search of a map without a size; shown again, it lists.
    searches: list[Response] = []
    page.on("response", lambda r: searches.append(r) if "/api/cameras/search" in r.url
            else None)
    await page.click("#toggle-panel")
    await page.wait_for_timeout(1500)  # long enough for the moveend a resize triggers
    assert [r.status for r in searches if r.status >= 400] == []
    await page.click("#toggle-panel")
    await poll(lambda: _text_matches(page, ".map-note", r"^\d+ cameras? in view$"), timeout=10,
               what="the map note to count the cameras in view")
    assert [r.status for r in searches if r.status >= 400] == []

    # A camera that cannot be reached: the tile names it and gives the reason, no internal id.
    await console_server.alpha_sim.stop()
    await page.fill("#purpose", "case 32")
    await page.press("#purpose", "Enter")
    await page.click("#layouts button[data-layout='1']")
    await pin_at(page, *PIN)
    await page.click(f"{ROW.format('alpha')} button.add")
    await poll(lambda: _text_has(page, f"{tile(0)} .tile-message", "Camera unavailable"),
               timeout=40, what="tile 1 to say the camera is unavailable")
    message = await page.text_content(f"{tile(0)} .tile-message") or ""
    assert "camera alpha" not in message.lower(), message
    assert await page.text_content(f"{tile(0)} .tile-name") == "Alpha Ave & 1st, northbound"
    await console_server.alpha_sim.start()

    # The player: the camera's name as heading, refusals as sentences, the picture in the window.
    await page.goto(f"{console_server.base}/play/bravo")
    await poll(lambda: _text_has(page, "h1", "Bravo Bank ATM"), timeout=10,
               what="the player to name the camera")
    await page.fill("#purpose", "case 33")
    await page.click("#play")
    await poll(lambda: _text_has(page, "#status", "Live."), timeout=30, what="bravo to play")
    box = await page.locator("#video").bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= 900, box
    assert box["x"] + box["width"] <= 1600, box
    await page.goto(f"{console_server.base}/play/doorbell")
    await poll(lambda: _text_has(page, "h1", "12 Oak St doorbell"), timeout=10,
               what="the player to name the doorbell")
    await page.fill("#purpose", "case 34")
    await page.click("#play")
    await poll(lambda: _text_has(page, "#status", "may not be viewed"), timeout=30,
               what="the doorbell to be refused")
    status = await page.text_content("#status") or ""
    assert "{" not in status, status
    assert problems.errors == []


async def _access_is(page: Page, camera_id: str, kind: str) -> bool:
    return await attr(page, ROW.format(camera_id), "data-access") == kind


async def _text_has(page: Page, selector: str, text: str) -> bool:
    return text in (await page.text_content(selector, timeout=2000) or "")


async def _text_matches(page: Page, selector: str, pattern: str) -> bool:
    return re.search(pattern, (await page.text_content(selector, timeout=2000) or "").strip()) \
        is not None


