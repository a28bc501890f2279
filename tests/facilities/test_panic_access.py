"""A panic alert grants the facility's own emergency cameras at its site, time-boxed, and the
all clear relocks them: an aiortc viewer working the alert's incident decodes frames, then
stops. A drill grants nothing. Cameras of the same owner elsewhere, or shared less, stay shut."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from catalog.keys import CATALOG_EVENTS, CATALOG_STORE
from catalog.model import Camera, Profile, Registrar
from rtcc.appkeys import CLOCK, HUB
from rtcc.config import FacilitiesConfig, SharingLevel
from server.app import create_app
from tests.facilities.helpers import SCHOOL_AT, SCHOOL_SITE, make_school
from tests.fixtures.auth import FakeClock, MakeClient, bearer
from tests.fixtures.camsim import CamsimHandle
from tests.relay.whep_client import WhepError
from tests.security.test_enforcement import (
    MONDAY_NOON_UTC,
    World,
    assert_frames_stop,
    enforcement_settings,
    watching,
)


async def test_an_alert_unlocks_the_schools_cameras_until_the_all_clear(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient, camsim: CamsimHandle
) -> None:
    clock = FakeClock(MONDAY_NOON_UTC)
    settings = enforcement_settings(tmp_path)
    app = create_app(settings.model_copy(update={
        "facilities": FacilitiesConfig(grant_minutes=25)}))
    app[CLOCK] = clock  # type: ignore[misc]
    client = await make_client(app)
    world = World(client, str(client.make_url("")).rstrip("/"), bearer(bootstrap_token), clock,
                  camsim)
    for camera_id, site, sharing in (("hall", SCHOOL_SITE, SharingLevel.LIVE_EMERGENCY),
                                     ("office", SCHOOL_SITE, SharingLevel.ON_REQUEST),
                                     ("depot", "other-site", SharingLevel.LIVE_EMERGENCY)):
        await app[CATALOG_STORE].create(Camera(
            id=camera_id, name=camera_id, lat=SCHOOL_AT[0], lon=SCHOOL_AT[1], owner_id="shop1",
            site_id=site, sharing=sharing, registered_by=Registrar.DEPARTMENT,
            profiles={"main": Profile(url=camsim.url("open"))}))
        await app[CATALOG_EVENTS].publish({"type": "camera.created", "id": camera_id})
    async with asyncio.timeout(30):
        while not app[HUB].has_camera("hall"):
            await asyncio.sleep(0.05)
    school = await make_school(client, world.admin)

    drill = await client.post("/panic/api/alerts", headers=school.device(), json={
        "id": "drill-0001-aaaa", "level": "lockdown", "drill": True})
    drill_alert = (await drill.json())["alert"]
    shown = await (await client.get(f"/api/panic/alerts/{drill_alert['id']}",
                                    headers=school.analyst)).json()
    opened = next(e for e in shown["timeline"] if e["step"] == "incident.opened")
    assert opened["details"]["drill"] is True
    assert opened["details"]["cameras"] == []

    raised = await client.post("/panic/api/alerts", headers=school.device(), json={
        "id": "real-0001-aaaa", "level": "active_threat"})
    assert raised.status == 201
    alert_id = (await raised.json())["alert"]["id"]
    shown = await (await client.get(f"/api/panic/alerts/{alert_id}",
                                    headers=school.analyst)).json()
    opened = next(e for e in shown["timeline"] if e["step"] == "incident.opened")
    assert opened["details"]["cameras"] == ["hall"]
    sid = opened["details"]["security_incident"]
    grants = await (await client.get(f"/api/incidents/{sid}/grants", headers=world.admin)).json()
    assert [g["camera_id"] for g in grants["grants"]] == ["hall"]
    assert grants["grants"][0]["valid_until"] == clock() + 25 * 60
    (created,) = await world.audit(action="grant.create", camera="hall")
    assert created["owner_id"] == "shop1"  # the owner sees it in their access log

    async with aiohttp.ClientSession() as http:
        viewer = await watching(world, http, "hall", school.analyst, incident=sid)
        try:
            with pytest.raises(WhepError) as refused:
                await watching(world, http, "depot", school.analyst, incident=sid)
            assert refused.value.status == 403
            cleared = await client.post(f"/api/panic/alerts/{alert_id}/all_clear",
                                        headers=school.analyst, json={})
            assert cleared.status == 200
            await world.stopped("hall")
            await assert_frames_stop(viewer)
        finally:
            await viewer.close()
    revoked = await world.audit(action="grant.revoke", camera="hall")
    assert revoked[0]["details"]["revoke_reason"] == "the incident was closed"
