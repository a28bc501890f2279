"""The notifications panel in headless Chromium: facilities on the map, a CAD alert's
deliveries with who acknowledged and who did not, a re-send, and a manual send with a preview."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser

from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, create_user, role_headers
from tests.fixtures.browser import artifact, login_form, poll
from tests.incidents.eidos import eido
from tests.notify.sinks import SmtpServer, until
from tests.notify.test_notify import INCIDENT, add, east, mail, north, settings


async def test_the_panel_shows_who_was_notified_and_who_acknowledged(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient,
        chromium: Browser) -> None:
    with SmtpServer() as sink:
        client = await make_client(create_app(settings(tmp_path, sink.port)))
        base = str(client.make_url("")).rstrip("/")
        admin = bearer(bootstrap_token)
        _, cad = await role_headers(client, admin, Role.INTEGRATION)
        analyst = await create_user(client, admin, Role.ANALYST, username="analyst9")
        await add(client, admin, "lincoln-school", "school", north(200),
                  mail("office@lincoln.example"))
        await add(client, admin, "st-john-hospital", "hospital", east(300),
                  mail("security@stjohn.example"))
        await add(client, admin, "arena", "stadium", east(-150), mail("ops@arena.example"))
        assert (await client.post("/api/cad/eido", json=eido(3, lat=INCIDENT[0],
                                                             lon=INCIDENT[1]),
                                  headers=cad)).status == 200
        await until(lambda: len(sink.received()) == 2, what="the CAD alert's mails")
        (lincoln,) = sink.to("office@lincoln.example")
        link = re.search(r"(/notify/ack/\S+)", lincoln.body)
        assert link is not None
        assert (await client.get(link.group(1))).status == 200

        context = await chromium.new_context(viewport={"width": 1440, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(20_000)
        try:
            await login_form(page, base, analyst.username, analyst.password,
                             analyst.next_code(), start="/console/notify/")
            await page.wait_for_selector("#alerts li")
            await page.click("#alerts li")
            await page.wait_for_selector("#deliveries tr")

            async def rows() -> dict[str, str] | None:
                found = {}
                for row in await page.query_selector_all("#deliveries tr"):
                    cells = [await c.inner_text() for c in await row.query_selector_all("td")]
                    found[cells[2]] = cells[5]
                return found if len(found) == 2 else None

            table = await poll(rows, timeout=20, what="the deliveries")
            assert table["security@stjohn.example"] == "not yet"
            assert table["office@lincoln.example"] != "not yet"
            counts = await page.inner_text("#detail-counts")
            assert "1 acknowledged, 1 not" in counts
            await page.screenshot(path=str(artifact("notify-panel.png")))

            await page.click("#deliveries tr:has-text('stjohn') button")
            await until(lambda: len(sink.to("security@stjohn.example")) == 2,
                        what="the re-sent mail")
            resent = sink.to("security@stjohn.example")
            assert resent[0].key == resent[1].key  # the same message, recognisable

            # A manual send: a circle around the arena, stadiums only, previewed first.
            await page.check("#categories input[value=school]", force=True)
            for name in ("school", "hospital"):
                await page.uncheck(f"#categories input[value={name}]")
            box = await page.query_selector("#map")
            assert box is not None
            await box.click()  # a circle of 500 m around the map's centre
            await page.click("#preview")
            await page.wait_for_selector("#recipients li")
            assert "Arena" in await page.inner_text("#recipients")
            await page.click("#send")
            await until(lambda: len(sink.to("ops@arena.example")) == 1, what="the manual send")
        finally:
            await context.close()
