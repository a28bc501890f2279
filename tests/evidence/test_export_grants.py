"""Exports of an owner's camera need one grant covering the whole range, whatever the role: an
approved footage request (its range only), an incident's grant (footage recorded while it was
valid) or the owner's ``live_always`` sharing windows. The department's cameras export freely.
The grant is named in the audit entries and in the signed manifest.

Through the real security and evidence cores, with segments written as the recorder writes them
and a clock the test moves."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from evidence import verify_main
from evidence.manifest import MANIFEST_NAME
from evidence.store import EvidenceStore
from rtcc.config import SharingLevel, TimeWindow
from rtcc.policy import Role
from security.audit import AuditEntry
from security.core import SECURITY
from tests.evidence.helpers import (
    app_of,
    evidence_app,
    frames_from,
    make_h264,
    member_bytes,
    public_key_file,
    run_text,
    write_segments,
)
from tests.fixtures.auth import FakeClock, MakeClient, bearer, role_headers, security_settings
from tests.security.harness import Directory

T0 = float(int(time.time()))
"""Whole seconds, so that frame times (start + i / 15) and range bounds compare exactly."""
PAST = T0 - 3600.0
"""When the ``shop`` and ``dept`` footage was recorded."""
OPENED = T0 + 25.0
"""When the ``emerg`` footage was recorded: after its incident was opened at T0."""
_TODAY = dt.datetime.fromtimestamp(T0, tz=dt.UTC).replace(hour=14, minute=9, second=54)
HOURS = (_TODAY if _TODAY.timestamp() < T0 else _TODAY - dt.timedelta(days=1)).timestamp()
"""When the ``hours`` footage was recorded: 6 s before its daily sharing window (14:00-14:10
UTC) ends, in the past day (inside the retention period)."""


@dataclass
class World:
    client: TestClient[Any, Any]
    admin: dict[str, str]
    inv: dict[str, str]
    supervisor: dict[str, str]
    clock: FakeClock
    data_dir: Path


@pytest.fixture
async def world(tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> World:
    settings = security_settings(tmp_path)
    units = make_h264(tmp_path, 8.0)
    store = EvidenceStore.open_in(settings.data_dir)
    try:
        for camera_id, start in (("shop", PAST), ("dept", PAST), ("emerg", OPENED),
                                 ("hours", HOURS)):
            write_segments(store, settings.data_dir / "evidence", camera_id,
                           frames_from(units, start), 3.0)
    finally:
        store.close()
    directory = Directory()
    directory.add("shop", SharingLevel.ON_REQUEST, owner_id="shop1")
    directory.add("emerg", SharingLevel.LIVE_EMERGENCY, owner_id="shop2")
    directory.add("dept", SharingLevel.REGISTRY_ONLY, owner_id="department")
    directory.add("hours", SharingLevel.LIVE_ALWAYS, owner_id="shop3",
                  windows=(TimeWindow(start="14:00", end="14:10"),))
    clock = FakeClock(T0)
    client = await make_client(evidence_app(settings, directory, clock=clock))
    admin = bearer(bootstrap_token)
    _, inv = await role_headers(client, admin, Role.INVESTIGATOR)
    _, supervisor = await role_headers(client, admin, Role.SUPERVISOR)
    return World(client, admin, inv, supervisor, clock, settings.data_dir)


async def _export(world: World, headers: dict[str, str], camera: str, start: float,
                  end: float, **extra: Any) -> tuple[int, dict[str, Any]]:
    response = await world.client.post("/api/exports", headers=headers, json={
        "camera": camera, "from": start, "to": end, "case": "2024-0077", **extra})
    body: dict[str, Any] = await response.json()
    return response.status, body


async def _exports_audited(world: World, outcome: str) -> list[AuditEntry]:
    entries = await app_of(world.client)[SECURITY].audit.query(action="evidence.export",
                                                              limit=100)
    return [entry for entry in entries if entry.outcome == outcome]


async def test_a_one_second_footage_request_allows_that_second_and_nothing_wider(
    world: World, tmp_path: Path
) -> None:
    status, body = await _export(world, world.inv, "shop", PAST + 1, PAST + 2)
    assert status == 403, body
    assert "no grant covers" in body["error"]
    assert "on camera shop: ask the owner with a footage request" in body["error"]
    refused = await _exports_audited(world, "refused")
    assert [(e.camera_id, e.owner_id) for e in refused] == [("shop", "shop1")]
    assert await _exports_audited(world, "started") == []

    asked = await world.client.post("/api/footage-requests", headers=world.inv, json={
        "cameras": ["shop"], "from": PAST + 1, "to": PAST + 2, "case": "2024-0077",
        "reason": "a bag snatched at the door"})
    assert asked.status == 201
    _, owner = await role_headers(world.client, world.admin, Role.OWNER, owner_id="shop1")
    approved = await world.client.post(
        f"/api/footage-requests/{(await asked.json())['id']}/approve", headers=owner, json={})
    assert approved.status == 200
    grants = await app_of(world.client)[SECURITY].grants.of_camera("shop")
    assert [grant.kind for grant in grants] == ["recorded"]

    status, made = await _export(world, world.inv, "shop", PAST + 1, PAST + 2)
    assert status == 201, made
    assert made["grant"] == {"kind": "recorded", "id": grants[0].id}
    assert made["clip_start"] >= PAST + 1  # nothing outside the granted second
    assert made["clip_end"] < PAST + 2
    status, body = await _export(world, world.inv, "shop", PAST + 1, PAST + 3)
    assert status == 403, body
    assert "no grant covers" in body["error"]
    # The approval is the requester's: a supervisor is not exempt on an owner's camera.
    status, body = await _export(world, world.supervisor, "shop", PAST + 1, PAST + 2)
    assert status == 403, body

    done = [e for e in await _exports_audited(world, "ok")
            if e.target == f"export:{made['export_id']}"]
    assert json.loads(done[0].details)["grant"] == {"kind": "recorded", "id": grants[0].id}
    download = await world.client.get(made["download"], headers=world.inv)
    assert download.status == 200
    package = tmp_path / "shop.tar"
    package.write_bytes(await download.read())
    code, text = run_text(verify_main, package,
                          key_path=public_key_file(tmp_path, world.data_dir / "evidence"))
    assert code == 0, text
    manifest = json.loads(member_bytes(package, MANIFEST_NAME))
    assert manifest["grant"] == {"kind": "recorded", "id": grants[0].id}


async def test_an_incident_grant_covers_footage_recorded_while_it_was_valid(
    world: World,
) -> None:
    opened = await world.client.post("/api/incidents", headers=world.supervisor, json={
        "id": "INC-7", "title": "shots fired", "cameras": ["emerg"]})
    assert opened.status == 201
    world.clock.advance(30)
    closed = await world.client.post("/api/incidents/INC-7/close", headers=world.supervisor)
    assert closed.status == 200  # the grant ends now: footage after T0 + 30 is not covered
    grants = await app_of(world.client)[SECURITY].grants.of_incident("INC-7")
    assert len(grants) == 1

    status, made = await _export(world, world.inv, "emerg", OPENED + 1, OPENED + 4,
                                 incident="INC-7")
    assert status == 201, made
    assert made["grant"] == {"kind": "incident", "id": grants[0].id}
    status, body = await _export(world, world.inv, "emerg", OPENED + 1, OPENED + 7,
                                 incident="INC-7")
    assert status == 403, body
    assert "incident 'INC-7' holds no grant on this camera for the whole range" in body["error"]
    status, body = await _export(world, world.inv, "emerg", OPENED + 1, OPENED + 4)
    assert status == 403, body  # the incident was not named
    assert "name the incident" in body["error"]
    status, body = await _export(world, world.inv, "emerg", OPENED + 1, OPENED + 4,
                                 incident="INC-8")
    assert status == 403, body


async def test_the_owners_sharing_windows_must_cover_the_whole_range(world: World) -> None:
    status, made = await _export(world, world.inv, "hours", HOURS + 1, HOURS + 5)
    assert status == 201, made
    assert made["grant"] == {"kind": "sharing", "id": "sharing:hours"}
    # Mid-way between keyframes (one a second): the clip starts at the next keyframe, not at
    # the one before the range, which the windows may not cover.
    status, made = await _export(world, world.inv, "hours", HOURS + 0.5, HOURS + 5)
    assert status == 201, made
    assert made["clip_start"] == HOURS + 1
    status, body = await _export(world, world.supervisor, "hours", HOURS + 1, HOURS + 7)
    assert status == 403, body
    day = dt.datetime.fromtimestamp(HOURS, tz=dt.UTC).strftime("%Y-%m-%d")
    assert f"no grant covers 14:09:55-14:10:01 on {day} (UTC) on camera hours" in body["error"]


async def test_a_department_camera_exports_freely(world: World) -> None:
    for headers in (world.inv, world.supervisor):
        status, made = await _export(world, headers, "dept", PAST + 1, PAST + 7)
        assert status == 201, made
        assert made["grant"] == {"kind": "department", "id": "department:dept"}
    status, body = await _export(world, world.inv, "gone", PAST + 1, PAST + 7)
    assert status == 403, body
    assert "camera gone is not registered" in body["error"]


async def _approved(world: World, start: float, end: float) -> tuple[str, dict[str, str]]:
    """A footage request of the investigator for ``shop``, approved by its owner: the grant's id
    and the owner's headers."""
    asked = await world.client.post("/api/footage-requests", headers=world.inv, json={
        "cameras": ["shop"], "from": start, "to": end, "case": "2024-0077",
        "reason": "a bag snatched at the door"})
    assert asked.status == 201
    _, owner = await role_headers(world.client, world.admin, Role.OWNER, owner_id="shop1")
    approved = await world.client.post(
        f"/api/footage-requests/{(await asked.json())['id']}/approve", headers=owner, json={})
    assert approved.status == 200
    grants = await app_of(world.client)[SECURITY].grants.of_camera("shop")
    return grants[0].id, owner


async def test_a_download_is_refused_once_the_owner_revokes_the_grant(world: World) -> None:
    grant_id, owner = await _approved(world, PAST + 1, PAST + 2)
    status, made = await _export(world, world.inv, "shop", PAST + 1, PAST + 2)
    assert status == 201, made
    assert (await world.client.get(made["download"], headers=world.inv)).status == 200

    revoked = await world.client.post(f"/api/owner/cameras/shop/grants/{grant_id}/revoke",
                                      headers=owner)
    assert revoked.status == 200
    for headers in (world.inv, world.supervisor):
        refused = await world.client.get(made["download"], headers=headers)
        assert refused.status == 403
        body = await refused.json()
        assert f"the owner revoked the grant this export was made under ({grant_id})" \
            in body["error"]
    entries = await app_of(world.client)[SECURITY].audit.query(action="evidence.download",
                                                              limit=100)
    refusals = [e for e in entries if e.outcome == "refused"]
    assert [e.target for e in refusals] == [f"export:{made['export_id']}"] * 2
    assert "the owner revoked" in json.loads(refusals[0].details)["reason"]
    assert len([e for e in entries if e.outcome == "ok"]) == 1


async def test_a_department_export_stays_downloadable(world: World) -> None:
    status, made = await _export(world, world.inv, "dept", PAST + 1, PAST + 7)
    assert status == 201, made
    world.clock.advance(60)
    download = await world.client.get(made["download"], headers=world.inv)
    assert download.status == 200
    assert len(await download.read()) == made["bytes"]


async def _listed(world: World, camera: str) -> list[dict[str, Any]]:
    response = await world.client.get(f"/api/recordings?camera={camera}", headers=world.inv)
    assert response.status == 200
    segments: list[dict[str, Any]] = (await response.json())["segments"]
    return segments


async def test_recordings_list_an_owners_camera_only_within_the_callers_grants(
    world: World,
) -> None:
    assert await _listed(world, "shop") == []
    assert len(await _listed(world, "dept")) >= 2  # the department's cameras: unchanged
    assert sorted(s["utc_start"] for s in await _listed(world, "dept"))[0] == PAST

    await _approved(world, PAST + 1, PAST + 2)
    shown = await _listed(world, "shop")
    assert [(s["utc_start"], s["utc_end"]) for s in shown] == [(PAST + 1, PAST + 2)]
    assert shown[0]["clipped"] is True
    assert shown[0]["sha256"] is None
    # Another investigator still sees nothing of it.
    _, other = await role_headers(world.client, world.admin, Role.INVESTIGATOR)
    response = await world.client.get("/api/recordings?camera=shop", headers=other)
    assert (await response.json())["segments"] == []
