"""The tip page's form works without JavaScript for the text: a plain POST answers a page with
the tip number and passphrase, which then open the tip's thread."""

from __future__ import annotations

import re

import aiohttp

from tests.tips.conftest import TipServer
from tests.tips.helpers import call


async def test_plain_form_post_gives_number_and_passphrase(
        tip_server: TipServer, tipster: aiohttp.ClientSession) -> None:
    base = tip_server.base
    async with tipster.get(f"{base}/tips/") as page:
        assert 'action="/tips/send"' in await page.text()
    form = {"what": "Two men loading copper pipe into a white pickup at night",
            "where": "Yard behind 40 Elm St", "when": "around 2 am", "contact": "",
            "lat": "", "lon": "", "files": ""}
    async with tipster.post(f"{base}/tips/send", data=form, headers={"Origin": base}) as got:
        assert got.status == 201
        assert got.content_type == "text/html"
        assert got.headers["Cache-Control"] == "no-store"
        text = await got.text()
    number = re.search(r"Tip number: (T-[A-Z0-9]{4}-[A-Z0-9]{4})", text)
    passphrase = re.search(r"Passphrase: ([^<]+)</p>", text)
    assert number is not None, text
    assert passphrase is not None, text
    thread = await call(tipster, "POST", f"{base}/tips/api/follow-up", 200,
                        headers={"Origin": base},
                        json={"number": number.group(1), "passphrase": passphrase.group(1)})
    assert thread["messages"] == []
    queue = await call(tip_server.client.session, "GET", f"{base}/api/tips", 200,
                       headers=tip_server.analyst)
    assert any(t["number"] == number.group(1) and "copper pipe" in t["what"]
               for t in queue["tips"])

    # A refusal is a page that says why, not JSON.
    async with tipster.post(f"{base}/tips/send", data={"what": "short"},
                            headers={"Origin": base}) as got:
        assert got.status == 400
        assert "at least 10 characters" in await got.text()
