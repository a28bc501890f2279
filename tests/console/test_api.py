"""The console's routes without a browser: its configuration, the access check, its files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from rtcc.config import (
    CameraConfig,
    ConsoleConfig,
    Place,
    SecurityConfig,
    Settings,
    SharingLevel,
    parse_settings,
)
from rtcc.errors import ConfigError
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers

LEVELS = {
    "always": SharingLevel.LIVE_ALWAYS,
    "emergency": SharingLevel.LIVE_EMERGENCY,
    "request": SharingLevel.ON_REQUEST,
    "registry": SharingLevel.REGISTRY_ONLY,
}


def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        store=f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite3'}",
        security=SecurityConfig(),
        cameras=[CameraConfig(id=name, name=f"camera {name}", lat=39.8, lon=-89.6,
                              sharing=level) for name, level in LEVELS.items()],
        console=ConsoleConfig(tile_url="https://tiles.example.org/{z}/{x}/{y}.png",
                              tile_attribution="© Example tiles",
                              places=[Place(name="City Hall, 800 E Monroe St", lat=39.80115,
                                            lon=-89.64395)]),
    )


@pytest.fixture
async def client(tmp_path: Path, bootstrap_token: str,  # noqa: ARG001 -- sets the environment the app starts with
                 make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client(create_app(settings(tmp_path)))


async def test_the_console_reads_its_map_settings_and_places(
    client: TestClient[Any, Any], bootstrap_token: str
) -> None:
    assert (await client.get("/api/console/config")).status == 401
    _, analyst = await role_headers(client, bearer(bootstrap_token), Role.ANALYST)
    response = await client.get("/api/console/config", headers=analyst)
    assert response.status == 200
    assert await response.json() == {
        "tile_url": "https://tiles.example.org/{z}/{x}/{y}.png",
        "tile_attribution": "© Example tiles",
        "places": [{"name": "City Hall, 800 E Monroe St", "lat": 39.80115, "lon": -89.64395}],
        "onvif_ptz": [],
    }
    _, owner = await role_headers(client, bearer(bootstrap_token), Role.OWNER)
    assert (await client.get("/api/console/config", headers=owner)).status == 403


async def test_access_follows_sharing_levels_and_incidents(
    client: TestClient[Any, Any], bootstrap_token: str
) -> None:
    _, analyst = await role_headers(client, bearer(bootstrap_token), Role.ANALYST)

    async def access() -> dict[str, Any]:
        response = await client.get("/api/console/access?cameras=always,emergency,request,"
                                    "registry,nowhere", headers=analyst)
        assert response.status == 200
        return (await response.json())["cameras"]  # type: ignore[no-any-return]

    found = await access()
    assert found["always"]["allowed"] is True
    assert found["emergency"] == {
        "sharing": "live_emergency", "allowed": False, "incidents": [], "needs_incident": True,
        "reason": found["emergency"]["reason"],
    }
    assert "emergency" in found["emergency"]["reason"]
    assert found["request"]["allowed"] is False
    assert found["request"]["needs_incident"] is False
    assert found["registry"]["allowed"] is False
    assert "location only" in found["registry"]["reason"]
    assert found["nowhere"]["allowed"] is False
    assert found["nowhere"]["reason"] == "not registered"

    opened = await client.post("/api/incidents", json={"title": "console test",
                                                        "cameras": ["emergency"]},
                               headers=analyst)
    assert opened.status == 201
    incident = (await opened.json())["id"]
    found = await access()
    assert found["emergency"]["allowed"] is True
    assert found["emergency"]["incidents"] == [incident]
    assert found["emergency"]["needs_incident"] is False
    assert found["registry"]["allowed"] is False  # an incident never opens location-only cameras

    for bad in ("", "UPPER", "a,b/c", ",".join(f"c{i}" for i in range(101))):
        response = await client.get(f"/api/console/access?cameras={bad}", headers=analyst)
        assert response.status == 400, bad
        assert "cameras" in (await response.json())["error"]


async def test_console_files_are_served_from_the_package_only(
    client: TestClient[Any, Any],
) -> None:
    page = await client.get("/console/")
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    html = await page.text()
    assert "<script>" not in html  # no inline script
    assert "unpkg" not in html
    assert "cdn" not in html.lower()
    for path, kind in (("/console/static/vendor/leaflet/leaflet.js", "javascript"),
                       ("/console/static/vendor/leaflet/leaflet.css", "text/css"),
                       ("/console/static/vendor/leaflet/images/layers.png", "image/png"),
                       ("/console/static/console/main.js", "javascript")):
        response = await client.get(path)
        assert response.status == 200, path
        assert kind in response.headers["Content-Type"], path
    for path in ("/console/static/../api.py", "/console/static/%2e%2e/api.py",
                 "/console/static/%2e%2e%2f%2e%2e%2frtcc/config.py",
                 "/console/static/vendor/leaflet/LICENSE", "/console/static/console.html",
                 "/console/static/..%5capi.py", "/console/static/nothing.js"):
        response = await client.get(path)
        assert response.status == 404, path
    assert (await client.get("/console", allow_redirects=False)).headers["Location"] == \
        "/console/"


def test_tile_urls_must_be_https_or_this_server() -> None:
    base: dict[str, Any] = {"console": {"tile_url": "/tiles/{z}/{x}/{y}.png"}}
    assert parse_settings(base, "t.yaml").console.tile_url == "/tiles/{z}/{x}/{y}.png"
    for url, words in (("http://tiles.example.org/{z}/{x}/{y}.png", "https://"),
                       ("https://tiles.example.org/tile.png", "{z}"),
                       ("javascript:alert(1)//{z}{x}{y}", "https://")):
        with pytest.raises(ConfigError) as refused:
            parse_settings({"console": {"tile_url": url}}, "t.yaml")
        assert "console.tile_url" in str(refused.value)
        assert words in str(refused.value)
    with pytest.raises(ConfigError) as typo:
        parse_settings({"console": {"places": [{"name": "x", "lat": 1, "lon": 2, "zoom": 3}]}},
                       "t.yaml")
    assert "console.places[0].zoom" in str(typo.value)


async def test_every_page_has_a_favicon(client: TestClient[Any, Any]) -> None:
    for path in ("/favicon.ico", "/favicon.svg"):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.headers["Content-Type"].startswith("image/svg+xml"), path
        assert "<svg" in await response.text()
    for page in ("/console/", "/play/always"):
        html = await (await client.get(page)).text()
        assert '<link rel="icon" href="/favicon.svg"' in html, page


async def test_saved_walls_are_checked_and_kept_per_analyst(
    client: TestClient[Any, Any], bootstrap_token: str
) -> None:
    admin = bearer(bootstrap_token)
    _, analyst = await role_headers(client, admin, Role.ANALYST)
    _, supervisor = await role_headers(client, admin, Role.SUPERVISOR)
    _, owner = await role_headers(client, admin, Role.OWNER)
    wall = {"name": "Downtown", "shared": True, "layout": 4, "cameras": ["always", None]}
    assert (await client.put("/api/console/layouts", json=wall, headers=owner)).status == 403
    for bad, field in (({"layout": 6}, "layout"), ({"cameras": ["a b"]}, "cameras"),
                       ({"cameras": ["always"] * 5}, "cameras"), ({"name": " "}, "name"),
                       ({"shared": "yes"}, "shared")):
        response = await client.put("/api/console/layouts", json={**wall, **bad},
                                    headers=analyst)
        assert response.status == 400, bad
        assert (await response.json())["field"] == field
    saved = await client.put("/api/console/layouts", json=wall, headers=analyst)
    assert saved.status == 200, await saved.text()
    listed = await (await client.get("/api/console/layouts", headers=supervisor)).json()
    assert [(w["name"], w["shared"], w["cameras"]) for w in listed["layouts"]] == [
        ("Downtown", True, ["always", None])]
    # A supervisor may remove a shared wall another analyst saved.
    removed = await client.delete("/api/console/layouts?name=Downtown&shared=true",
                                  headers=supervisor)
    assert removed.status == 200, await removed.text()
    assert (await client.delete("/api/console/layouts?name=Downtown&shared=true",
                                headers=supervisor)).status == 404


async def test_geocoding_without_address_points_says_what_to_configure(
    client: TestClient[Any, Any], bootstrap_token: str
) -> None:
    _, analyst = await role_headers(client, bearer(bootstrap_token), Role.ANALYST)
    assert (await client.get("/api/geocode?q=", headers=analyst)).status == 400
    answer = await (await client.get("/api/geocode?q=401%20S%202nd%20St",
                                     headers=analyst)).json()
    assert answer["found"] is False
    assert "incidents.address_points" in answer["reason"]


async def test_a_search_carries_the_same_decisions_as_the_access_check(
    client: TestClient[Any, Any], bootstrap_token: str
) -> None:
    _, analyst = await role_headers(client, bearer(bootstrap_token), Role.ANALYST)
    ids = ",".join(LEVELS)

    async def checked() -> dict[str, Any]:
        response = await client.get(f"/api/console/access?cameras={ids}", headers=analyst)
        assert response.status == 200
        return (await response.json())["cameras"]  # type: ignore[no-any-return]

    async def searched(where: str) -> dict[str, Any]:
        response = await client.get(f"/api/cameras?{where}=39.8,-89.6&radius_m=500&access=1",
                                    headers=analyst)
        assert response.status == 200
        features = (await response.json())["features"]
        return {feature["id"]: feature["properties"]["access"] for feature in features}

    # Allowed (live_always), no grant (on_request, registry_only), emergency-only without an
    # incident, then the same with one.
    before = await checked()
    assert before["always"]["allowed"] is True
    assert before["emergency"]["needs_incident"] is True
    assert before["request"]["allowed"] is False
    for where in ("near", "sees"):
        assert await searched(where) == before, where
    opened = await client.post("/api/incidents", json={"title": "search test",
                                                        "cameras": ["emergency"]},
                               headers=analyst)
    assert opened.status == 201
    after = await checked()
    assert after["emergency"]["allowed"] is True
    for where in ("near", "sees"):
        assert await searched(where) == after, where

    # Without access=1 the search says nothing about access; a plain listing cannot ask.
    plain = await client.get("/api/cameras?near=39.8,-89.6&radius_m=500", headers=analyst)
    assert all("access" not in f["properties"] for f in (await plain.json())["features"])
    for bad in ("/api/cameras?access=1", "/api/cameras?near=39.8,-89.6&access=yes"):
        response = await client.get(bad, headers=analyst)
        assert response.status == 400, bad
        assert "access" in (await response.text())
