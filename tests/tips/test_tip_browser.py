"""A phone (Chromium, 390x844) sends a tip with a GPS-tagged photo and a video with a creation
date and location; one upload chunk is cut on the way and the page goes on from where the
server stands; the tipster reads a reply with the tip number and passphrase. The server runs
as ``rtcc serve`` runs it (server/runner.py), behind a trusted proxy that names the tipster's
address, and that address and the phone's user agent end up in no log, database or file."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, Route

from rtcc.config import ConsoleConfig, Place, SecurityConfig, Settings
from server.app import create_app
from server.runner import GuardedAppRunner, ReadTimeouts
from tests.fixtures.auth import bearer
from tests.fixtures.browser import artifact, poll
from tests.tips.helpers import (
    CAMERA_MAKE,
    FORWARDED_FOR,
    TIPSTER_UA,
    call,
    jpeg_with_gps,
    mp4_with_metadata,
    probe_tags,
)
from tips.media import TipLimits
from tips.wiring import LIMITS


@pytest.fixture
async def served(tmp_path: Path, bootstrap_token: str) -> AsyncIterator[tuple[str, Settings]]:
    assert bootstrap_token  # set before the app starts: the first administrator exists
    settings = Settings(data_dir=tmp_path / "data",
                        security=SecurityConfig(trusted_proxies=["127.0.0.0/8"]),
                        console=ConsoleConfig(tile_url="/tiles/{z}/{x}/{y}.png",
                                              places=[Place(name="HQ", lat=39.8, lon=-89.6)]))
    app = create_app(settings)
    app[LIMITS] = TipLimits(chunk_bytes=64 * 1024)  # several chunks even for a short video
    runner = GuardedAppRunner(app, ReadTimeouts(10.0, 10.0), handle_signals=False,
                              access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", settings
    finally:
        await runner.cleanup()


async def _analyst(session: aiohttp.ClientSession, base: str, admin: dict[str, str]
                   ) -> dict[str, str]:
    user = await call(session, "POST", f"{base}/api/users", 201, headers=admin, json={
        "username": "tipdesk", "role": "analyst", "password": "unused-" + "x" * 16})
    token = await call(session, "POST", f"{base}/api/users/{user['user']['id']}/tokens", 201,
                       headers=admin, json={"name": "test"})
    return bearer(token["token"])


async def _text(page: Page, selector: str) -> str:
    return " ".join((await page.text_content(selector) or "").split())


async def test_phone_sends_tip_and_reads_reply(chromium: Browser, served: tuple[str, Settings],
                                               bootstrap_token: str, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    base, settings = served
    photo_path, video_path = tmp_path / "scene.jpg", tmp_path / "scene.mp4"
    photo_path.write_bytes(jpeg_with_gps())
    video_path.write_bytes(mp4_with_metadata(tmp_path, seconds=6))
    context = await chromium.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
        user_agent=TIPSTER_UA, extra_http_headers={"X-Forwarded-For": FORWARDED_FOR})
    page = await context.new_page()
    cut: list[str] = []

    async def drop_once(route: Route) -> None:
        # The phone loses its signal during the second chunk of the video, once.
        if "offset=65536" in route.request.url and not cut:
            cut.append(route.request.url)
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route("**/tips/api/uploads/*", drop_once)
    await page.goto(f"{base}/tips/")
    assert "encrypted, for investigators" in await _text(page, ".kept")
    await page.fill("#what", "Two men loaded boxes from the closed shop into a white van")
    await page.fill("#where", "Corner of Elm and 3rd")
    await page.click("#pick-on-map")  # the department's own tiles: the pin map is offered
    await page.wait_for_selector("#pin-map .leaflet-container, #pin-map.leaflet-container")
    await page.click("#pin-map", position={"x": 120, "y": 80})
    assert "The pin" in await _text(page, "#place-state")
    await page.fill("#when", "Tonight, about 10 minutes ago")
    await page.set_input_files("#files", [str(photo_path), str(video_path)])
    await page.click("#send")
    await page.wait_for_selector("#receipt:not([hidden])")
    number = await _text(page, "#tip-number")
    passphrase = await _text(page, "#tip-passphrase")

    async def all_sent() -> bool:
        states = await page.eval_on_selector_all("#upload-list li",
                                                 "items => items.map(i => i.dataset.state)")
        return bool(states == ["done", "done"])

    await poll(all_sent, timeout=90, what="both files sent")
    assert cut, "the test never cut a chunk"
    await page.screenshot(path=str(artifact("tip-phone-sent.png")), full_page=True)

    async with aiohttp.ClientSession() as staff:
        analyst = await _analyst(staff, base, bearer(bootstrap_token))
        queue = await call(staff, "GET", f"{base}/api/tips", 200, headers=analyst)
        tip: dict[str, Any] = next(t for t in queue["tips"] if t["number"] == number)
        detail = await call(staff, "GET", f"{base}/api/tips/{tip['id']}", 200, headers=analyst)
        assert sorted(m["state"] for m in detail["media"]) == ["ready", "ready"]
        assert detail["lat"] is not None
        assert detail["lon"] is not None
        video = next(m for m in detail["media"] if m["kind"] == "video")
        async with staff.get(f"{base}/api/tips/{tip['id']}/media/{video['id']}",
                             headers=analyst) as got:
            copy = tmp_path / "copy.mp4"
            copy.write_bytes(await got.read())
        tags = probe_tags(copy)
        assert "creation_time" not in tags, tags
        assert "location" not in tags, tags
        await call(staff, "POST", f"{base}/api/tips/{tip['id']}/messages", 201,
                   headers=analyst, json={"body": "Did you see which way the van went?"})

    # Later, on the same phone: the tip number and passphrase bring the reply.
    await page.goto(f"{base}/tips/")
    await page.fill("#f-number", number)
    await page.fill("#f-passphrase", passphrase)
    await page.click("#follow-form button[type=submit]")
    await page.wait_for_selector("#thread:not([hidden])")
    assert "Did you see which way the van went?" in await _text(page, "#messages")
    await context.close()

    log_text = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert CAMERA_MAKE not in (settings.data_dir / "tips.sqlite3").read_text(errors="replace")
    for needle in (FORWARDED_FOR, TIPSTER_UA):
        assert needle not in log_text
        for path in settings.data_dir.rglob("*"):
            if path.is_file():
                assert needle.encode() not in path.read_bytes(), f"{needle} found in {path}"
