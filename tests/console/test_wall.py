"""The analyst wall in headless Debian Chromium against the real application and simulated
RTSP cameras: pin, ranking, auto-wall, decoding tiles, focus to the main profile, a camera that
goes away and comes back, a reload that keeps the wall, and a tile that ends its view."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from tests.console.conftest import LIVE, PIN, ConsoleServer
from tests.console.helpers import (
    PageProblems,
    attr,
    frames,
    pin_at,
    ranked_ids,
    tile,
    wait_decoding,
    wait_state,
    wall_cameras,
)
from tests.fixtures.browser import artifact, poll

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def test_pin_to_a_live_wall_that_survives_a_camera_restart_and_a_reload(
    console_server: ConsoleServer, console_page: Page
) -> None:
    page = console_page
    problems = PageProblems()
    problems.watch(page)

    # The map shows every camera of the area, on a plain background (no tiles configured).
    markers = page.locator("path.cam-marker[data-camera-id]")
    await poll(lambda: _count_at_least(markers, 7), timeout=10, what="7 camera markers")
    assert await page.locator(".leaflet-control-scale-line").count() >= 1
    assert await page.locator(".leaflet-tile").count() == 0

    # A click on the map drops the incident pin and ranks the cameras around it.
    box = await page.locator("#map").bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.wait_for_selector(".pin-icon[data-pin]")
    await page.wait_for_selector("#results[data-mode=ranked] li.result")
    assert "pin" in (await page.text_content(".map-coords") or "")

    # Typed coordinates place it exactly: seeing cameras first (nearest first), then the others.
    await pin_at(page, *PIN)
    ranked = await ranked_ids(page)
    assert ranked[:5] == ["alpha", "echo", "bravo", "charlie", "delta"], ranked
    assert set(ranked[5:]) == {"doorbell", "xss"}
    row = "#results li[data-camera-id='{}']"
    assert await attr(page, row.format("alpha"), "data-access") == "open"
    assert await attr(page, row.format("echo"), "data-access") == "incident"
    assert await attr(page, row.format("doorbell"), "data-access") == "closed"
    assert "location only" in (await page.text_content(row.format("doorbell")) or "")

    # Auto-wall fills the 2x2 with the four best cameras that may be opened (echo may not).
    await page.fill("#purpose", "test case 7")
    await page.press("#purpose", "Enter")
    await page.click("#layouts button[data-layout='4']")
    binds: list[tuple[str, str]] = []  # cameras bound to the wall's standby connections
    page.on("request", lambda r: binds.append((r.url, r.post_data or ""))
            if r.method == "POST" and "/view" in r.url else None)
    await page.click("#auto-wall")
    for index in range(4):
        await wait_decoding(page, index)
    assert await wall_cameras(page) == list(LIVE)
    # The four tiles were bound with one request.
    assert len(binds) == 1, binds
    url, body = binds[0]
    assert "/wall/links/views?" in url, url
    assert "purpose=test+case+7" in url, url
    asked = json.loads(body)["views"]
    assert sorted(item["camera"] for item in asked) == sorted(LIVE)
    assert all(item["profile"] == "sub" for item in asked)
    for index in range(4):
        assert await attr(page, tile(index), "data-profile") == "sub"
        assert await attr(page, tile(index), "data-state") == "live"
    await poll(lambda: _has_attr(page, tile(0), "data-latency-ms"), timeout=5,
               what="a measured latency")
    await page.wait_for_timeout(600)  # a fresh stats line on every tile for the picture
    shot = artifact("console-wall.png")
    await page.screenshot(path=shot)
    # The README's picture: written when missing, or refreshed with RTCC_UPDATE_DOCS=1.
    wanted = os.environ.get("RTCC_UPDATE_DOCS") == "1" or not (DOCS / "wall.png").exists()
    if wanted and shot.stat().st_size < 300 * 1024:
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / "wall.png")

    # Key 2 focuses tile 2: it switches to the main profile (a new view, then the swap).
    async with page.expect_request(lambda r: r.method == "POST" and "/view/bravo?" in r.url
                                   and "profile=main" in r.url) as focused:
        await page.keyboard.press("2")
    assert (await focused.value).url
    await poll(lambda: _attr_is(page, tile(1), "data-profile", "main"), timeout=20,
               what="tile 2 to play the main profile")
    await wait_decoding(page, 1)
    assert await attr(page, tile(1), "data-focused") == "true"
    await page.screenshot(path=artifact("console-focus.png"))

    # F: the focused tile fills the wall; Esc brings the grid back.
    await page.keyboard.press("f")
    assert "solo" in (await attr(page, "#wall", "class"))
    assert await page.locator(tile(0)).is_hidden()
    await page.keyboard.press("Escape")
    await poll(lambda: _attr_is(page, "#wall", "class", ""), timeout=5, what="the grid back")
    assert await page.locator(tile(0)).is_visible()

    # Camera alpha goes away: its tile says so, the map marks it, and it plays again by itself.
    await console_server.alpha_sim.stop()
    await wait_state(page, 0, "reconnecting", timeout=15)
    assert "reconnecting" in (await page.text_content(f"{tile(0)} .tile-message") or "").lower()
    await poll(lambda: _marker_status_in(page, "alpha", {"reconnecting", "error"}), timeout=15,
               what="alpha's marker to show the camera offline")
    for index in (1, 2, 3):
        assert await attr(page, tile(index), "data-state") == "live"
    await page.screenshot(path=artifact("console-reconnecting.png"))
    await console_server.alpha_sim.start()
    await wait_state(page, 0, "live", timeout=40)
    await wait_decoding(page, 0, more_than=await frames(page, 0))
    await poll(lambda: _marker_status_in(page, "alpha", {"live"}), timeout=15,
               what="alpha's marker to show it live again")

    # A reload brings back the layout (now 3x3), the cameras and the focus, and they play.
    await page.click("#layouts button[data-layout='9']")
    assert await page.locator("#wall .tile").count() == 9
    last_entry = (await _view_stops(console_server, 0))[-1]["id"]
    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    assert await attr(page, "#wall", "data-layout") == "9"
    assert await wall_cameras(page) == [*LIVE, "", "", "", "", ""]
    for index in range(4):
        await wait_decoding(page, index)
    await poll(lambda: _attr_is(page, tile(1), "data-profile", "main"), timeout=20,
               what="the focused tile on main after the reload")
    # Leaving the page ended its views with keepalive DELETEs: the server logged each as ended
    # by the viewer, not as a connection that went away.
    # The DELETEs are sent as the page unloads; their audit entries land moments later.
    async def ended_by_viewer() -> set[str] | None:
        stops = await _view_stops(console_server, last_entry)
        ended = {e["camera_id"] for e in stops
                 if e["details"].get("reason") == "viewer ended the session"}
        return ended if set(LIVE) <= ended else None

    await poll(ended_by_viewer, timeout=45, what="a view.stop by the viewer for every tile")

    # Closing a tile ends its view on the server.
    async with page.expect_request(lambda r: r.method == "DELETE" and "/wall/links/" in r.url
                                   and r.url.endswith("/view")) as deleted:
        await page.click(f"{tile(3)} .tile-close")
    response = await (await deleted.value).response()
    assert response is not None
    assert response.status == 200
    assert await attr(page, tile(3), "data-state") == "empty"
    assert problems.errors == []


async def _count_at_least(locator: object, n: int) -> bool:
    return await locator.count() >= n  # type: ignore[attr-defined, no-any-return]


async def _has_attr(page: Page, selector: str, name: str) -> bool:
    return bool(await attr(page, selector, name))


async def _attr_is(page: Page, selector: str, name: str, value: str) -> bool:
    return await attr(page, selector, name) == value


async def _marker_status_in(page: Page, camera_id: str, statuses: set[str]) -> bool:
    status = await attr(page, f"path.cam-marker[data-camera-id='{camera_id}']", "data-status")
    return status in statuses


async def _view_stops(server: ConsoleServer, after_id: int) -> list[dict[str, Any]]:
    response = await server.client.get("/api/audit?action=view.stop&limit=500",
                                       headers=server.admin)
    assert response.status == 200
    entries = (await response.json())["entries"]
    return sorted((e for e in entries if e["id"] > after_id), key=lambda e: e["id"])
