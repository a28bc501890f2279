"""An investigator works in Chromium at /investigate/: the picture shown after a seek and after a
one-frame step is the recorded frame at that time (compared with the frames decoded from the
server's segment), a camera without a grant has no timeline, an export made from the screen
(in, out, case, reason, progress) verifies with ``rtcc verify``, and two cameras played together
stay within one frame of each other, and a shared camera (whose frames before the moment asked
for are not the investigator's to see) lands on its next keyframe.

The footage is FFmpeg's ``testsrc2`` (it changes every frame; the camera simulator burns in
only a clock to the second), written into segments as the recorder writes them."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page

from console_web import routes as console_routes
from evidence.store import EvidenceStore
from rtcc.config import SharingLevel
from rtcc.policy import Role
from tests.evidence.helpers import evidence_app, frames_from, make_h264, write_segments
from tests.fixtures.auth import bearer, create_user, security_settings
from tests.fixtures.browser import artifact, login_form, poll
from tests.security.harness import Directory

log = logging.getLogger(__name__)

T0 = float(int(time.time()))
PAST = T0 - 1800.0
FPS = 15
THUMB = (320, 180)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Site:
    base: str
    client: TestClient[Any, Any]
    admin: dict[str, str]
    source: Path


@pytest.fixture
async def site(tmp_path: Path, bootstrap_token: str) -> AsyncIterator[Site]:
    settings = security_settings(tmp_path)
    make_h264(tmp_path, 8.0)
    units = make_h264(tmp_path, 8.0)
    store = EvidenceStore.open_in(settings.data_dir)
    try:
        for camera_id in ("dept", "dept2", "shop", "plaza"):
            write_segments(store, settings.data_dir / "evidence", camera_id,
                           frames_from(units, PAST), 3.0)
    finally:
        store.close()
    directory = Directory()
    directory.add("dept", SharingLevel.REGISTRY_ONLY, owner_id="department")
    directory.add("dept2", SharingLevel.REGISTRY_ONLY, owner_id="department")
    directory.add("shop", SharingLevel.ON_REQUEST, owner_id="shop1")  # no grant asked for
    directory.add("plaza", SharingLevel.LIVE_ALWAYS, owner_id="city")  # shared: no lead-in
    app = evidence_app(settings, directory)
    console_routes.add_routes(app)
    server = TestServer(app, host="127.0.0.1")
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    try:
        yield Site(f"http://127.0.0.1:{server.port}", client, bearer(bootstrap_token),
                   tmp_path / "src-8s-320x180.h264")
    finally:
        await client.close()


def _recorded_thumbs(source: Path) -> list[bytes]:
    """Each recorded frame in grey (320x180, as recorded), in recording order."""
    with av.open(str(source), format="h264") as container:
        return [bytes(frame.reformat(width=THUMB[0], height=THUMB[1], format="gray")
                      .planes[0])[:THUMB[0] * THUMB[1]]
                for frame in container.decode(video=0)]


def _normalised(values: bytes) -> list[float]:
    """Zero mean, unit spread: the browser shows full-range levels, the decoder gives the
    stream's limited range; the picture is what is compared."""
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
    return [(v - mean) / spread for v in values]


def _closest(shown_hex: str, recorded: list[bytes]) -> tuple[int, float, float]:
    """(index of the recorded frame closest to the shown one, its mean difference, the next
    closest's)."""
    shown = _normalised(bytes.fromhex(shown_hex))
    scores = sorted((sum(abs(a - b) for a, b in zip(shown, _normalised(frame), strict=True))
                     / len(shown), i) for i, frame in enumerate(recorded))
    return scores[0][1], scores[0][0], scores[1][0]


async def _data(page: Page, selector: str, name: str) -> str | None:
    return await page.get_attribute(selector, f"data-{name}")


async def _changed(page: Page, selector: str, name: str, before: str | None) -> str:
    async def check() -> str | None:
        value = await _data(page, selector, name)
        return value if value and value != before else None
    try:
        return await poll(check, timeout=30, what=f"{selector} data-{name}")
    except AssertionError:
        log.info("player: %s", await page.eval_on_selector(selector, """n => {
            const v = n.querySelector('video'); const b = [];
            for (let i = 0; i < v.buffered.length; i++) b.push([v.buffered.start(i), v.buffered.end(i)]);
            return JSON.stringify({t: v.currentTime, paused: v.paused, ready: v.readyState,
              seeking: v.seeking, b, msg: n.querySelector('.message').textContent,
              data: Object.fromEntries(Object.entries(n.dataset).filter(([k]) => k !== 'thumb'))}); }"""))
        raise


async def test_seek_step_and_export_from_the_screen(chromium: Browser, site: Site,
                                                    tmp_path: Path) -> None:
    recorded = await asyncio.to_thread(_recorded_thumbs, site.source)
    assert len(recorded) == 8 * FPS
    investigator = await create_user(site.client, site.admin, Role.INVESTIGATOR)
    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda message: log.info("browser: %s", message.text))
    await login_form(page, site.base, investigator.username, investigator.password,
                     investigator.next_code(), start="/investigate/")
    target = 52  # seek to the middle of frame 52 of the recording
    at = PAST + (target + 0.5) / FPS
    await page.goto(f"{site.base}/investigate/?from={PAST - 5}&to={PAST + 20}"
                    f"&cameras=dept,shop&case=2024-0200&at={at}")
    await page.wait_for_selector("body[data-ready=true]", timeout=30000)

    # The camera without a grant: not offered, no lane, no player, no request made for it.
    lanes = await page.eval_on_selector_all("#timeline .lane", "nodes => nodes.map(n => n.dataset.camera)")
    assert lanes == ["dept"]
    offered = await page.eval_on_selector_all("#cameras input", "nodes => nodes.map(n => n.value)")
    assert offered == ["dept", "dept2", "plaza"]
    assert await page.query_selector(".player[data-camera=shop]") is None
    assert await page.query_selector("#timeline .lane[data-camera=dept] .span.recorded")

    player = ".player[data-camera=dept]"
    thumb = await _changed(page, player, "thumb", None)
    shown_at = float(await _data(page, player, "thumb-utc") or "nan")
    seek_ms = await _data(page, player, "seek-ms")
    log.info("seek to first frame (cold: request, remux, append, decode): %s ms", seek_ms)
    index, difference, runner_up = _closest(thumb, recorded)
    log.info("shown frame: closest recorded %d (mean difference %.3f, next %.3f)", index,
             difference, runner_up)
    assert index == target, (index, difference, runner_up)
    # A clear match, not the least bad of unrelated pictures (a blank or wrong frame scores the
    # same against every recorded one).
    assert difference < 0.8 * runner_up
    assert shown_at == pytest.approx(PAST + target / FPS, abs=0.002)
    assert (await page.text_content(f"{player} .stamp") or "").endswith(" UTC")

    await page.click("#mark-in")
    await page.click("#forward")  # one frame on, within what is buffered
    thumb = await _changed(page, player, "thumb", thumb)
    log.info("seek to first frame (one frame step, buffered): %s ms",
             await _data(page, player, "seek-ms"))
    index, difference, runner_up = _closest(thumb, recorded)
    assert index == target + 1, (index, difference, runner_up)
    assert difference < 0.8 * runner_up

    # Out: click the timeline two seconds on, then export in..out from the screen.
    box = await page.locator("#timeline").bounding_box()
    assert box is not None
    out = PAST + (target + 0.5) / FPS + 2.0
    before = await _data(page, player, "thumb-utc")
    await page.locator("#timeline").click(position={
        "x": box["width"] * (out - (PAST - 5)) / 25.0, "y": box["height"] - 8})
    await _changed(page, player, "thumb-utc", before)
    await page.click("#mark-out")
    await page.fill("#reason", "the moment the van leaves")
    await page.click("#export-start")
    link = await page.wait_for_selector("#export-results a[data-camera=dept]", timeout=60000)
    assert await page.get_attribute("#export-progress", "value") == "1" or \
        await _data(page, "#export-stage", "state") == "done"
    await page.screenshot(path=str(artifact("investigate.png")), full_page=True)
    assert link is not None
    href = await link.get_attribute("href")
    assert href is not None
    download = await page.request.get(f"{site.base}{href}")
    assert download.status == 200
    package = tmp_path / "from-the-screen.tar"
    package.write_bytes(await download.body())
    key = tmp_path / "key.pem"
    key.write_text((await (await site.client.get("/api/evidence/public-key")).json())["pem"])
    checked = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "server", "verify", str(package), "--key",
                         str(key)], cwd=ROOT, capture_output=True, text=True, timeout=120,
        check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    await page.close()


async def test_two_cameras_play_within_one_frame_of_each_other(chromium: Browser,
                                                               site: Site) -> None:
    investigator = await create_user(site.client, site.admin, Role.INVESTIGATOR)
    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await login_form(page, site.base, investigator.username, investigator.password,
                     investigator.next_code(), start="/investigate/")
    await page.goto(f"{site.base}/investigate/?from={PAST - 5}&to={PAST + 20}"
                    f"&cameras=dept,dept2&at={PAST + 1.2}")
    await page.wait_for_selector("body[data-ready=true]", timeout=30000)
    for camera in ("dept", "dept2"):
        await _changed(page, f".player[data-camera={camera}]", "seek-ms", None)
    await page.click("#play")

    async def played_on() -> bool:
        shown = await _data(page, ".player[data-camera=dept]", "frame-utc")
        return shown is not None and float(shown) > PAST + 3.5
    await poll(played_on, timeout=30, what="two seconds played")
    await page.click("#play")  # pause both
    await asyncio.sleep(0.5)
    times = [float(await _data(page, f".player[data-camera={camera}]", "frame-utc") or "nan")
             for camera in ("dept", "dept2")]
    log.info("paused at %s", times)
    assert abs(times[0] - times[1]) <= 1 / FPS + 0.001
    await page.close()


async def test_a_shared_camera_lands_on_the_keyframe_after_the_moment(chromium: Browser,
                                                                      site: Site) -> None:
    # A shared camera's playback starts at the first keyframe at or after the moment asked for
    # (one a second here): the player shows that frame rather than waiting for the moment.
    recorded = await asyncio.to_thread(_recorded_thumbs, site.source)
    investigator = await create_user(site.client, site.admin, Role.INVESTIGATOR)
    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await login_form(page, site.base, investigator.username, investigator.password,
                     investigator.next_code(), start="/investigate/")
    await page.goto(f"{site.base}/investigate/?from={PAST - 5}&to={PAST + 20}"
                    f"&cameras=plaza&at={PAST + 4.5}")
    await page.wait_for_selector("body[data-ready=true]", timeout=30000)
    player = ".player[data-camera=plaza]"
    thumb = await _changed(page, player, "thumb", None)
    shown_at = float(await _data(page, player, "thumb-utc") or "nan")
    assert shown_at == pytest.approx(PAST + 5.0, abs=0.002)
    index, difference, runner_up = _closest(thumb, recorded)
    assert index == 5 * FPS, (index, difference, runner_up)
    assert difference < 0.8 * runner_up
    await page.close()
