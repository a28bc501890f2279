"""The wall over standby connections, in headless Chromium: a pin fills a 2x2 wall whose tiles
play over connections opened before the pin (one per tile plus a spare, no WHEP view), and a
tile whose camera's sharing is withdrawn stops and says why."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from tests.console.conftest import LIVE, PIN, ConsoleServer
from tests.console.helpers import (
    PageProblems,
    attr,
    frames,
    pin_at,
    tile,
    wait_decoding,
    wait_state,
)
from tests.fixtures.browser import poll

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def _links(server: ConsoleServer, page: Page) -> dict[str, object]:
    cookies = await page.context.cookies()
    jar = "; ".join(f"{c['name']}={c['value']}" for c in cookies)
    response = await server.client.get("/wall/links", headers={"Cookie": jar})
    assert response.status == 200
    data: dict[str, object] = await response.json()
    return data


async def test_a_pin_plays_four_tiles_over_standby_connections_and_a_withdrawn_camera_stops(
    console_server: ConsoleServer, console_page: Page
) -> None:
    page = console_page
    problems = PageProblems()
    problems.watch(page)
    whep_posts: list[str] = []
    page.on("request", lambda r: whep_posts.append(r.url)
            if r.method == "POST" and "/whep/" in r.url else None)
    await page.fill("#purpose", "test case 8")
    await page.press("#purpose", "Enter")
    # The standby connections are up before any camera is chosen: four tiles and a spare.
    await poll(lambda: _connected(console_server, page, 5), timeout=15,
               what="5 connected wall links")

    await page.check("#auto-on-pin")
    await poll(lambda: _settled(page), timeout=15, what="the map's first cameras listed")
    access_checks: list[str] = []
    searches: list[str] = []
    page.on("request", lambda r: access_checks.append(r.url)
            if "/api/console/access" in r.url else None)
    page.on("request", lambda r: searches.append(r.url)
            if "/api/cameras?" in r.url else None)
    await pin_at(page, *PIN)
    for index in range(4):
        await wait_decoding(page, index)
    # The search answered with each camera's access decision: no separate check was asked.
    assert searches
    assert all("access=1" in url for url in searches), searches
    assert access_checks == []
    shown = [await attr(page, tile(i), "data-camera") for i in range(4)]
    assert shown == list(LIVE)
    links = await _links(console_server, page)
    assert links["links"] == 5, links
    assert links["bound"] == 4, links
    assert await page.get_attribute("body", "data-peer-connections") == "5"
    assert whep_posts == []

    # The owner of the camera on tile 2 withdraws it: the view ends, frames stop, the tile says
    # why; the connection goes back to the pool.
    camera = shown[1]
    changed = await console_server.client.patch(f"/api/cameras/{camera}",
                                                headers=console_server.admin,
                                                json={"sharing": "registry_only"})
    assert changed.status == 200, await changed.text()
    await wait_state(page, 1, "refused", timeout=30)
    message = await page.text_content(f"{tile(1)} .tile-message") or ""
    assert "Not shown" in message, message
    stopped = await frames(page, 1)
    others = await frames(page, 0)
    await wait_decoding(page, 0, more_than=others + 10)
    assert await frames(page, 1) == stopped
    links = await _links(console_server, page)
    assert links["bound"] == 3, links
    assert problems.errors == []


async def _settled(page: Page) -> bool:
    # The in-view list asks about access once on load; the pin comes after that answer.
    return bool(await page.evaluate(
        "() => !document.querySelector('#results li[data-access=\"unknown\"]')"))


async def _connected(server: ConsoleServer, page: Page, count: int) -> bool:
    links = await _links(server, page)
    items = links["items"]
    assert isinstance(items, list)
    return sum(1 for item in items if item["state"] == "connected") >= count
