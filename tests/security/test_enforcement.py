"""Continuous enforcement: open views end as soon as nothing allows them any more.

The real application (security, catalog, hub, RTSP ingest from the camera simulator, relay),
aiortc WHEP viewers counting decoded frames, and a clock the test moves (``CLOCK``). A view that
is ended stops receiving frames, and its ``view.stop`` entry says why.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from catalog.keys import CATALOG_EVENTS, CATALOG_STORE
from catalog.model import Camera, Profile, Registrar
from rtcc.appkeys import CLOCK, HUB
from rtcc.config import HubConfig, SecurityConfig, Settings, SharingLevel, TimeWindow
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import (
    FakeClock,
    MakeClient,
    bearer,
    create_user,
    login,
    role_headers,
)
from tests.fixtures.camsim import CamsimHandle
from tests.relay.whep_client import WhepError, WhepViewer

MONDAY_NOON_UTC = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC).timestamp()
PURPOSE = {"purpose": "watching the corner"}
DEADLINE = 30.0
"""Seconds a test waits for something the server does within a few seconds."""


@dataclass
class World:
    client: TestClient[Any, Any]
    base: str
    admin: dict[str, str]
    clock: FakeClock
    camsim: CamsimHandle

    async def camera(self, camera_id: str, sharing: SharingLevel, *,
                     windows: tuple[TimeWindow, ...] = (), owner_id: str = "shop1") -> None:
        app = self.client.app
        await app[CATALOG_STORE].create(Camera(
            id=camera_id, name=camera_id, lat=39.8, lon=-89.645, owner_id=owner_id,
            sharing=sharing, windows=windows, registered_by=Registrar.DEPARTMENT,
            profiles={"main": Profile(url=self.camsim.url("open"))}))
        await app[CATALOG_EVENTS].publish({"type": "camera.created", "id": camera_id})
        async with asyncio.timeout(DEADLINE):
            while not app[HUB].has_camera(camera_id):
                await asyncio.sleep(0.05)

    async def audit(self, **query: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/audit", params=query, headers=self.admin)
        return list((await response.json())["entries"])

    async def stopped(self, camera_id: str) -> dict[str, Any]:
        """The camera's first ``view.stop`` entry, once written."""
        async with asyncio.timeout(DEADLINE):
            while True:
                entries = await self.audit(action="view.stop", camera=camera_id)
                if entries:
                    return entries[-1]
                await asyncio.sleep(0.1)


def enforcement_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        store=f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite3'}",
        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"],
                                enforcement_interval_seconds=1.0),
        hub=HubConfig(close_after=2.0, start_timeout=8.0),
    )


@pytest.fixture
async def world(tmp_path: Path, bootstrap_token: str, make_client: MakeClient,
                camsim: CamsimHandle) -> World:
    clock = FakeClock(MONDAY_NOON_UTC)
    app = create_app(enforcement_settings(tmp_path))
    app[CLOCK] = clock  # type: ignore[misc]
    client = await make_client(app)
    return World(client, str(client.make_url("")).rstrip("/"), bearer(bootstrap_token), clock,
                 camsim)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def watching(world: World, http: aiohttp.ClientSession, camera_id: str,
                   headers: dict[str, str], **query: str) -> WhepViewer:
    viewer = WhepViewer(world.base, camera_id, headers=headers, query=query or PURPOSE)
    await viewer.connect(http)
    await viewer.wait_frames(5, timeout=DEADLINE)
    return viewer


async def assert_frames_stop(viewer: WhepViewer) -> None:
    """No decoded frame arrives any more (a few already on their way may still land)."""
    await asyncio.sleep(1.0)
    before = viewer.decoded.count
    await asyncio.sleep(2.0)
    assert viewer.decoded.count - before <= 2, (before, viewer.decoded.count)


async def test_a_view_ends_when_the_owners_sharing_window_ends(
    world: World, http: aiohttp.ClientSession,
) -> None:
    noon_hours = TimeWindow(days=["mon"], start="11:00", end="13:00")
    await world.camera("windowed", SharingLevel.LIVE_ALWAYS, windows=(noon_hours,))
    _, analyst = await role_headers(world.client, world.admin, Role.ANALYST)
    viewer = await watching(world, http, "windowed", analyst)
    try:
        start, = await world.audit(action="view.start", camera="windowed")
        assert start["details"]["grant"]["basis"] == "sharing"
        assert start["details"]["grant"]["valid_until"] == MONDAY_NOON_UTC + 3600
        await asyncio.sleep(1.5)  # several checks pass while the window is open
        flowing = viewer.decoded.count
        await asyncio.sleep(1.0)
        assert viewer.decoded.count > flowing
        world.clock.advance(3600 + 1)  # 13:00:01
        stop = await world.stopped("windowed")
        assert stop["details"]["reason"] == "the owner's sharing window ended at 13:00"
        await assert_frames_stop(viewer)
        with pytest.raises(WhepError) as refused:
            await watching(world, http, "windowed", analyst)
        assert refused.value.status == 403
    finally:
        await viewer.close()


async def test_a_view_ends_when_its_account_is_disabled(
    world: World, http: aiohttp.ClientSession,
) -> None:
    await world.camera("cam-a", SharingLevel.LIVE_ALWAYS)
    user, analyst = await role_headers(world.client, world.admin, Role.ANALYST)
    _, other = await role_headers(world.client, world.admin, Role.ANALYST)
    viewer = await watching(world, http, "cam-a", analyst)
    bystander = await watching(world, http, "cam-a", other)
    try:
        response = await world.client.post(f"/api/users/{user.id}/disable", headers=world.admin)
        assert response.status == 200
        stop = await world.stopped("cam-a")
        assert stop["details"]["reason"] == "the account was disabled"
        assert stop["actor"] == user.username
        await assert_frames_stop(viewer)
        flowing = bystander.decoded.count
        await asyncio.sleep(1.0)
        assert bystander.decoded.count > flowing  # another account's view goes on
    finally:
        await asyncio.gather(viewer.close(), bystander.close())


async def test_a_view_ends_when_its_token_is_revoked(
    world: World, http: aiohttp.ClientSession,
) -> None:
    await world.camera("cam-t", SharingLevel.LIVE_ALWAYS)
    _, analyst = await role_headers(world.client, world.admin, Role.ANALYST)
    viewer = await watching(world, http, "cam-t", analyst)
    try:
        tokens = await (await world.client.get("/api/tokens", headers=analyst)).json()
        token_id = tokens["tokens"][0]["id"]
        revoked = await world.client.delete(f"/api/tokens/{token_id}", headers=analyst)
        assert revoked.status == 200
        stop = await world.stopped("cam-t")
        assert stop["details"]["reason"] == "the token was revoked"
        await assert_frames_stop(viewer)
    finally:
        await viewer.close()


async def test_a_view_ends_when_its_session_logs_out(
    world: World, http: aiohttp.ClientSession,
) -> None:
    await world.camera("cam-s", SharingLevel.LIVE_ALWAYS)
    user = await create_user(world.client, world.admin, Role.ANALYST)
    answer = await login(world.client, user, now=world.clock())
    cookie = world.client.session.cookie_jar.filter_cookies(world.client.make_url("/"))
    session_cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in cookie.items())
    browser = {"Cookie": session_cookie, "Origin": world.base,
               "X-CSRF-Token": answer["csrf_token"]}
    viewer = await watching(world, http, "cam-s", browser)
    try:
        out = await http.post(f"{world.base}/api/logout", headers=browser)
        assert out.status == 200
        stop = await world.stopped("cam-s")
        assert stop["details"]["reason"].startswith("the session ended")
        await assert_frames_stop(viewer)
    finally:
        await viewer.close()


async def test_an_incident_grant_expires_and_its_view_ends(
    world: World, http: aiohttp.ClientSession,
) -> None:
    await world.camera("emerg", SharingLevel.LIVE_EMERGENCY)
    _, analyst = await role_headers(world.client, world.admin, Role.ANALYST)
    _, supervisor = await role_headers(world.client, world.admin, Role.SUPERVISOR)
    opened = await world.client.post("/api/incidents", headers=analyst, json={
        "id": "CAD-1", "title": "robbery", "cameras": ["emerg"]})
    assert opened.status == 201
    viewer = await watching(world, http, "emerg", analyst, incident="CAD-1")
    try:
        start, = await world.audit(action="view.start", camera="emerg")
        assert start["details"]["grant"]["basis"] == "incident"
        # Linking again within the hour renews the grant for another hour.
        world.clock.advance(50 * 60)
        linked = await world.client.post("/api/incidents/CAD-1/cameras", headers=analyst,
                                         json={"cameras": ["emerg"]})
        assert linked.status == 200
        grants = await (await world.client.get("/api/incidents/CAD-1/grants",
                                               headers=supervisor)).json()
        grant, = grants["grants"]
        assert grant["valid_until"] == world.clock() + 3600
        assert grant["state"] == "active"
        world.clock.advance(20 * 60)  # 70 minutes after the first link: still renewed
        await asyncio.sleep(2.5)
        flowing = viewer.decoded.count
        await asyncio.sleep(1.0)
        assert viewer.decoded.count > flowing
        world.clock.advance(45 * 60)  # past the renewed hour
        stop = await world.stopped("emerg")
        assert stop["details"]["reason"] == "the grant expired"
        await assert_frames_stop(viewer)
        actions = [e["action"] for e in await world.audit(camera="emerg")]
        assert {"grant.create", "grant.renew", "grant.expire"} <= set(actions)
        with pytest.raises(WhepError) as refused:
            await watching(world, http, "emerg", analyst, incident="CAD-1")
        assert refused.value.status == 403
        assert "grant expired" in refused.value.text
        denied = await world.client.get("/api/incidents/CAD-1/grants", headers=analyst)
        assert denied.status == 403  # supervisors and administrators only
    finally:
        await viewer.close()


async def test_closing_an_incident_ends_its_views(
    world: World, http: aiohttp.ClientSession,
) -> None:
    await world.camera("emerg2", SharingLevel.LIVE_EMERGENCY)
    _, analyst = await role_headers(world.client, world.admin, Role.ANALYST)
    await world.client.post("/api/incidents", headers=analyst,
                            json={"id": "CAD-2", "cameras": ["emerg2"]})
    viewer = await watching(world, http, "emerg2", analyst, incident="CAD-2")
    try:
        closed = await world.client.post("/api/incidents/CAD-2/close", headers=analyst)
        assert closed.status == 200
        await world.stopped("emerg2")
        await assert_frames_stop(viewer)
        revoked = [e for e in await world.audit(action="grant.revoke", camera="emerg2")]
        assert revoked[0]["details"]["revoke_reason"] == "the incident was closed"
    finally:
        await viewer.close()
