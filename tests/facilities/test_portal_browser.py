"""An owner, on a phone-sized Chromium, creates a facility in the portal, uploads a real PDF
floor plan that the server renders to an image, places a room by clicking on the plan, makes an
enrolment QR code, and sees the alert a phone enrolled with it raised, with its timeline."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw
from playwright.async_api import Browser, Page

from catalog.keys import CATALOG_STORE
from catalog.model import Site
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, create_user, security_settings
from tests.fixtures.browser import artifact, login_form, poll


def plan_pdf() -> bytes:
    """A one-page PDF floor plan: outer walls and two rooms."""
    image = Image.new("RGB", (850, 600), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 830, 580), outline=(0, 0, 0), width=6)
    draw.line((425, 20, 425, 580), fill=(0, 0, 0), width=4)
    draw.text((100, 100), "Library 104", fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PDF", resolution=100.0)
    return out.getvalue()


async def _ready(page: Page) -> None:
    await page.wait_for_selector("body[data-ready=true]")


async def test_an_owner_builds_a_facility_profile_with_plan_room_and_qr_code(
        chromium: Browser, tmp_path: Path, make_client: MakeClient, bootstrap_token: str
) -> None:
    client = await make_client(create_app(security_settings(tmp_path)))
    base = str(client.make_url("")).rstrip("/")
    admin = bearer(bootstrap_token)
    owner = await create_user(client, admin, Role.OWNER)
    assert owner.owner_id is not None
    lat, lon, d = 39.8, -89.645, 0.0005
    await client.app[CATALOG_STORE].put_site(Site(
        id="lincoln-site", owner_id=owner.owner_id, address="1 School Rd",
        outline=((lon - d, lat - d), (lon + d, lat - d), (lon + d, lat + d), (lon - d, lat + d))))

    page = await chromium.new_page(viewport={"width": 390, "height": 844}, is_mobile=True,
                                   has_touch=True)
    await login_form(page, base, owner.username, owner.password, start="/register/facilities")
    await _ready(page)
    await page.fill("#name", "Lincoln Elementary")
    await page.select_option("#site", "lincoln-site")
    await page.click("#create-button")
    await page.wait_for_url("**/register/facility?id=*")
    await _ready(page)
    facility_id = page.url.rsplit("=", 1)[1]
    assert await page.text_content("#title") == "Lincoln Elementary"

    await page.click("[data-list=contacts] > button")
    await page.fill("[data-items=contacts] input[data-name=name]", "Principal Ruiz")
    await page.fill("[data-items=contacts] input[data-name=phone]", "555-0100")
    await page.click("[data-list=staging_areas] > button")
    await page.fill("[data-items=staging_areas] input[data-name=text]", "Church parking lot")
    await page.click("#lists button[type=submit]")
    await page.wait_for_selector("#lists-notice:text('Saved.')")
    await page.click("#reviewed")
    saved = await (await page.request.get(f"{base}/api/facilities/{facility_id}")).json()
    assert saved["contacts"] == [{"name": "Principal Ruiz", "phone": "555-0100"}]
    assert saved["staging_areas"] == [{"text": "Church parking lot"}]

    await page.fill("#floor-name", "Ground floor")
    await page.click("#add-floor button[type=submit]")
    await page.wait_for_selector("[data-floor] [data-upload]")
    pdf = tmp_path / "plan.pdf"
    pdf.write_bytes(plan_pdf())
    await page.set_input_files("[data-upload] input[type=file]", str(pdf))
    await page.click("[data-upload] button[type=submit]")
    image = await page.wait_for_selector("[data-plan] img")
    assert image is not None

    async def rendered() -> int:
        return int(await (await image.get_property("naturalWidth")).json_value())

    width = await poll(rendered, timeout=20, what="the rendered plan in the page")
    profile = await page.request.get(f"{base}/api/facilities/{facility_id}")
    floor = (await profile.json())["floors"][0]
    assert floor["has_plan"]
    assert width == floor["plan_width"]
    assert abs(floor["plan_width"] / floor["plan_height"] - 850 / 600) < 0.01  # the PDF page

    plan = await page.query_selector("[data-plan]")
    assert plan is not None
    box = await plan.bounding_box()
    assert box is not None
    await plan.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.5})
    await page.fill("[data-add-room] input[id^=room-name]", "Library")
    await page.fill("[data-add-room] input[id^=room-number]", "104")
    assert abs(float(await page.input_value("[data-add-room] input[id^=room-x]")) - 25) < 2
    await page.click("[data-add-room] button[type=submit]")
    await page.wait_for_selector("[data-plan] .room-pin")
    assert await page.text_content("[data-plan] .room-pin") == "104"
    (room,) = (await (await page.request.get(
        f"{base}/api/facilities/{facility_id}")).json())["rooms"]
    assert abs(room["x"] - 0.25) < 0.03
    assert abs(room["y"] - 0.5) < 0.03

    await page.fill("#device-label", "Room 104 teacher")
    await page.select_option("#device-room", room["id"])
    await page.click("#make-qr")
    await page.wait_for_selector("#qr:not([hidden])")
    src = await page.get_attribute("#qr-image", "src") or ""
    assert src.startswith("data:image/svg+xml")
    qr = await page.query_selector("#qr-image")
    assert qr is not None

    async def qr_shown() -> int:
        assert qr is not None
        return int(await (await qr.get_property("naturalWidth")).json_value())

    await poll(qr_shown, timeout=20, what="the QR code image")
    url = await page.text_content("#qr-url") or ""
    assert "/panic/#enrol=" in url
    await page.screenshot(path=str(artifact("portal-facility.png")), full_page=True)

    enrolled = await client.post("/panic/api/enrol", json={"secret": url.split("#enrol=")[1]})
    device = await enrolled.json()
    assert enrolled.status == 201, device
    raised = await client.post("/panic/api/alerts", headers={
        "X-Device-Token": device["device_token"]}, json={"id": "press-0001-aaaa",
                                                        "level": "lockdown", "drill": True})
    assert raised.status == 201
    await page.reload()
    await _ready(page)
    assert "Room 104 teacher" in (await page.text_content("#devices") or "")
    alert = await page.text_content("#alerts [data-alert]") or ""
    assert "DRILL: lockdown, room 104" in alert
    assert "triggered" in alert
