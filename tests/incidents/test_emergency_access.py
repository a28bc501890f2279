"""Emergency access from CAD incidents, end to end: the real application, the camera simulator
over RTSP, aiortc WHEP viewers counting decoded frames, and a clock the test moves.

A CAD incident of a type whose policy unlocks cameras grants the ``live_emergency`` cameras near
it (only those: not one farther than the radius); a viewer working the incident decodes frames;
the CAD closing the incident, or the policy's minutes running out, stops them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from catalog.keys import CATALOG_EVENTS, CATALOG_STORE
from catalog.model import Camera, Profile, Registrar
from rtcc.appkeys import CLOCK
from rtcc.config import EmergencyPolicy, IncidentsConfig, SharingLevel
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import FakeClock, MakeClient, bearer, role_headers
from tests.fixtures.camsim import CamsimHandle
from tests.incidents.eidos import eido
from tests.relay.whep_client import WhepError
from tests.security.test_enforcement import (
    MONDAY_NOON_UTC,
    World,
    assert_frames_stop,
    enforcement_settings,
    watching,
)

NEAR = (39.8, -89.645)
FAR = (39.81, -89.645)  # 1.1 km north


async def make_world(tmp_path: Path, bootstrap_token: str, make_client: MakeClient,
                     camsim: CamsimHandle, minutes: float) -> World:
    clock = FakeClock(MONDAY_NOON_UTC)
    settings = enforcement_settings(tmp_path).model_copy(update={"incidents": IncidentsConfig(
        emergency_policies={"SHOTS": EmergencyPolicy(unlock=True, minutes=minutes)})})
    app = create_app(settings)
    app[CLOCK] = clock  # type: ignore[misc]
    client = await make_client(app)
    world = World(client, str(client.make_url("")).rstrip("/"), bearer(bootstrap_token), clock,
                  camsim)
    await world.camera("near", SharingLevel.LIVE_EMERGENCY)  # at NEAR
    await app[CATALOG_STORE].create(Camera(
        id="far", name="far", lat=FAR[0], lon=FAR[1], owner_id="shop2",
        sharing=SharingLevel.LIVE_EMERGENCY, registered_by=Registrar.DEPARTMENT,
        profiles={"main": Profile(url=camsim.url("open"))}))
    await app[CATALOG_EVENTS].publish({"type": "camera.created", "id": "far"})
    return world


async def post_eido(world: World, cad: dict[str, str], document: dict[str, Any]
                    ) -> dict[str, Any]:
    response = await world.client.post("/api/cad/eido", json=document, headers=cad)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = (await response.json())["accepted"][0]
    return result


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_cad_incident_unlocks_near_cameras_until_the_cad_closes_it(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient, camsim: CamsimHandle,
        http: aiohttp.ClientSession) -> None:
    world = await make_world(tmp_path, bootstrap_token, make_client, camsim, minutes=60)
    _, cad = await role_headers(world.client, world.admin, Role.INTEGRATION)
    _, analyst = await role_headers(world.client, world.admin, Role.ANALYST)
    _, supervisor = await role_headers(world.client, world.admin, Role.SUPERVISOR)
    accepted = await post_eido(world, cad, eido(1, lat=NEAR[0], lon=NEAR[1]))
    sid = accepted["security_incident_id"]

    grants = await (await world.client.get(f"/api/incidents/{sid}/grants",
                                           headers=supervisor)).json()
    assert [g["camera_id"] for g in grants["grants"]] == ["near"]
    assert grants["grants"][0]["valid_until"] == world.clock() + 3600
    ranked = await (await world.client.get(f"/api/cad/incidents/{sid}/cameras",
                                           headers=analyst)).json()
    assert [(c["id"], c["unlocked"]) for c in ranked["cameras"]] == [("near", True)]
    (created,) = await world.audit(action="grant.create", camera="near")
    assert created["owner_id"] == "shop1"  # the owner sees it in their access log
    assert created["actor"] == "cad"

    viewer = await watching(world, http, "near", analyst, incident=sid)
    try:
        with pytest.raises(WhepError) as refused:
            await watching(world, http, "far", analyst, incident=sid)
        assert refused.value.status == 403

        no_reason = await world.client.post(f"/api/cad/incidents/{sid}/extend",
                                            headers=supervisor, json={})
        assert no_reason.status == 400
        as_analyst = await world.client.post(f"/api/cad/incidents/{sid}/extend",
                                             headers=analyst, json={"reason": "still active"})
        assert as_analyst.status == 403
        world.clock.advance(30 * 60)
        extended = await world.client.post(f"/api/cad/incidents/{sid}/extend",
                                           headers=supervisor,
                                           json={"reason": "suspect still inside"})
        assert extended.status == 200
        (grant,) = (await extended.json())["grants"]
        assert grant["valid_until"] == world.clock() + 3600
        assert await world.audit(action="incident.extend")

        await post_eido(world, cad, eido(1, minute=5, status="CLSD", lat=NEAR[0], lon=NEAR[1]))
        stop = await world.stopped("near")
        assert stop["details"]["reason"]
        await assert_frames_stop(viewer)
        revoked = await world.audit(action="grant.revoke", camera="near")
        assert revoked[0]["details"]["revoke_reason"] == "the incident was closed"
    finally:
        await viewer.close()


async def test_emergency_access_expires_with_the_policy(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient, camsim: CamsimHandle,
        http: aiohttp.ClientSession) -> None:
    world = await make_world(tmp_path, bootstrap_token, make_client, camsim, minutes=2)
    _, cad = await role_headers(world.client, world.admin, Role.INTEGRATION)
    _, analyst = await role_headers(world.client, world.admin, Role.ANALYST)
    sid = (await post_eido(world, cad, eido(2, lat=NEAR[0], lon=NEAR[1])))[
        "security_incident_id"]
    # An incident type without a policy unlocks nothing.
    other = await post_eido(world, cad, eido(3, code="DIST", lat=NEAR[0], lon=NEAR[1]))
    assert (await world.client.get(f"/api/incidents/{other['security_incident_id']}",
                                   headers=analyst)).status == 404

    viewer = await watching(world, http, "near", analyst, incident=sid)
    try:
        world.clock.advance(3 * 60)
        stop = await world.stopped("near")
        assert stop["details"]["reason"] == "the grant expired"
        await assert_frames_stop(viewer)
    finally:
        await viewer.close()
