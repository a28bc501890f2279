"""The relay's player page in headless Chromium, limited to relay candidates, plays a camera
through a real coturn with the credentials the WHEP ``OPTIONS`` answer carries."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.fixtures.browser import poll
from tests.fixtures.coturn import RELAY_ONLY, Coturn
from tests.relay.conftest import RelayServer
from tests.relay.test_browser import CHROMIUM, INBOUND_VIDEO

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium is not installed"),
]


async def test_player_page_plays_through_coturn(
    turn_server: tuple[RelayServer, Coturn], chromium: Browser,
) -> None:
    srv, turn = turn_server
    # The header stands in for a logged-in analyst's cookie (see tests/relay/test_turn.py).
    context = await chromium.new_context(extra_http_headers={"X-Test-Analyst": "1"})
    await context.add_init_script(RELAY_ONLY)
    page = await context.new_page()
    try:
        await page.goto(f"{srv.url}/play/cam1?purpose=turn%20test&autoplay=1")

        async def decoding() -> dict[str, Any] | None:
            stats: dict[str, Any] | None = await page.evaluate(INBOUND_VIDEO)
            return stats if stats and stats["framesDecoded"] >= 10 else None

        await poll(decoding, timeout=30, what="the player to decode 10 frames through TURN")
        configs: list[dict[str, Any]] = await page.evaluate("window.rtccIceConfigs")
        [server] = [s for c in configs for s in c.get("iceServers", [])]
        assert server["urls"] == turn.url
        assert server["username"].endswith(":analyst1")
        assert (f"user <{server['username']}>: incoming packet ALLOCATE processed, success"
                in turn.log())
    finally:
        await context.close()
