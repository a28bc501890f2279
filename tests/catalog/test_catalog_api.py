"""The catalog HTTP API through aiohttp's test client (SQLite file; Redis where it matters)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from catalog import CATALOG_STORE
from catalog.api import add_routes
from catalog.geo import destination
from rtcc.access import SecretBox
from rtcc.appkeys import CAMERA_DIRECTORY
from rtcc.policy import policy_of
from tests.catalog.conftest import CANARY_PASSWORD, catalog_app
from tests.fixtures.auth import MakeClient

CENTER = (39.80172, -89.64383)
Client = TestClient[Any, Any]


def camera_json(camera_id: str, lat: float, lon: float, **fields: Any) -> dict[str, Any]:
    return {"id": camera_id, "name": f"Camera {camera_id}", "lat": lat, "lon": lon, **fields}


@pytest.fixture
async def client(tmp_path: Path, secret_box: SecretBox, make_client: MakeClient) -> Client:
    app = catalog_app(f"sqlite:///{tmp_path}/catalog.sqlite3", secret_box)
    return await make_client(app)


async def _post(client: Client, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = await client.post("/api/cameras", json=body)
    data = await response.json()
    assert response.status == status, data
    return data  # type: ignore[no-any-return]


async def _error(client: Client, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    response = await client.request(method, url, **kwargs)
    data = await response.json()
    assert response.status == 400, data
    assert set(data) >= {"error", "field", "allowed"}
    return data  # type: ignore[no-any-return]


async def test_near_and_sees_answer_geojson(client: Client) -> None:
    looking = destination(*CENTER, 180.0, 40.0)  # 40 m south, looking north at the pin
    await _post(client, camera_json("looker", *looking, heading=0, fov=60, range_m=80))
    await _post(client, camera_json("close", *destination(*CENTER, 90.0, 10.0), heading=90))
    await _post(client, camera_json("far", *destination(*CENTER, 0.0, 3000.0)))

    response = await client.get("/api/cameras", params={
        "near": f"{CENTER[0]},{CENTER[1]}", "radius_m": "1000", "limit": "5"})
    assert response.status == 200
    data = await response.json()
    assert data["type"] == "FeatureCollection"
    assert [f["id"] for f in data["features"]] == ["close", "looker"]
    first = data["features"][0]
    assert first["geometry"]["type"] == "Point"
    assert first["properties"]["distance_m"] == pytest.approx(10.0, abs=0.01)
    assert first["properties"]["bearing_deg"] == pytest.approx(90.0, abs=0.01)

    response = await client.get("/api/cameras", params={"sees": f"{CENTER[0]},{CENTER[1]}"})
    data = await response.json()
    assert [(f["id"], f["properties"]["sees"]) for f in data["features"]] == [
        ("looker", True), ("close", False)]
    assert data["total"] == 2
    response = await client.get("/api/cameras", params={
        "sees": f"{CENTER[0]},{CENTER[1]}", "radius_m": "0"})
    assert [f["id"] for f in (await response.json())["features"]] == ["looker"]


@pytest.mark.parametrize(("query", "field", "allowed"), [
    ({"near": "91,0"}, "near", "-90..90"),
    ({"near": "nan,0"}, "near", "-90..90"),
    ({"near": "0,Infinity"}, "near", "-180..180"),
    ({"near": "10"}, "near", "longitude"),
    ({"near": "0,0", "radius_m": "10000000"}, "radius_m", "50000"),
    ({"near": "0,0", "radius_m": "-5"}, "radius_m", "50000"),
    ({"near": "0,0", "limit": "0"}, "limit", "1..1000"),
    ({"near": "0,0", "sees": "0,0"}, "sees", "near"),
    ({"sharing": "everyone"}, "sharing", "live_always"),
    ({"kind": "castle"}, "kind", "worship"),
    ({"nearr": "0,0"}, "nearr", "near"),
    ({"radius_m": "10"}, "radius_m", "near"),
])
async def test_bad_query_names_the_field(client: Client, query: dict[str, str], field: str,
                                         allowed: str) -> None:
    data = await _error(client, "GET", "/api/cameras", params=query)
    assert data["field"] == field
    assert allowed in data["allowed"]


@pytest.mark.parametrize(("body", "field", "allowed"), [
    ({"lat": 91}, "lat", "-90..90"),
    ({"lon": -180.5}, "lon", "-180..180"),
    ({"heading": 361}, "heading", "0..360"),
    ({"fov": 0.5}, "fov", "1..360"),
    ({"range_m": 0}, "range_m", "5000"),
    ({"lat": "north"}, "lat", "-90..90"),
    ({"lat": True}, "lat", "-90..90"),
    ({"id": "Bad Id"}, "id", "a-z"),
    ({"id": "export"}, "id", "not import, export"),
    ({"kind": "castle"}, "kind", "school"),
    ({"sharing": "sometimes"}, "sharing", "on_request"),
    ({"windows": [{"days": ["mon"], "start": "25:00"}]}, "windows[0].start", "HH:MM"),
    ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
    ({"profiles": {"main": {"url": "http://cam/"}}}, "profiles.main.url", "rtsp://"),
    ({"profiles": {"main": {"url": "rtsp://u:p@cam/"}}}, "profiles.main.url", "credentials"),
    ({"profiles": {"main": {"url": "rtsp://u:pa/ss@cam/"}}}, "profiles.main.url", "credentials"),
    ({"profiles": {"third": {"url": "rtsp://cam/"}}}, "profiles.third", "main, sub"),
    ({"password_ciphertext": "x"}, "password_ciphertext", "profiles"),
])
async def test_bad_camera_names_the_field(client: Client, body: dict[str, Any], field: str,
                                          allowed: str) -> None:
    data = await _error(client, "POST", "/api/cameras",
                        json={**camera_json("cam-1", 1.0, 1.0), **body})
    assert (data["field"], allowed in data["allowed"]) == (field, True), data


async def test_nan_and_infinity_in_json_are_refused(client: Client) -> None:
    for literal, field in (("NaN", "lat"), ("Infinity", "lon")):
        body = '{{"id": "n", "name": "n", "lat": {}, "lon": {}}}'.format(
            literal if field == "lat" else "1", literal if field == "lon" else "1")
        data = await _error(client, "POST", "/api/cameras", data=body,
                            headers={"Content-Type": "application/json"})
        assert data["field"] == field
        assert "finite" in data["error"]


async def test_crud_keeps_the_password_secret(client: Client, secret_box: SecretBox) -> None:
    created = await client.post("/api/cameras", json=camera_json(
        "door", *CENTER, sharing="live_always",
        profiles={"main": {"url": "rtsp://10.1.1.1/main", "username": "view",
                           "password": CANARY_PASSWORD}}))
    assert created.status == 201
    assert created.headers["Location"] == "/api/cameras/door"
    texts = [await created.text()]
    feature = json.loads(texts[0])
    assert feature["properties"]["profiles"]["main"] == {
        "url": "rtsp://10.1.1.1/main", "username": "view", "has_password": True,
        "transport": "tcp"}
    assert (await _post(client, camera_json("door", 0, 0), status=409))["field"] == "id"

    # PUT without a password keeps it; PATCH changes one field
    put = await client.put("/api/cameras/door", json=camera_json(
        "door", *CENTER, name="Front door", profiles={"main": {"url": "rtsp://10.1.1.1/main"}}))
    assert put.status == 200
    texts.append(await put.text())
    assert json.loads(texts[-1])["properties"]["profiles"]["main"]["has_password"] is True
    patch = await client.patch("/api/cameras/door", json={"sharing": "on_request"})
    texts.append(await patch.text())
    assert json.loads(texts[-1])["properties"]["sharing"] == "on_request"
    assert json.loads(texts[-1])["properties"]["name"] == "Front door"
    got = await client.get("/api/cameras/door")
    texts.append(await got.text())
    store = client.app[CATALOG_STORE]
    stored = await store.get("door")
    assert stored is not None
    assert secret_box.decrypt(stored.profiles["main"].password_ciphertext) == CANARY_PASSWORD
    listing = await client.get("/api/cameras")
    texts.append(await listing.text())
    for text in texts:
        assert CANARY_PASSWORD not in text
        assert stored.profiles["main"].password_ciphertext not in text
        assert "ciphertext" not in text

    # a PUT of an unknown id registers it; the body id must match the URL
    assert (await client.put("/api/cameras/new-one", json=camera_json("new-one", 1, 1))).status \
        == 201
    bad = await client.put("/api/cameras/new-one", json=camera_json("other", 1, 1))
    assert (await bad.json())["field"] == "id"
    assert (await client.delete("/api/cameras/door")).status == 204
    missing = await client.get("/api/cameras/door")
    assert missing.status == 404
    assert (await missing.json())["field"] == "id"
    assert (await client.delete("/api/cameras/door")).status == 404


async def test_listing_pages_by_cursor(client: Client) -> None:
    for i in range(5):
        await _post(client, camera_json(f"c{i}", 1.0, 1.0 + i / 1000, kind="school" if i % 2
                                        else "public"))
    first = await (await client.get("/api/cameras", params={"limit": "2"})).json()
    assert [f["id"] for f in first["features"]] == ["c0", "c1"]
    assert first["next"] == "c1"
    rest = await (await client.get("/api/cameras", params={"after": "c1", "limit": "10"})).json()
    assert [f["id"] for f in rest["features"]] == ["c2", "c3", "c4"]
    assert rest["next"] is None
    schools = await (await client.get("/api/cameras", params={"kind": "school"})).json()
    assert [f["id"] for f in schools["features"]] == ["c1", "c3"]


async def test_polygon_and_route_search(client: Client) -> None:
    await _post(client, camera_json("in", 0.5, 0.5))
    await _post(client, camera_json("road", 0.0003, 0.3, sharing="live_always"))
    await _post(client, camera_json("road-private", 0.0003, 0.4))
    square = {"type": "Polygon", "coordinates": [[[0, 0.1], [1, 0.1], [1, 1], [0, 1], [0, 0.1]]]}
    data = await (await client.post("/api/cameras/search", json={"polygon": square})).json()
    assert [f["id"] for f in data["features"]] == ["in"]
    route = {"type": "LineString", "coordinates": [[0, 0], [1, 0]]}
    data = await (await client.post("/api/cameras/search", json={
        "route": route, "buffer_m": 60, "filters": {"sharing": ["live_always"]}})).json()
    assert [f["id"] for f in data["features"]] == ["road"]
    assert data["features"][0]["properties"]["along_m"] == pytest.approx(33358, rel=0.001)

    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    data = await _error(client, "POST", "/api/cameras/search", json={"polygon": bowtie})
    assert (data["field"], "intersects" in data["error"]) == ("polygon", True)
    many = [[0.001 * (i % 2), 0.0001 * i] for i in range(1001)]
    data = await _error(client, "POST", "/api/cameras/search", json={
        "polygon": {"type": "Polygon", "coordinates": [many]}})
    assert (data["field"], data["allowed"]) == ("polygon", "at most 1000")
    data = await _error(client, "POST", "/api/cameras/search", json={"route": route,
                                                                      "buffer_m": 1e9})
    assert data["field"] == "buffer_m"
    data = await _error(client, "POST", "/api/cameras/search", json={"shape": square})
    assert data["field"] == "shape"
    data = await _error(client, "POST", "/api/cameras/search", data=b"{oops",
                        headers={"Content-Type": "application/json"})
    assert data["field"] == "body"


CSV_HEADER = "id,name,lat,lon,heading,fov,range_m,kind,sharing,windows,main_url,main_username," \
    "main_password\n"


async def test_csv_import_with_bom_and_round_trip(client: Client, tmp_path: Path,
                                                  secret_box: SecretBox,
                                                  make_client: MakeClient) -> None:
    body = ("\ufeff" + CSV_HEADER
            + f"a,=HYPERLINK(\"x\"),39.8,-89.6,90,60,50,school,live_emergency,mon-fri 07:00-18:00,"
              f"rtsp://10.0.0.2/a,viewer,{CANARY_PASSWORD}\n"
            + "b,\"Quoted, name\",39.81,-89.61,,,,,,,,,\n").encode()
    response = await client.post("/api/cameras/import", data=body,
                                  headers={"Content-Type": "text/csv"})
    assert response.status == 200, await response.text()
    assert await response.json() == {"imported": 2, "mode": "create"}
    a = await client.app[CATALOG_STORE].get("a")
    assert a is not None
    assert a.name == '=HYPERLINK("x")'
    assert [w.days for w in a.windows] == [["mon", "tue", "wed", "thu", "fri"]]

    exported = await client.get("/api/cameras/export", params={"format": "csv"})
    assert exported.headers["Content-Type"].startswith("text/csv")
    text = await exported.text()
    assert CANARY_PASSWORD not in text
    assert "password" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["name"] == "'=HYPERLINK(\"x\")"  # a spreadsheet shows it, does not run it

    geo = await client.get("/api/cameras/export", params={"format": "geojson"})
    collection = await geo.json(content_type=None)
    assert [f["id"] for f in collection["features"]] == ["a", "b"]
    assert CANARY_PASSWORD not in json.dumps(collection)

    # both exports import into an empty catalog and give the same cameras back
    for name, data, content_type in (("csv", text.encode(), "text/csv"),
                                     ("geojson", json.dumps(collection).encode(),
                                      "application/geo+json")):
        other = await make_client(catalog_app(f"sqlite:///{tmp_path}/{name}.sqlite3", secret_box))
        answer = await other.post("/api/cameras/import", data=data,
                                  headers={"Content-Type": content_type})
        assert answer.status == 200, await answer.text()
        copy = await other.app[CATALOG_STORE].get("a")
        assert copy is not None
        assert (copy.name, copy.windows, copy.kind, copy.profiles["main"].username) == (
            a.name, a.windows, a.kind, "viewer")
        assert copy.profiles["main"].password_ciphertext == ""


@pytest.mark.parametrize(("body", "field", "allowed"), [
    (b"", "body", "header row"),
    (b"\xef\xbb\xbf\n\n", "body", "header row"),
    (b"id,name,lat\n", "lon", "header row"),
    (b"id,name,lat,lon,colour\n", "colour", "heading"),
    (b"id,name,lat,lon\n", "body", "header row"),
    (b"id,name,lat,lon\n\xff\xfe,x,1,1\n", "body", "UTF-8"),
])
async def test_bad_csv_files(client: Client, body: bytes, field: str, allowed: str) -> None:
    data = await _error(client, "POST", "/api/cameras/import", data=body,
                        headers={"Content-Type": "text/csv"})
    assert (data["field"], allowed in data["allowed"]) == (field, True), data


async def test_bad_rows_are_all_reported_and_nothing_is_written(client: Client) -> None:
    await _post(client, camera_json("keep", 1.0, 1.0))
    body = (CSV_HEADER
            + "ok-1,Fine,10,10,,,,,,,,,\n"
            + "bad-lat,Bad,95,10,,,,,,,,,\n"
            + "bad-heading,Bad,10,10,400,,,,,,,,\n"
            + "short,row\n"
            + "ok-1,Again,10,10,,,,,,,,,\n"
            + "bad-url,Bad,10,10,,,,,,,http://x/,,\n").encode()
    data = await _error(client, "POST", "/api/cameras/import", data=body,
                        headers={"Content-Type": "text/csv"})
    assert [(r["row"], r["field"]) for r in data["rows"]] == [
        (2, "lat"), (3, "heading"), (4, "(row)"), (5, "id"), (6, "main_url")]
    assert data["rows"][3]["reason"] == "duplicate of row 1"
    assert "-90..90" in data["rows"][0]["allowed"]
    listing = await (await client.get("/api/cameras")).json()
    assert [f["id"] for f in listing["features"]] == ["keep"]


async def test_import_conflict_and_upsert(client: Client, secret_box: SecretBox) -> None:
    await _post(client, camera_json("taken", 1.0, 1.0, profiles={
        "main": {"url": "rtsp://10.0.0.9/", "password": CANARY_PASSWORD}}))
    body = (CSV_HEADER + "fresh,Fresh,2,2,,,,,,,,,\n"
            + "taken,Taken again,3,3,,,,,,,rtsp://10.0.0.9/,,\n").encode()
    response = await client.post("/api/cameras/import", data=body,
                                 headers={"Content-Type": "text/csv"})
    assert response.status == 409
    data = await response.json()
    assert [(r["row"], r["field"]) for r in data["rows"]] == [(2, "id")]
    store = client.app[CATALOG_STORE]
    assert await store.get("fresh") is None
    response = await client.post("/api/cameras/import", params={"mode": "upsert"}, data=body,
                                 headers={"Content-Type": "text/csv"})
    assert response.status == 200
    taken = await store.get("taken")
    assert taken is not None
    assert (taken.name, taken.lat) == ("Taken again", 3.0)
    assert secret_box.decrypt(taken.profiles["main"].password_ciphertext) == CANARY_PASSWORD
    unsupported = await client.post("/api/cameras/import", data=b"<xml/>",
                                     headers={"Content-Type": "application/xml"})
    assert unsupported.status == 415
    assert (await unsupported.json())["field"] == "Content-Type"


async def test_geojson_import_reports_features(client: Client) -> None:
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "g1", "geometry": {"type": "Point", "coordinates": [10, 20]},
         "properties": {"name": "G1", "heading": 45}},
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
         "properties": {"id": "g2", "name": "G2"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [10, 95]},
         "properties": {"id": "g3", "name": "G3"}},
    ]}
    data = await _error(client, "POST", "/api/cameras/import", data=json.dumps(collection),
                        headers={"Content-Type": "application/geo+json"})
    assert [(r["row"], r["field"]) for r in data["rows"]] == [(2, "geometry"), (3, "lat")]
    collection["features"] = collection["features"][:1]
    response = await client.post("/api/cameras/import", data=json.dumps(collection),
                                 headers={"Content-Type": "application/geo+json"})
    assert response.status == 200
    feature = await (await client.get("/api/cameras/g1")).json()
    assert feature["geometry"]["coordinates"] == [10, 20]
    assert feature["properties"]["heading"] == 45


async def test_import_and_export_on_redis(redis_url: str, secret_box: SecretBox,
                                          make_client: MakeClient) -> None:
    client = await make_client(catalog_app(redis_url, secret_box))
    body = (CSV_HEADER + "r1,R1,1,1,,,,,,,,,\n" + "r2,R2,95,1,,,,,,,,,\n").encode()
    data = await _error(client, "POST", "/api/cameras/import", data=body,
                        headers={"Content-Type": "text/csv"})
    assert [(r["row"], r["field"]) for r in data["rows"]] == [(2, "lat")]
    assert await client.app[CATALOG_STORE].count() == 0
    body = body.replace(b",95,", b",2,")
    assert (await client.post("/api/cameras/import", data=body,
                              headers={"Content-Type": "text/csv"})).status == 200
    text = await (await client.get("/api/cameras/export", params={"format": "csv"})).text()
    assert [r["id"] for r in csv.DictReader(io.StringIO(text))] == ["r1", "r2"]


async def test_first_start_seeds_and_later_starts_keep_the_catalog(
    tmp_path: Path, secret_box: SecretBox, make_client: MakeClient,
) -> None:
    url = f"sqlite:///{tmp_path}/seeded.sqlite3"
    seeds = [{"id": "seed-1", "name": "Seed", "lat": 1, "lon": 2, "profiles": {
        "main": {"url": "rtsp://127.0.0.1:8554/x", "username": "u",
                 "password": CANARY_PASSWORD}}}]
    client = await make_client(catalog_app(url, secret_box, seeds))
    store = client.app[CATALOG_STORE]
    assert await client.app[CAMERA_DIRECTORY].consent_of("seed-1") == \
        await store.consent_of("seed-1")
    seeded = await store.get("seed-1")
    assert seeded is not None
    assert secret_box.decrypt(seeded.profiles["main"].password_ciphertext) == CANARY_PASSWORD
    assert (await client.delete("/api/cameras/seed-1")).status == 204
    await _post(client, camera_json("added", 3.0, 3.0))
    await client.close()
    again = await make_client(catalog_app(url, secret_box, [*seeds, {"id": "seed-2", "name": "Seed 2", "lat": 1, "lon": 2}]))
    listing = await (await again.get("/api/cameras")).json()
    assert [f["id"] for f in listing["features"]] == ["added"]


def test_every_route_has_a_policy_and_is_described() -> None:
    app = web.Application()
    add_routes(app)
    from catalog.openapi import openapi_document

    document = openapi_document(app.router.routes())
    routes = [r for r in app.router.routes() if r.method != "HEAD"]
    assert len(routes) == 11
    for route in routes:
        assert policy_of(route.handler) is not None, route
        info = route.resource.get_info()  # type: ignore[union-attr]
        path = info.get("path") or info.get("formatter")
        operation = document["paths"][path][route.method.lower()]
        assert operation["x-rtcc-roles"], route
    listed = {p["name"] for p in document["paths"]["/api/cameras"]["get"]["parameters"]}
    from catalog.params import LIST_PARAMS

    assert listed == set(LIST_PARAMS)
    assert document["paths"]["/api/cameras/{id}"]["put"]["x-rtcc-roles"] == ["admin",
                                                                             "supervisor"]
    assert document["paths"]["/api/cameras"]["get"]["x-rtcc-roles"] == [
        "admin", "analyst", "investigator", "supervisor"]


async def test_openapi_is_served(client: Client) -> None:
    response = await client.get("/api/openapi.json")
    document = await response.json()
    assert document["openapi"].startswith("3.")
    assert "/api/cameras/search" in document["paths"]
