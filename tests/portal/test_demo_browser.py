"""What a new staff user and a new owner see in headless Chromium on a server like the demo
(one-time codes not required), with the browser in Springfield, Illinois (America/Chicago).

The login page has no one-time-code field; a wrong password leaves the page at
``/login?next=...`` with the reason; a staff account created without asking for a code logs in
with its password; an account that has a code is told it needs it and the field appears. The
sign-up and camera forms propose the browser's zone, the dashboard shows the zone next to the
sharing hours, and the access log shows a refusal in its own column, not as a purpose.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers
from tests.fixtures.browser import poll
from tests.portal.conftest import PortalServer, portal_settings
from tests.portal.helpers import OWNER_PASSWORD, call, direct_camera
from tests.relay.whep_client import WhepError, WhepViewer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ZONE = "America/Chicago"
STAFF_PASSWORD = "a long enough password"
TILL_URL = "rtsp://1.2.3.4:8554/till"
"""A public address (owners may register only those); no stream is opened from it."""


@pytest.fixture
async def demo_server(tmp_path: Path, bootstrap_token: str,
                      make_client: MakeClient) -> PortalServer:
    settings = portal_settings(tmp_path)
    settings = settings.model_copy(update={"security": settings.security.model_copy(
        update={"require_totp": False})})
    client = await make_client(create_app(settings))
    return PortalServer(client, str(client.make_url("")).rstrip("/"), bearer(bootstrap_token))


async def text(page: Page, selector: str) -> str:
    locator = page.locator(selector)
    return (await locator.first.text_content() or "") if await locator.count() else ""


async def submit_login(page: Page, username: str, password: str) -> None:
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


async def test_staff_login_without_codes_keeps_the_page_and_says_why(
    demo_server: PortalServer, chromium: Browser,
) -> None:
    server = demo_server
    created = await call(server.client, "POST", "/api/users", server.admin, 201, json={
        "username": "newanalyst", "role": "analyst", "password": STAFF_PASSWORD})
    assert "totp_uri" not in created  # nobody asked for a code, and the server needs none
    await call(server.client, "POST", "/api/users", server.admin, 201, json={
        "username": "codeuser", "role": "analyst", "password": STAFF_PASSWORD, "totp": True})

    context = await chromium.new_context()
    page = await context.new_page()
    page.set_default_timeout(20_000)
    try:
        await page.goto(f"{server.base}/console/")
        await page.wait_for_url("**/login?next=*")
        assert await page.locator("#totp").count() == 0

        await submit_login(page, "newanalyst", "not the password at all")
        url = urlsplit(page.url)
        assert url.path == "/login"
        assert parse_qs(url.query)["next"] == ["/console/"]
        assert "wrong user name, password" in await text(page, ".error")
        assert await page.locator("#totp").count() == 0

        await submit_login(page, "codeuser", STAFF_PASSWORD)
        assert urlsplit(page.url).path == "/login"
        assert "needs its one-time code" in await text(page, ".error")
        assert await page.locator("#totp").is_visible()

        await page.goto(f"{server.base}/login?next=/console/")  # the code field is required now
        await submit_login(page, "newanalyst", STAFF_PASSWORD)
        await page.wait_for_url(f"{server.base}/console/")
    finally:
        await context.close()


async def test_owner_sees_their_zone_and_refusals_apart_from_purposes(
    demo_server: PortalServer, chromium: Browser,
) -> None:
    server = demo_server
    context = await chromium.new_context(timezone_id=ZONE,
                                         viewport={"width": 1100, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    try:
        await page.goto(f"{server.base}/register/join")
        await page.wait_for_selector("body[data-ready=true]")
        assert await page.input_value("#timezone") == ZONE
        for field, value in (("#organisation", "Corner Grocery"), ("#contact_name", "Pat"),
                             ("#email", "pat@example.org"), ("#username", "springfield"),
                             ("#password", OWNER_PASSWORD), ("#password2", OWNER_PASSWORD)):
            await page.fill(field, value)
        await page.click("#submit")
        await page.wait_for_url("**/register/dashboard?welcome=1")
        await page.wait_for_selector("body[data-ready=true]")

        await page.goto(f"{server.base}/register/camera")
        await page.wait_for_selector("body[data-ready=true]")
        assert await page.input_value("#timezone") == ZONE

        # The owner's cameras, through the API with the browser's session.
        cookies = {c["name"]: c["value"] for c in await context.cookies()}
        owner = {"Cookie": f"rtcc_session={cookies['rtcc_session']}",
                 "Origin": server.base}
        windows = [{"days": ["mon", "tue"], "start": "08:00", "end": "18:00"}]
        no_zone = await server.client.post("/api/owner/cameras", headers=owner,
                                           json=direct_camera(TILL_URL, windows=windows))
        assert no_zone.status == 400
        assert (await no_zone.json())["field"] == "timezone"
        created = await call(server.client, "POST", "/api/owner/cameras", owner, 201,
                             json=direct_camera(TILL_URL, name="Till", windows=windows,
                                                timezone=ZONE, sharing="registry_only"))
        camera_id = created["camera"]["id"]

        # An analyst is refused: the camera is listed only.
        _, analyst = await role_headers(server.client, server.admin, Role.ANALYST)
        async with aiohttp.ClientSession() as http:
            viewer = WhepViewer(server.base, camera_id, headers=analyst,
                                query={"purpose": "checking the till", "incident": "CAD-7"})
            with pytest.raises(WhepError):
                await viewer.connect(http)
            await viewer.close()

        await page.goto(f"{server.base}/register/dashboard")
        await page.wait_for_selector("body[data-ready=true]")
        detail = await poll(lambda: text(page, f"li.camera[data-camera-id='{camera_id}'] .detail"),
                            timeout=10, what="the camera's sharing hours")
        assert f"({ZONE} time)" in detail

        headers = [h.strip() for h in await page.locator("#access-log thead th").all_inner_texts()]
        assert headers[-2:] == ["Purpose or incident", "Outcome"]
        row = page.locator("#access-log tr.entry.refused[data-action='view.start']")
        await poll(lambda: row.count(), timeout=10, what="the refused view in the access log")
        outcome = await row.first.locator(".outcome").text_content() or ""
        purpose = await row.first.locator(".purpose").text_content() or ""
        assert outcome.startswith("Refused: ")
        assert len(outcome) > len("Refused: ")
        assert "Refused" not in purpose
        assert outcome.removeprefix("Refused: ") not in purpose
    finally:
        await context.close()

