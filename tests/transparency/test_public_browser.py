"""The public page in headless Chromium, at a phone's size and a desktop's."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Browser, Locator

from incidents.routes import INCIDENT_SERVICE
from rtcc.appkeys import CLOCK
from server.app import create_app
from tests.fixtures.auth import MakeClient, security_settings
from tests.fixtures.browser import artifact, poll
from tests.transparency.helpers import seed_incident
from transparency.keys import TRANSPARENCY

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SIZES = {"phone": (390, 844), "desktop": (1280, 900)}


async def test_public_page_renders_map_charts_and_tables(
        tmp_path: Path, make_client: MakeClient, chromium: Browser) -> None:
    app = create_app(security_settings(tmp_path))
    app[CLOCK] = NOW.timestamp
    client = await make_client(app)
    store = app[INCIDENT_SERVICE].store
    for n in range(12):
        await seed_incident(store, n, ("BURG", "DIST", "ROBB", "DV")[n % 4],
                            NOW - timedelta(days=2 + n), 39.79 + n * 0.003, -89.66 + n * 0.002,
                            priority=1 + n % 3, minutes=(1 + n, 5 + 2 * n, 30))
    snapshot = await app[TRANSPARENCY].refresh()
    published_points = sum(1 for i in snapshot.incidents if i.lat is not None)
    assert published_points == 9  # the DV calls are never published
    url = str(client.make_url("/public/"))
    for name, (width, height) in SIZES.items():
        page = await chromium.new_page(viewport={"width": width, "height": height})
        try:
            await page.goto(url)
            map_box = page.locator("#map")
            await poll(functools.partial(_ready, map_box), timeout=20,
                       what=f"the map ({name})")
            assert await map_box.get_attribute("data-count") == str(published_points)
            assert await page.locator("#map .leaflet-interactive").count() == published_points
            assert await page.locator("svg.chart[role=img]").count() >= 6
            assert await page.locator("#metrics table").count() >= 6
            box = await map_box.bounding_box()
            assert box is not None
            assert box["width"] <= width
            assert await page.locator("h1").inner_text() == "Crime map and police response"
            await page.screenshot(path=str(artifact(f"public-{name}.png")), full_page=True)
        finally:
            await page.close()


async def _ready(locator: Locator) -> bool:
    return await locator.get_attribute("data-state") == "ready"
