"""The map and the focused tile as an analyst uses them, in headless Chromium: a basemap this
server serves from its own MBTiles file, camera markers grouped at city zoom, a camera's popup
whole and usable on a 1280x720 screen; a still of a tile taken into a case (the server's picture,
hashed, held and audited), digital zoom, and camera control shown only where the owner allows
it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Browser, Locator, Page

from evidence.context import evidence_root
from rtcc.config import ConsoleConfig, Place, Settings
from rtcc.policy import Role
from server.app import create_app
from server.demo_basemap import write_basemap
from tests.console.conftest import PIN, ConsoleServer, console_settings, pair
from tests.console.helpers import PageProblems, attr, pin_at, tile, wait_decoding
from tests.fixtures.auth import MakeClient, bearer, create_user
from tests.fixtures.browser import artifact, login_form, poll
from tests.fixtures.camsim import CamsimFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADDRESS_POINTS = Path(__file__).parents[2] / "configs" / "demo-address-points.csv"
ROW = "#results li[data-camera-id='{}']"


class ToolsServer(ConsoleServer):
    settings: Settings


@pytest.fixture
async def tools_server(tmp_path: Path, camsim_factory: CamsimFactory, bootstrap_token: str,
                       make_client: MakeClient) -> ToolsServer:
    alpha_sim = await camsim_factory(pair("alpha"))
    others_sim = await camsim_factory(pair("bravo") + pair("charlie") + pair("delta")
                                      + pair("echo"))
    tiles = tmp_path / "basemap.mbtiles"
    assert write_basemap(ADDRESS_POINTS, tiles) > 0
    base = console_settings(tmp_path, alpha_sim, others_sim)
    settings = base.model_copy(update={"console": ConsoleConfig(
        places=[Place(name="1 Test Corner", lat=PIN[0], lon=PIN[1])], tiles_path=tiles)})
    client = await make_client(create_app(settings))
    admin = bearer(bootstrap_token)
    analyst = await create_user(client, admin, Role.ANALYST, username="analyst9",
                                display_name="Analyst Nine")
    server = ToolsServer(client, str(client.make_url("")).rstrip("/"), alpha_sim, others_sim,
                         admin, analyst)
    server.settings = settings
    return server


@pytest.fixture
async def small_page(tools_server: ToolsServer, chromium: Browser) -> AsyncIterator[Page]:
    context = await chromium.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    try:
        server = tools_server
        await login_form(page, server.base, server.analyst.username, server.analyst.password,
                         server.analyst.next_code())
        await page.wait_for_selector("body[data-ready=true]")
        yield page
    finally:
        await context.close()


async def _inside(page: Page, inner: str, outer: str) -> bool:
    a = await page.locator(inner).first.bounding_box()
    b = await page.locator(outer).bounding_box()
    assert a is not None
    assert b is not None
    return (a["x"] >= b["x"] - 1 and a["y"] >= b["y"] - 1
            and a["x"] + a["width"] <= b["x"] + b["width"] + 1
            and a["y"] + a["height"] <= b["y"] + b["height"] + 1)


async def test_basemap_clusters_and_a_whole_popup_at_1280x720(
    tools_server: ToolsServer, small_page: Page
) -> None:
    page = small_page
    problems = PageProblems()
    problems.watch(page)
    # The basemap comes from this server's own tile file.
    loaded = page.locator("#map img.leaflet-tile-loaded[src*='/tiles/']")
    await poll(lambda: _any(loaded), timeout=15, what="basemap tiles shown")
    src = await loaded.first.get_attribute("src") or ""
    response = await tools_server.client.get(src[src.index("/tiles/"):])
    assert response.status == 200
    assert response.content_type == "image/png"
    assert (await response.read()).startswith(b"\x89PNG")
    missing = await tools_server.client.get("/tiles/3/1/1.png")
    assert missing.status == 404

    # At city zoom the cameras around the corner are one count; a click on it zooms in.
    await page.wait_for_selector("path.cam-marker[data-camera-id='alpha']")
    for _ in range(5):
        if await page.locator(".cam-cluster").count():
            break
        await page.click(".leaflet-control-zoom-out")
        await page.wait_for_timeout(400)
    cluster = page.locator(".cam-cluster").first
    assert int(await cluster.get_attribute("data-count") or "0") >= 2
    assert await page.locator("path.cam-marker[data-camera-id='alpha']").count() == 0
    await page.screenshot(path=str(artifact("map-clusters.png")))
    await cluster.click()
    await page.wait_for_selector("path.cam-marker[data-camera-id='alpha']")
    assert await page.locator(".cam-cluster").count() == 0

    # The popup is whole inside the map and its button takes the click (not a control's).
    await pin_at(page, *PIN)
    await page.click("path.cam-marker[data-camera-id='alpha']")
    await page.wait_for_selector(".leaflet-popup .cam-popup")
    await page.wait_for_timeout(400)  # the map pans to fit the popup
    assert await _inside(page, ".leaflet-popup", "#map")
    await page.screenshot(path=str(artifact("map-popup-1280.png")))
    await page.click(".leaflet-popup .cam-popup button", timeout=5000)
    await poll(lambda: _attr_is(page, tile(0), "data-camera", "alpha"), timeout=10,
               what="alpha on the wall from the popup")
    assert problems.errors == []


async def test_still_to_case_digital_zoom_and_camera_control(
    tools_server: ToolsServer, small_page: Page
) -> None:
    page = small_page
    problems = PageProblems()
    problems.watch(page)
    await page.fill("#purpose", "case 41")
    await page.press("#purpose", "Enter")
    await page.click("#layouts button[data-layout='1']")
    await pin_at(page, *PIN)
    await page.click(f"{ROW.format('alpha')} button.add")
    await wait_decoding(page, 0)
    tools = f"{tile(0)} .tile-tools"
    assert not await page.is_visible(tools)  # only the focused tile has tools
    await page.click(f"{tile(0)} .tile-video")
    await page.wait_for_selector(tools, state="visible")
    # The owner of alpha does not allow camera control: no controls.
    assert not await page.is_visible(f"{tools} .ptz")
    assert await page.locator(f"{tools} .ptz button").count() == 8
    assert await page.input_value(f"{tools} .snap-case") == "case 41"

    # Without a case number: said so, nothing taken.
    await page.fill(f"{tools} .snap-case", "")
    await page.click(f"{tools} button.snap")
    assert "case number" in (await page.text_content(f"{tools} .tool-status") or "")
    # With one: the server's picture, hashed and held; the page shows the hash it kept.
    await page.fill(f"{tools} .snap-case", "2026-00041")
    await page.click(f"{tools} button.snap")
    status = f"{tools} .tool-status[data-kind='ok']"
    await page.wait_for_selector(status, timeout=20_000)
    text = await page.text_content(status) or ""
    assert "Saved to case 2026-00041" in text, text
    sha = await attr(page, status, "data-sha256")
    item = await attr(page, status, "data-evidence-id")
    stored = evidence_root(tools_server.settings) / "items" / item / "original.jpg"
    data = stored.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha
    with Image.open(BytesIO(data)) as picture:
        assert picture.format == "JPEG"
        assert picture.size in {(640, 360), (320, 180)}
    audit = await tools_server.client.get(
        "/api/audit?action=camera.snapshot&camera=alpha", headers=tools_server.admin)
    entries = (await audit.json())["entries"]
    assert [e["details"]["sha256"] for e in entries] == [sha]
    assert entries[0]["actor"] == "analyst9"

    # Digital zoom: the wheel zooms at the pointer, a drag moves, the button resets.
    box = await page.locator(f"{tile(0)} .tile-video").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    await page.mouse.move(cx, cy)
    for _ in range(3):
        await page.mouse.wheel(0, -200)
    await poll(lambda: _zoom_over(page, 1.5), timeout=5, what="the tile to zoom in")
    before = await page.locator(f"{tile(0)} .tile-video").evaluate("(n) => n.style.transform")
    await page.mouse.down()
    await page.mouse.move(cx + 60, cy + 40, steps=4)
    await page.mouse.up()
    after = await page.locator(f"{tile(0)} .tile-video").evaluate("(n) => n.style.transform")
    assert "scale(" in before
    assert "scale(" in after
    assert before != after
    assert await _zoom_over(page, 1.5)  # the click that ends a drag keeps the zoom
    assert not (await page.text_content(f"{tools} button.zoom-reset") or "").startswith("1.0")
    await page.screenshot(path=str(artifact("tile-zoomed.png")))
    await page.click(f"{tools} button.zoom-reset")
    assert await attr(page, tile(0), "data-zoom") == "1.00"
    assert problems.errors == []


async def _any(locator: Locator) -> bool:
    return await locator.count() > 0


async def _attr_is(page: Page, selector: str, name: str, value: str) -> bool:
    return await attr(page, selector, name) == value


async def _zoom_over(page: Page, least: float) -> bool:
    return float(await attr(page, tile(0), "data-zoom") or "1") > least
