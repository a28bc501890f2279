"""Grants: a footage request gives its recorded range and never live video; owners see every
grant on their cameras and may revoke the ones they did not set up themselves.

Through the real application (see ``test_enforcement``): the camera simulator, aiortc WHEP
viewers counting decoded frames, and a clock the test moves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rtcc.appkeys import FOOTAGE_GRANTS
from rtcc.config import SharingLevel, TimeWindow
from rtcc.policy import Role
from security import grants
from tests.fixtures.auth import role_headers
from tests.relay.whep_client import WhepError, WhepViewer
from tests.security.engines import engine_settings, open_tables
from tests.security.test_enforcement import (  # noqa: F401  (fixtures)
    PURPOSE,
    World,
    assert_frames_stop,
    http,
    watching,
    world,
)

YEAR = 365 * 86400.0


async def test_a_one_second_footage_request_grants_that_second_and_no_live_video(
    world: World, http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    await world.camera("req-cam", SharingLevel.ON_REQUEST)
    investigator, inv = await role_headers(world.client, world.admin, Role.INVESTIGATOR)
    _, owner = await role_headers(world.client, world.admin, Role.OWNER, owner_id="shop1")
    moment = world.clock() - YEAR
    asked = await world.client.post("/api/footage-requests", headers=inv, json={
        "cameras": ["req-cam"], "from": moment, "to": moment + 1, "case": "2023-0001",
        "reason": "a hit and run last year"})
    assert asked.status == 201
    request_id = (await asked.json())["id"]
    approved = await world.client.post(f"/api/footage-requests/{request_id}/approve",
                                       headers=owner, json={})
    assert approved.status == 200

    grants = world.client.app[FOOTAGE_GRANTS]
    now = world.clock()
    assert await grants.recorded_grant_for("req-cam", investigator.id, moment, moment + 1, now)
    assert await grants.recorded_grant_for("req-cam", investigator.id, moment - 60, moment + 1,
                                           now) is None  # outside the approved range
    viewer = WhepViewer(world.base, "req-cam", headers=inv, query=PURPOSE)
    try:
        with pytest.raises(WhepError) as refused:
            await viewer.connect(http)
    finally:
        await viewer.close()
    assert refused.value.status == 403
    assert "never live video" in refused.value.text
    assert "recorded footage of the requested time" in refused.value.text

    # The owner sees the grant: recorded footage of that one second, to the investigator.
    seen = await (await world.client.get("/api/owner/cameras/req-cam/grants",
                                         headers=owner)).json()
    grant, = seen["grants"]
    assert grant["kind"] == "recorded"
    assert grant["basis"] == "footage_request"
    assert grant["range"] == {"from": moment, "to": moment + 1}
    assert grant["subject"] == {"kind": "user", "id": str(investigator.id)}
    assert grant["state"] == "active"
    assert "Never live video" in grant["description"]
    assert "Nobody at the department may watch it live" in seen["standing"]["description"]
    created = await world.audit(action="grant.create", camera="req-cam")
    assert [entry["owner_id"] for entry in created] == ["shop1"]


async def test_the_owner_sees_and_revokes_an_incident_grant_and_its_view_ends(
    world: World, http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    hours = TimeWindow(days=["mon"], start="08:00", end="20:00")
    await world.camera("shop-door", SharingLevel.LIVE_EMERGENCY, windows=(hours,))
    await world.camera("elsewhere", SharingLevel.LIVE_ALWAYS, owner_id="shop2")
    _, analyst = await role_headers(world.client, world.admin, Role.ANALYST)
    _, owner = await role_headers(world.client, world.admin, Role.OWNER, owner_id="shop1")
    await world.client.post("/api/incidents", headers=analyst,
                            json={"id": "CAD-9", "cameras": ["shop-door"]})
    viewer = await watching(world, http, "shop-door", analyst, incident="CAD-9")
    try:
        seen: dict[str, Any] = await (await world.client.get(
            "/api/owner/cameras/shop-door/grants", headers=owner)).json()
        standing = seen["standing"]["description"]
        assert "only while it is linked to an active incident" in standing
        assert "Mon 08:00-20:00" in standing
        grant, = seen["grants"]
        assert (grant["basis"], grant["kind"], grant["state"]) == ("incident", "live", "active")
        assert grant["subject"] == {"kind": "incident", "id": "CAD-9"}
        assert grant["valid_until"] == world.clock() + 3600

        other = await world.client.get("/api/owner/cameras/elsewhere/grants", headers=owner)
        assert other.status == 404  # another owner's camera

        revoked = await world.client.post(
            f"/api/owner/cameras/shop-door/grants/{grant['id']}/revoke", headers=owner)
        body = await revoked.json()
        assert revoked.status == 200, body
        assert body["state"] == "revoked"
        stop = await world.stopped("shop-door")
        assert stop["details"]["reason"].startswith("the grant was revoked (revoked by the owner")
        await assert_frames_stop(viewer)
        # Linking the camera again does not bring back what its owner revoked.
        await world.client.post("/api/incidents/CAD-9/cameras", headers=analyst,
                                json={"cameras": ["shop-door"]})
        with pytest.raises(WhepError) as refused:
            await watching(world, http, "shop-door", analyst, incident="CAD-9")
        assert refused.value.status == 403
        log = await (await world.client.get("/api/access-log", headers=owner)).json()
        actions = {e["action"] for e in log["entries"]}
        assert {"grant.create", "grant.revoke", "view.start", "view.stop"} <= actions
    finally:
        await viewer.close()


def test_linking_again_after_expiry_does_not_cover_the_gap(tmp_path: Path,
                                                           database_url: str) -> None:
    """An incident grant that lapsed and is linked again starts anew: footage recorded while
    the camera was not opened for the incident stays uncovered."""
    with open_tables(engine_settings(tmp_path, database_url)) as tables:
        first = grants.grant_incident(tables, "INC-1", ["cam"], "sup", "fire", now=0.0,
                                      seconds=60.0)
        renewed = grants.grant_incident(tables, "INC-1", ["cam"], "sup", "fire", now=30.0,
                                        seconds=60.0)
        assert [change for _, change in renewed] == ["renew"]
        assert renewed[0][0].id == first[0][0].id  # still valid: the same grant, longer
        again = grants.grant_incident(tables, "INC-1", ["cam"], "sup", "fire", now=200.0,
                                      seconds=60.0)
        assert [change for _, change in again] == ["create"]
        assert again[0][0].id != first[0][0].id
        assert grants.incident_grant_for(tables, "cam", "INC-1", 10.0, 80.0) == first[0][0].id
        assert grants.incident_grant_for(tables, "cam", "INC-1", 100.0, 150.0) is None  # the gap
        assert grants.incident_grant_for(tables, "cam", "INC-1", 210.0, 250.0) == again[0][0].id
