"""The open data API and the public page, on the real application."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from incidents.routes import INCIDENT_SERVICE
from rtcc.appkeys import CLOCK
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, security_settings
from tests.transparency.helpers import seed_incident
from transparency.keys import TRANSPARENCY

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BURGLARY_AT = (39.80123, -89.64987)
SECRET_AT = (39.79011, -89.66011)
RECORDS = ("case_number,nibrs_code,offense,occurred_at,latitude,longitude,address\r\n"
           "R-1,220,Burglary,2026-11-20T14:05:00Z,39.7973,-89.6448,413 S 8th St\r\n"
           "R-2,11A,Rape,2026-11-20T15:00:00Z,39.7901,-89.6601,12 Elm St\r\n")


async def _client(tmp_path: Path, make_client: MakeClient) -> TestClient[Any, Any]:
    app = create_app(security_settings(tmp_path))
    app[CLOCK] = NOW.timestamp
    return await make_client(app)


async def test_open_data_publishes_by_the_policy(tmp_path: Path, make_client: MakeClient,
                                                 bootstrap_token: str) -> None:
    client = await _client(tmp_path, make_client)
    app = client.app
    assert app is not None
    store = app[INCIDENT_SERVICE].store
    day = NOW - timedelta(days=3)
    await seed_incident(store, 1, "BURG", day, *BURGLARY_AT, priority=2, minutes=(2, 8, 40))
    await seed_incident(store, 2, "DV", day, *SECRET_AT, priority=1)
    await seed_incident(store, 3, "SUSP", NOW - timedelta(hours=2), *BURGLARY_AT)
    await seed_incident(store, 4, "MVA", day, 39.81, -89.64, priority=2,
                        minutes=(4, None, None))

    refused = await client.post("/api/transparency/records", data=RECORDS,
                                headers={"Content-Type": "text/csv"})
    assert refused.status == 401
    answer = await client.post("/api/transparency/records", data=RECORDS,
                               headers={"Content-Type": "text/csv", **bearer(bootstrap_token)})
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["imported"] == 2
    await app[TRANSPARENCY].refresh()

    listing = await client.get("/public/api/v1/incidents.json")
    assert listing.status == 200
    body = await listing.json()
    assert sorted(i["type_code"] for i in body["incidents"]) == ["220", "BURG", "MVA"]
    assert set(body["incidents"][0]) == {"id", "source", "type_code", "type_label",
                                         "occurred_hour", "lat", "lon", "block", "district"}
    burglary = next(i for i in body["incidents"] if i["type_code"] == "BURG")
    assert (burglary["lat"], burglary["lon"]) != BURGLARY_AT
    assert burglary["occurred_hour"] == day.isoformat()

    everything = b""
    for name in ("incidents.json", "incidents.geojson", "incidents.csv", "metrics.json",
                 "metrics.csv", "program.json"):
        got = await client.get(f"/public/api/v1/{name}")
        assert got.status == 200, name
        everything += await got.read()
    page = await client.get("/public/")
    assert page.status == 200
    everything += await page.read()
    # The redacted codes are named only in the page's explanation of what is never shown.
    files = everything.split(b"<!doctype html>")[0]
    assert b"DV" not in files
    assert b"11A" not in files
    for secret in (b"413 S", b"12 Elm", b"39.80123", b"39.79011", b"t00002"):
        assert secret not in everything, secret

    geo = json.loads(await (await client.get("/public/api/v1/incidents.geojson")).read())
    assert len(geo["features"]) == 3
    rows = list(csv.DictReader(io.StringIO(
        await (await client.get("/public/api/v1/incidents.csv")).text())))
    assert [r["block"] for r in rows if r["type_code"] == "220"] == [""]

    metrics = (await (await client.get("/public/api/v1/metrics.json")).json())["metrics"]
    response = next(m for m in metrics if (m["measure"], m["group_by"]) == ("response", "all"))
    # BURG 8 min, DV 6 min (counted: metrics cover every call), MVA and SUSP: SUSP 6 min,
    # MVA never on scene.
    assert (response["count"], response["missing"], response["median_s"]) == (3, 1, 360.0)

    program = await (await client.get("/public/api/v1/program.json")).json()
    assert program["activity_available"] is True
    assert "by_sharing" in program

    filtered = await client.get("/public/api/v1/incidents.json?type=220&from=2026-11-20")
    assert [i["type_code"] for i in (await filtered.json())["incidents"]] == ["220"]
    assert (await client.get("/public/api/v1/incidents.json?from=soon")).status == 400

    etag = listing.headers["ETag"]
    again = await client.get("/public/api/v1/incidents.json", headers={"If-None-Match": etag})
    assert again.status == 304
    index = await (await client.get("/public/api/v1/")).json()
    assert "occurred_hour" in index["incident_fields"]
