"""A phone (Chromium, 390x844) enrols by its QR code's link and presses the button; an analyst's
console (a second Chromium page) gets the alert pushed, with the school's floor plan and room,
acknowledges it, asks for a check-in the phone answers, and gives the all clear the phone shows.
Prints the time from the press to the alert on the console."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.async_api import Browser, Page

from rtcc.policy import Role
from server.app import create_app
from tests.facilities.helpers import make_school
from tests.fixtures.auth import MakeClient, bearer, create_user, security_settings
from tests.fixtures.browser import artifact, login_form, poll


async def _text(page: Page, selector: str) -> str:
    return await page.text_content(selector) or ""


async def test_a_phone_raises_an_alert_the_console_works_to_the_all_clear(
        chromium: Browser, tmp_path: Path, make_client: MakeClient, bootstrap_token: str
) -> None:
    client = await make_client(create_app(security_settings(tmp_path)))
    base = str(client.make_url("")).rstrip("/")
    admin = bearer(bootstrap_token)
    school = await make_school(client, admin)
    code = await (await client.post(f"/api/facilities/{school.facility['id']}/enrolments",
                                    headers=school.owner,
                                    json={"label": "Room 104 teacher",
                                          "room_id": school.room["id"]})).json()
    analyst = await create_user(client, admin, Role.ANALYST)

    console = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await login_form(console, base, analyst.username, analyst.password, analyst.next_code())
    await console.wait_for_selector("#panic-alerts", state="attached")

    phone = await chromium.new_page(viewport={"width": 390, "height": 844}, is_mobile=True,
                                    has_touch=True)
    await phone.goto(code["url"])
    await phone.wait_for_selector("#ready:not([hidden])")
    assert "#enrol" not in phone.url  # the secret left the address bar
    assert await _text(phone, "#facility") == "Lincoln Elementary"
    await phone.screenshot(path=str(artifact("panic-app.png")))
    await phone.click("#panic")
    await phone.wait_for_selector("#levels:not([hidden])")
    await console.wait_for_timeout(500)  # the console's stream is open well before the press
    pressed = time.monotonic()
    await phone.click("[data-level=lockdown]")

    async def on_console() -> bool:
        return await console.query_selector("#panic-alerts [data-alert]") is not None

    await poll(on_console, timeout=20, interval=0.02, what="the alert on the console")
    print(f"button press to alert on the console: {time.monotonic() - pressed:.3f} s")
    card = "#panic-alerts [data-alert]"
    assert "LOCKDOWN: Lincoln Elementary" in await _text(console, f"{card} h3")
    assert "room 104" in await _text(console, f"{card} h3")
    await console.wait_for_selector(f"{card} .panic-plan img")
    await console.wait_for_selector(f"{card} .panic-room")
    assert "Principal Ruiz" in await _text(console, card)

    async def phone_says(selector: str, words: str) -> bool:
        return words in await _text(phone, selector)

    await poll(lambda: phone_says("#sent-title", "stored"), timeout=20, what="stored")
    await console.click(f"{card} [data-action=acknowledge]")
    await poll(lambda: phone_says("#sent-state", "acknowledged"), timeout=20,
               what="the acknowledgement on the phone")
    await console.click(f"{card} [data-action=checkin]")
    await phone.wait_for_selector("#checkin:not([hidden])", timeout=20000)
    await phone.click("[data-answer=safe]")

    async def answered() -> bool:
        return "checkin.answer: safe" in await _text(console, f"{card} .panic-timeline")

    await poll(answered, timeout=20, what="the check-in answer on the console")
    await console.screenshot(path=str(artifact("panic-console.png")))
    await console.click(f"{card} [data-action=all_clear]")
    await poll(lambda: phone_says("#sent-title", "ALL CLEAR"), timeout=20, what="all clear")

    async def gone() -> bool:
        return await console.query_selector("#panic-alerts [data-alert]") is None

    await poll(gone, timeout=20, what="the cleared alert leaving the console")
