"""Consent on the media path: every sharing level through ``MediaAccess.open_view``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from rtcc.access import FootageApproval
from rtcc.appkeys import HUB
from rtcc.config import SharingLevel, TimeWindow
from rtcc.policy import Role
from security.core import SECURITY
from tests.fixtures.auth import (
    FakeClock,
    MakeClient,
    TestUser,
    bearer,
    role_headers,
    security_settings,
)
from tests.security.harness import Directory, security_app

MONDAY_NOON_UTC = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC).timestamp()


class World:
    def __init__(self, app: web.Application, client: TestClient[Any, Any], directory: Directory,
                 clock: FakeClock, admin: dict[str, str]) -> None:
        self.app = app
        self.client = client
        self.directory = directory
        self.clock = clock
        self.admin = admin

    async def view(self, camera: str, headers: dict[str, str], **query: str) -> tuple[int, Any]:
        response = await self.client.get(f"/test/view/{camera}", params=query, headers=headers)
        return response.status, await response.json()

    async def audit(self, **query: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/audit", params=query, headers=self.admin)
        return list((await response.json())["entries"])


@pytest.fixture
async def world(tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> World:
    directory = Directory()
    clock = FakeClock(MONDAY_NOON_UTC)
    app = security_app(security_settings(tmp_path), clock=clock, directory=directory)
    client = await make_client(app)
    return World(app, client, directory, clock, bearer(bootstrap_token))


async def _staff(world: World, role: Role = Role.ANALYST) -> tuple[TestUser, dict[str, str]]:
    return await role_headers(world.client, world.admin, role)


async def test_registry_only_never_streams(world: World) -> None:
    world.directory.add("cam1", SharingLevel.REGISTRY_ONLY)
    _, analyst = await _staff(world)
    _, admin_user = await _staff(world, Role.ADMIN)
    for headers in (analyst, admin_user):
        status, body = await world.view("cam1", headers, purpose="robbery in progress")
        assert status == 403
        assert "location only" in body["error"]
    denied = await world.audit(action="view.start")
    assert [e["outcome"] for e in denied] == ["denied", "denied"]


async def test_live_always_needs_a_purpose_and_audits_start_and_stop(world: World) -> None:
    world.directory.add("cam1", SharingLevel.LIVE_ALWAYS, owner_id="shop1")
    user, analyst = await _staff(world)
    status, body = await world.view("cam1", analyst)
    assert status == 400
    assert "purpose" in body["error"]
    status, body = await world.view("cam1", analyst, purpose="suspicious vehicle")
    assert status == 200
    assert body["purpose"] == "suspicious vehicle"

    start, = await world.audit(action="view.start", camera="cam1", limit="1")
    stop, = await world.audit(action="view.stop", camera="cam1")
    assert start["actor"] == user.username
    assert start["outcome"] == "ok"
    assert start["details"]["purpose"] == "suspicious vehicle"
    assert start["owner_id"] == "shop1"
    assert start["source"] == "127.0.0.1"
    assert stop["details"]["duration_s"] >= 0
    assert stop["target"] == start["target"]
    assert stop["id"] > start["id"]  # start is written before any video could flow


async def test_on_request_is_never_live_even_with_an_approved_footage_request(
    world: World,
) -> None:
    world.directory.add("cam1", SharingLevel.ON_REQUEST)
    investigator, headers = await _staff(world, Role.INVESTIGATOR)
    status, body = await world.view("cam1", headers, purpose="case 24-118")
    assert status == 403
    assert "request" in body["error"]

    grants = world.app[SECURITY].grants
    await grants.record_footage_approval(FootageApproval(
        "fr-2:cam1", "cam1", investigator.id, purpose="case 24-118", decided_by="shop1",
        decided_at=world.clock(), valid_until=world.clock() + 3600,
        start=world.clock() - 600, end=world.clock() - 599))
    status, body = await world.view("cam1", headers, purpose="case 24-118")
    assert status == 403  # an approved request grants recorded footage, never live video
    assert "never live video" in body["error"]
    store = world.app[SECURITY].store
    assert await store.approved_request_for("cam1", investigator.id, world.clock()) == "fr-2:cam1"
    world.clock.advance(3601)
    assert await store.approved_request_for("cam1", investigator.id, world.clock()) is None


async def test_live_emergency_only_while_linked_to_an_active_incident(world: World) -> None:
    world.directory.add("cam1", SharingLevel.LIVE_EMERGENCY)
    world.directory.add("cam2", SharingLevel.LIVE_EMERGENCY)
    _, analyst = await _staff(world)
    status, body = await world.view("cam1", analyst, purpose="curious")
    assert status == 403
    assert "emergency" in body["error"]

    opened = await world.client.post("/api/incidents", headers=analyst, json={
        "id": "CAD-2024-0042", "title": "armed robbery", "cameras": ["cam1"]})
    assert opened.status == 201
    status, body = await world.view("cam1", analyst, incident="CAD-2024-0042")
    assert status == 200
    assert body["incident"] == "CAD-2024-0042"
    assert body["purpose"] == "incident CAD-2024-0042"
    status, _ = await world.view("cam2", analyst, incident="CAD-2024-0042")
    assert status == 403  # not linked to that incident
    assert (await world.view("cam1", analyst, incident="NO-SUCH"))[0] == 403

    closed = await world.client.post("/api/incidents/CAD-2024-0042/close", headers=analyst)
    assert closed.status == 200
    assert (await closed.json())["active"] is False
    assert (await world.view("cam1", analyst, incident="CAD-2024-0042"))[0] == 403
    assert (await world.view("cam1", analyst, purpose="still curious"))[0] == 403


async def test_panic_alert_counts_as_an_emergency(world: World) -> None:
    world.directory.add("cam1", SharingLevel.LIVE_EMERGENCY)
    _, analyst = await _staff(world)
    await world.client.post("/api/incidents", headers=analyst,
                            json={"kind": "panic", "cameras": ["cam1"]})
    status, body = await world.view("cam1", analyst, purpose="panic button at store")
    assert status == 200
    assert body["incident"].startswith("inc-")


async def test_time_windows_are_honoured_in_the_cameras_time_zone(world: World) -> None:
    business_hours = TimeWindow(days=["mon", "tue", "wed", "thu", "fri"], start="08:00",
                                end="17:00")
    world.directory.add("utc", SharingLevel.LIVE_ALWAYS, windows=(business_hours,))
    world.directory.add("ny", SharingLevel.LIVE_ALWAYS, windows=(business_hours,),
                        timezone="America/New_York")
    overnight = TimeWindow(days=["sun"], start="22:00", end="13:00")
    world.directory.add("night", SharingLevel.LIVE_ALWAYS, windows=(overnight,))
    world.directory.add("bad_tz", SharingLevel.LIVE_ALWAYS, windows=(business_hours,),
                        timezone="Mars/Olympus_Mons")
    owner, owner_headers = await role_headers(world.client, world.admin, Role.OWNER,
                                              owner_id="shop1")
    _, analyst = await _staff(world)

    # Monday 12:00 UTC is 07:00 in New York.
    assert (await world.view("utc", analyst, purpose="p"))[0] == 200
    status, body = await world.view("ny", analyst, purpose="p")
    assert status == 403
    assert "hours" in body["error"]
    assert (await world.view("night", analyst, purpose="p"))[0] == 200  # Sunday 22:00-13:00
    assert (await world.view("bad_tz", analyst, purpose="p"))[0] == 403
    assert (await world.view("ny", owner_headers))[0] == 200  # the owner is not restricted
    world.clock.advance(2 * 3600)  # 14:00 UTC, 09:00 New York
    assert (await world.view("ny", analyst, purpose="p"))[0] == 200
    assert (await world.view("night", analyst, purpose="p"))[0] == 403
    world.clock.advance(4 * 24 * 3600 + 4 * 3600)  # Saturday 18:00 UTC
    assert (await world.view("utc", analyst, purpose="p"))[0] == 403
    assert owner.owner_id == "shop1"


async def test_roles_and_owner_scope(world: World) -> None:
    world.directory.add("mine", SharingLevel.REGISTRY_ONLY, owner_id="shop1")
    world.directory.add("theirs", SharingLevel.LIVE_ALWAYS, owner_id="shop2")
    _, owner = await role_headers(world.client, world.admin, Role.OWNER, owner_id="shop1")
    _, agent = await role_headers(world.client, world.admin, Role.AGENT, owner_id="shop1")
    assert (await world.view("mine", owner))[0] == 200  # own camera, even registry_only
    status, body = await world.view("theirs", owner, purpose="p")
    assert status == 403
    assert "own cameras" in body["error"]
    assert (await world.view("mine", agent, purpose="p"))[0] == 403
    for role in (Role.ADMIN, Role.SUPERVISOR, Role.ANALYST, Role.INVESTIGATOR):
        _, headers = await _staff(world, role)
        assert (await world.view("theirs", headers, purpose="p"))[0] == 200, role
    assert (await world.view("unknown", owner))[0] == 404
    assert (await world.view("theirs", {}))[0] == 401


async def test_revocation_ends_open_sessions_and_is_audited(world: World) -> None:
    world.directory.add("cam1", SharingLevel.LIVE_ALWAYS, owner_id="shop1")
    _, owner = await role_headers(world.client, world.admin, Role.OWNER, owner_id="shop1")
    _, analyst = await _staff(world)
    assert (await world.view("cam1", analyst, purpose="p"))[0] == 200

    stream = world.app[HUB].get("cam1", "main")
    subscription = await stream.subscribe("viewer", wait=False)
    changed = await world.client.post("/test/sharing/cam1", headers=owner,
                                      json={"sharing": "registry_only"})
    assert changed.status == 200
    assert (await changed.json())["ended"] == 1
    assert subscription.closed
    assert subscription.close_reason == "consent changed"
    assert (await world.view("cam1", analyst, purpose="p"))[0] == 403
    entry, = await world.audit(action="consent.change")
    assert entry["details"]["before"]["sharing"] == "live_always"
    assert entry["details"]["after"]["sharing"] == "registry_only"
    assert entry["owner_id"] == "shop1"

    log = await (await world.client.get("/api/access-log", headers=owner)).json()
    actions = [e["action"] for e in log["entries"]]
    assert "consent.change" in actions
    assert "view.start" in actions
    assert all("source" not in e for e in log["entries"])


async def test_closing_an_incident_ends_emergency_views(world: World) -> None:
    world.directory.add("cam1", SharingLevel.LIVE_EMERGENCY)
    _, analyst = await _staff(world)
    await world.client.post("/api/incidents", headers=analyst,
                            json={"id": "I-1", "cameras": ["cam1"]})
    stream = world.app[HUB].get("cam1", "main")
    subscription = await stream.subscribe("viewer", wait=False)
    closed = await world.client.post("/api/incidents/I-1/close", headers=analyst)
    assert (await closed.json())["sessions_ended"] == 1
    assert subscription.closed
