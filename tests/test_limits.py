"""Limits that keep one client from exhausting the server, and stream addresses kept private.

Through the real application: slow clients are cut off at the connection (raw sockets against
the server's own runner) while a normal client is served; one owner opening live views as fast
as possible gets 429 past their share while an analyst still gets in (aiortc WHEP viewers of a
simulated camera); JSON bodies are bounded; credentials in a stream URL's query string are
refused, and only administrators see stream addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from catalog.keys import CATALOG_EVENTS, CATALOG_STORE
from catalog.model import Camera, Profile, Registrar
from ingest.agentlink.service import AGENT_SERVICE
from rtcc.appkeys import HUB
from rtcc.config import AgentConfig, ServerConfig, Settings, SharingLevel
from rtcc.policy import Role
from server.app import create_app
from server.runner import serving
from tests.fixtures.auth import MakeClient, role_headers
from tests.fixtures.camsim import CamsimHandle
from tests.fixtures.canary import CATALOG_PASSWORD
from tests.portal.conftest import (  # noqa: F401  (fixture)
    PortalServer,
    portal_server,
    portal_settings,
)
from tests.portal.helpers import call, direct_camera, signup
from tests.relay.whep_client import WhepError, WhepViewer

PURPOSE = {"purpose": "checking the per-account limits"}


def _blocking_slow_client(port: int, first: bytes, trickle: bytes, every: float,
                          give_up: float) -> float | None:
    """Send ``first``, then one byte of ``trickle`` every ``every`` seconds; the seconds after
    which the server closed the connection (None if it never did within ``give_up``)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=give_up) as sock:
        sock.sendall(first)
        for byte in trickle:
            time.sleep(every)
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return time.monotonic() - started
            if time.monotonic() - started > give_up:
                return None
        sock.settimeout(max(0.1, give_up - (time.monotonic() - started)))
        try:
            data = sock.recv(65536)
        except (TimeoutError, OSError):
            return None
        # A closed connection reads as b"" (or as an error answer the server wrote first).
        return time.monotonic() - started if data == b"" or data.startswith(b"HTTP/") else None


@pytest.mark.usefixtures("bootstrap_token")
async def test_slow_headers_and_stalled_bodies_are_cut_off_while_others_are_served(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data",
                        server=ServerConfig(port=0, header_timeout=1.0, body_timeout=1.0))
    async with serving(settings) as url, aiohttp.ClientSession() as http:
        port = int(url.rsplit(":", 1)[1])
        slowloris = asyncio.to_thread(
            _blocking_slow_client, port, b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-A: ",
            b"b" * 40, 0.2, 8.0)
        stalled = asyncio.to_thread(
            _blocking_slow_client, port,
            b"POST /api/owner/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\n\r\n{\"name\"", b"", 0.0, 8.0)
        idle = asyncio.to_thread(_blocking_slow_client, port, b"", b"", 0.0, 8.0)
        tasks = [asyncio.ensure_future(c) for c in (slowloris, stalled, idle)]
        # Meanwhile a normal client is served, again and again.
        for _ in range(5):
            async with http.get(f"{url}/api/health") as response:
                assert response.status == 200
            await asyncio.sleep(0.2)
        closed_after = await asyncio.gather(*tasks)
        async with http.get(f"{url}/api/health") as response:
            assert response.status == 200
    for seconds in closed_after:
        assert seconds is not None, closed_after
        assert 0.8 < seconds < 4.0, closed_after


async def test_one_owner_cannot_take_every_live_view_and_an_analyst_still_gets_in(
    portal_server: PortalServer, camsim: CamsimHandle,  # noqa: F811
) -> None:
    server = portal_server
    client = server.client
    owner = await signup(client)
    # The department registered the address (a private one: the simulator), the owner owns it.
    camera_id = "owners-open"
    await client.app[CATALOG_STORE].create(Camera(
        id=camera_id, name="Shop door", lat=39.8, lon=-89.645, owner_id=owner.owner_id,
        sharing=SharingLevel.LIVE_ALWAYS, registered_by=Registrar.DEPARTMENT,
        profiles={"main": Profile(url=camsim.url("open"))}))
    await client.app[CATALOG_EVENTS].publish({"type": "camera.created", "id": camera_id})
    hub = client.app[HUB]
    for _ in range(200):
        if hub.has_camera(camera_id):
            break
        await asyncio.sleep(0.05)
    _, analyst = await role_headers(client, server.admin, Role.ANALYST)
    viewers: list[WhepViewer] = []
    async with aiohttp.ClientSession() as http:
        try:
            async def open_one(headers: dict[str, str]) -> WhepViewer | WhepError:
                viewer = WhepViewer(server.base, camera_id, headers=headers, query=PURPOSE)
                viewers.append(viewer)
                try:
                    await viewer.connect(http)
                except WhepError as exc:
                    return exc
                return viewer

            # The owner opens ten views at once: four get in, the rest are told why not.
            results = await asyncio.gather(*(open_one(owner.headers) for _ in range(10)))
            refused = [r for r in results if isinstance(r, WhepError)]
            assert len(results) - len(refused) == 4, [str(r) for r in refused]
            for error in refused:
                assert error.status == 429, error
                assert "you already have 4 live views open" in error.text
                assert "close one" in error.text
            # The analyst is not affected by the owner's flood.
            seen = await open_one(analyst)
            assert isinstance(seen, WhepViewer), seen
            await seen.wait_frames(3, timeout=20)
            # Closing one of the owner's views gives the owner a place again.
            first = next(r for r in results if isinstance(r, WhepViewer))
            await first.close()
            for _ in range(100):
                again = await open_one(owner.headers)
                if isinstance(again, WhepViewer):
                    break
                await asyncio.sleep(0.05)
            assert isinstance(again, WhepViewer), again
            stats = await call(client, "GET", "/api/relay/sessions", server.admin, 200)
            assert stats["refused_per_user"] >= 6
            assert stats["max_sessions_per_owner"] == 4
        finally:
            await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)


async def test_json_bodies_are_limited_to_64_kb(
    portal_server: PortalServer,  # noqa: F811
) -> None:
    server = portal_server
    client = server.client
    owner = await signup(client)
    huge = direct_camera("rtsp://1.2.3.4:8554/front", name="x" * 70_000)
    for path, headers in (("/api/owner/cameras", owner.headers),
                          ("/api/cameras", server.admin),
                          ("/api/owner/sites", owner.headers)):
        refused = await call(client, "POST", path, headers, 413, json=huge)
        assert "larger than 65536 bytes" in refused["error"], path
        # The same without a Content-Length (chunked) is refused as well.
        body = json.dumps(huge).encode()

        async def chunks(data: bytes = body) -> Any:
            for start in range(0, len(data), 8192):
                yield data[start:start + 8192]

        response = await client.post(path, data=chunks(), headers={
            **headers, "Content-Type": "application/json"})
        assert response.status == 413, path
        assert "larger than" in (await response.json())["error"]
    # A normal body still works.
    await call(client, "POST", "/api/owner/cameras", owner.headers, 201,
               json=direct_camera("rtsp://1.2.3.4:8554/front", sharing="on_request"))


QUERY_CREDENTIALS = "rtsp://1.2.3.4:8554/stream?user=admin&password=hunter2"


async def test_query_string_credentials_are_refused_everywhere(
    portal_server: PortalServer,  # noqa: F811
) -> None:
    server = portal_server
    client = server.client
    owner = await signup(client)
    for url in (QUERY_CREDENTIALS, "rtsp://1.2.3.4:8554/s?channel=1&pwd=x",
                "rtsp://1.2.3.4:8554/s?token=abc"):
        refused = await call(client, "POST", "/api/owner/cameras", owner.headers, 400,
                             json=direct_camera(url))
        assert refused["field"] == "profiles.main.url"
        assert "username and password fields" in refused["error"]
        body = {"id": "qs-cam", **direct_camera(url)}
        refused = await call(client, "POST", "/api/cameras", server.admin, 400, json=body)
        assert "username and password fields" in refused["error"]
    csv = ("id,name,lat,lon,main_url\r\n"
           f"qs-cam,Front,39.8,-89.6,{QUERY_CREDENTIALS}\r\n")
    response = await client.post("/api/cameras/import", data=csv.encode(),
                                 headers={**server.admin, "Content-Type": "text/csv"})
    assert response.status == 400
    assert "username and password fields" in await response.text()
    # Harmless query parameters stay allowed.
    await call(client, "POST", "/api/owner/cameras", owner.headers, 201,
               json=direct_camera("rtsp://1.2.3.4:8554/s?channel=1&subtype=0"))


async def test_stream_addresses_are_shown_to_administrators_and_owners_only(
    portal_server: PortalServer,  # noqa: F811
) -> None:
    server = portal_server
    client = server.client
    address = "rtsp://1.2.3.4:8554/private-front"
    body = {"id": "lobby", "name": "Lobby", "lat": 39.8, "lon": -89.645,
            "sharing": "on_request",
            "profiles": {"main": {"url": address, "username": "viewer-account",
                                  "password": CATALOG_PASSWORD}}}
    owner = await signup(client)
    owned = await call(client, "POST", "/api/owner/cameras", owner.headers, 201,
                       json=direct_camera("rtsp://1.2.3.4:8554/owners-door"))
    _, analyst = await role_headers(client, server.admin, Role.ANALYST)
    _, supervisor = await role_headers(client, server.admin, Role.SUPERVISOR)

    async with client.get("/api/events", headers=analyst) as feed:
        assert feed.status == 200
        await call(client, "POST", "/api/cameras", server.admin, 201, json=body)
        event_text = ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                async for line in feed.content:
                    event_text += line.decode()
                    if "camera.created" in event_text and event_text.endswith("\n\n"):
                        break
    assert "camera.created" in event_text
    assert address not in event_text
    assert "viewer-account" not in event_text

    admin_view = await call(client, "GET", "/api/cameras/lobby", server.admin, 200)
    assert admin_view["properties"]["profiles"]["main"]["url"] == address
    for headers in (analyst, supervisor):
        one = await call(client, "GET", "/api/cameras/lobby", headers, 200)
        assert one["properties"]["profiles"] == {"main": {"transport": "tcp"}}
        listing = await call(client, "GET", "/api/cameras", headers, 200)
        near = await call(client, "GET", "/api/cameras?near=39.8,-89.645", headers, 200)
        for answer in (one, listing, near):
            text = json.dumps(answer)
            assert "rtsp://" not in text
            assert "viewer-account" not in text
            assert CATALOG_PASSWORD not in text
    # A supervisor writing back what they read keeps the address they could not see.
    seen = await call(client, "GET", "/api/cameras/lobby", supervisor, 200)
    seen["properties"]["name"] = "Lobby (west)"
    await call(client, "PUT", "/api/cameras/lobby", supervisor, 200, json=seen)
    kept = await call(client, "GET", "/api/cameras/lobby", server.admin, 200)
    assert kept["properties"]["profiles"]["main"]["url"] == address
    assert kept["properties"]["profiles"]["main"]["username"] == "viewer-account"
    assert kept["properties"]["profiles"]["main"]["has_password"] is True
    for fmt in ("csv", "geojson"):
        response = await client.get(f"/api/cameras/export?format={fmt}", headers=supervisor)
        assert response.status == 200
        assert "rtsp://" not in await response.text()
        response = await client.get(f"/api/cameras/export?format={fmt}", headers=server.admin)
        assert address in await response.text()
    # The owner sees their own camera's address, never a password.
    mine = await call(client, "GET", f"/api/owner/cameras/{owned['camera']['id']}",
                      owner.headers, 200)
    assert mine["profiles"]["main"]["url"] == "rtsp://1.2.3.4:8554/owners-door"
    openapi = await call(client, "GET", "/api/openapi.json", {}, 200)
    assert "administrators only" in json.dumps(openapi)


def _report(key: str) -> dict[str, Any]:
    return {"key": key, "name": key, "source": "rtsp", "status": "ok"}


@pytest.mark.usefixtures("bootstrap_token")
async def test_an_agent_registers_at_most_its_cap_of_cameras_and_is_told(
    tmp_path: Path, make_client: MakeClient,
) -> None:
    settings = portal_settings(tmp_path).model_copy(update={"agent": AgentConfig(max_cameras=3)})
    client = await make_client(create_app(settings))
    owner = await signup(client)
    enrollment = await call(client, "POST", "/api/agent/enrollments", owner.headers, 201,
                            json={})
    enrolled = await call(client, "POST", "/api/agent/enroll", {}, 201,
                          json={"token": enrollment["token"], "name": "shop agent"})
    agent = {"Authorization": f"Bearer {enrolled['credential']}"}
    async with client.ws_connect("/api/agent/ws", headers=agent) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "welcome"

        async def inventory(keys: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            await ws.send_str(json.dumps({"type": "inventory",
                                          "cameras": [_report(k) for k in keys]}))
            others: list[dict[str, Any]] = []
            while True:
                message = await ws.receive_json(timeout=5)
                if message["type"] == "inventory_ack":
                    if message.get("refused"):
                        others.append(await ws.receive_json(timeout=5))
                    return message, others
                others.append(message)

        ack, _ = await inventory([f"rtsp:10.0.0.{n}:554/a" for n in range(1, 3)])
        assert len(ack["cameras"]) == 2
        assert ack["refused"] == []
        # Cameras not reported again stay registered: a second batch cannot grow past the cap.
        ack, told = await inventory([f"rtsp:10.0.1.{n}:554/a" for n in range(1, 6)])
        assert [c["key"] for c in ack["cameras"]] == ["rtsp:10.0.1.1:554/a"]
        assert len(ack["refused"]) == 4
        assert "already has 3 cameras" in ack["refused"][0]["reason"]
        assert told
        assert told[0]["type"] == "error"
        assert "4 camera(s) not registered" in told[0]["error"]
        # Known cameras are still updated.
        ack, _ = await inventory(["rtsp:10.0.0.1:554/a", "rtsp:10.0.9.9:554/a"])
        assert [c["key"] for c in ack["cameras"]] == ["rtsp:10.0.0.1:554/a"]
        assert [r["key"] for r in ack["refused"]] == ["rtsp:10.0.9.9:554/a"]
    service = client.app[AGENT_SERVICE]
    assert len(await service.store.cameras(enrolled["agent_id"])) == 3
