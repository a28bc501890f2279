"""Headless Debian Chromium plays a camera through the relay's player page (WHEP)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from relay.settings import RelaySettings
from tests.relay.clip import Clip
from tests.relay.conftest import RelayServer, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
INBOUND_VIDEO = """async () => {
  const pc = window.rtccPlay && window.rtccPlay.pc;
  if (!pc) return null;
  let found = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") found = s;
  });
  return found && {framesDecoded: s_(found.framesDecoded), keyFramesDecoded:
    s_(found.keyFramesDecoded), pliCount: s_(found.pliCount), framesReceived:
    s_(found.framesReceived)};
  function s_(v) { return v || 0; }
}"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium is not installed"),
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def gop4_server(index_clip: Clip) -> AsyncIterator[RelayServer]:
    srv, runner = await start_server({"cam1": {"main": index_clip}}, RelaySettings())
    try:
        yield srv
    finally:
        await runner.cleanup()


async def test_chromium_plays_a_4s_gop_camera_through_whep(
    gop4_server: RelayServer, browser: Browser
) -> None:
    stream = gop4_server.hub.get("cam1", "main")
    holder = await stream.subscribe("warm-up", wait=True)  # the camera is live, mid-GOP
    await asyncio.sleep(1.0)
    source = gop4_server.sources["cam1/main"][-1]
    page = await browser.new_page()
    try:
        started = time.monotonic()
        async with page.expect_response(
            lambda r: "/whep/cam1" in r.url and r.request.method == "POST"
        ) as posted:
            await page.goto(f"{gop4_server.url}/play/cam1?purpose=test%20case%2042&autoplay=1")
        response = await posted.value
        assert response.status == 201
        answer = await response.text()
        keyframes_at_join = len(source.keyframes_pushed)
        assert "VP8" not in answer
        assert "H264/90000" in answer
        stats = None
        async with asyncio.timeout(20):
            while not (stats and stats["framesDecoded"] > 0):
                stats = await page.evaluate(INBOUND_VIDEO)
                await asyncio.sleep(0.05)
        first_frame = time.monotonic() - started
        keyframes_when_decoded = len(source.keyframes_pushed)
        await page.wait_for_function(
            "document.getElementById('frames-decoded').textContent !== '0'", timeout=10_000
        )
        print(f"Chromium: first decoded frame {first_frame * 1000:.0f} ms after page load "
              f"(page says {await page.inner_text('#first-frame')}), stats {stats}")
        registry_stats: Any = gop4_server.registry.stats()
        print("server side:", registry_stats["sessions"][0])
        assert stats["keyFramesDecoded"] >= 1
        assert keyframes_when_decoded == keyframes_at_join  # decoded from the GOP cache
        (grant,) = gop4_server.access.opened
        assert grant.purpose == "test case 42"
        await page.click("#stop")
        async with asyncio.timeout(5):
            while len(gop4_server.registry):
                await asyncio.sleep(0.05)
        assert gop4_server.access.closed[0][1] == "viewer ended the session"
    finally:
        holder.close("test done")
        await page.close()


async def test_player_page_reports_a_refusal(server: RelayServer, browser: Browser) -> None:
    page = await browser.new_page()
    try:
        await page.goto(f"{server.url}/play/nosuchcam?purpose=x&autoplay=1")
        await page.wait_for_function(
            "document.getElementById('status').textContent.startsWith('There is no such camera')",
            timeout=10_000,
        )
        assert "{" not in await page.inner_text("#status")  # a sentence, not the raw JSON
    finally:
        await page.close()
