"""An analyst works the tip queue in Chromium: the new tip, its photo (the clean copy), a
reply the tipster then reads, and the status."""

from __future__ import annotations

import aiohttp
from playwright.async_api import Browser

from rtcc.policy import Role
from tests.fixtures.auth import create_user
from tests.fixtures.browser import artifact, login_form, poll
from tests.tips.conftest import TipServer
from tests.tips.helpers import call, jpeg_with_gps, send_tip, upload


async def test_analyst_reads_a_tip_and_replies(chromium: Browser, tip_server: TipServer,
                                               tipster: aiohttp.ClientSession) -> None:
    base = tip_server.base
    tip = await send_tip(tipster, base, what="Graffiti crew with a ladder at the rail bridge",
                         lat=39.8, lon=-89.6)
    await upload(tipster, base, tip, jpeg_with_gps())
    analyst = await create_user(tip_server.client, tip_server.admin, Role.ANALYST)
    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await login_form(page, base, analyst.username, analyst.password, analyst.next_code(),
                     start="/console/tips/")
    await page.click(f"[data-tip='{tip['number']}']")
    await page.wait_for_selector("#tip-detail:not([hidden])")
    assert "rail bridge" in (await page.text_content("#d-what") or "")

    async def photo_shown() -> bool:
        width = await page.eval_on_selector("#d-media img", "img => img.naturalWidth")
        return bool(width == 32)  # the copy, turned upright

    await poll(photo_shown, timeout=20, what="the photo's copy")
    assert await page.query_selector("#d-media a") is None  # originals: investigators only
    await page.fill("#d-reply-text", "Thanks. Were they there before midnight?")
    await page.click("#d-reply button[type=submit]")
    await page.wait_for_selector("#d-messages li")
    assert (await page.text_content("#d-status")) == "in_review"
    await page.screenshot(path=str(artifact("tip-queue.png")), full_page=True)
    thread = await call(tipster, "POST", f"{base}/tips/api/follow-up", 200,
                        headers={"Origin": base},
                        json={"number": tip["number"], "passphrase": tip["passphrase"]})
    assert [m["body"] for m in thread["messages"]] == [
        "Thanks. Were they there before midnight?"]
    await page.close()


async def test_investigator_promotes_a_photo_to_evidence(
        chromium: Browser, tip_server: TipServer, tipster: aiohttp.ClientSession) -> None:
    base = tip_server.base
    tip = await send_tip(tipster, base)
    await upload(tipster, base, tip, jpeg_with_gps())
    investigator = await create_user(tip_server.client, tip_server.admin, Role.INVESTIGATOR)
    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await login_form(page, base, investigator.username, investigator.password,
                     investigator.next_code(), start="/console/tips/")
    await page.click(f"[data-tip='{tip['number']}']")
    await page.wait_for_selector("#d-media form[data-promote]")
    await page.fill("#d-media form[data-promote] input[name=case]", "2026-000777")
    await page.click("#d-media form[data-promote] button[type=submit]")
    shown = await page.wait_for_selector("#d-media [data-evidence]")
    assert shown is not None
    item_id = await shown.get_attribute("data-evidence")
    assert item_id is not None
    assert item_id.startswith("item-")
    audit = await call(tip_server.client.session, "GET", f"{base}/api/audit?limit=500", 200,
                       headers=tip_server.admin)
    assert any(e["action"] == "evidence.item.add" and e["target"] == f"item:{item_id}"
               for e in audit["entries"])
    await page.close()
