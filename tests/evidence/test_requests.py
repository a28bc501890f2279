"""Footage requests through the HTTP API: owners decide, agents upload (resumable, hash checked
on arrival), a declined request receives nothing, the security core sees approvals."""

from __future__ import annotations

import hashlib
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from evidence import EVIDENCE
from evidence.store import EvidenceStore
from recording.segments import contained, index_path_of
from rtcc.config import SharingLevel
from rtcc.policy import Role
from security.core import SECURITY
from tests.evidence.helpers import app_of, evidence_app, frames_from, make_h264
from tests.fixtures.auth import MakeClient, TestUser, bearer, role_headers, security_settings
from tests.security.harness import Directory


@dataclass
class World:
    client: TestClient[Any, Any]
    admin: dict[str, str]
    investigator: TestUser
    inv: dict[str, str]
    own1: dict[str, str]
    own2: dict[str, str]
    agent1: dict[str, str]
    agent2: dict[str, str]
    data_dir: Path


@pytest.fixture
async def world(tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> World:
    directory = Directory()
    directory.add("cam1", SharingLevel.ON_REQUEST, owner_id="shop1")
    directory.add("cam2", SharingLevel.REGISTRY_ONLY, owner_id="shop2")
    settings = security_settings(tmp_path)
    client = await make_client(evidence_app(settings, directory))
    admin = bearer(bootstrap_token)
    investigator, inv = await role_headers(client, admin, Role.INVESTIGATOR)
    _, own1 = await role_headers(client, admin, Role.OWNER, owner_id="shop1")
    _, own2 = await role_headers(client, admin, Role.OWNER, owner_id="shop2")
    _, agent1 = await role_headers(client, admin, Role.AGENT, owner_id="shop1")
    _, agent2 = await role_headers(client, admin, Role.AGENT, owner_id="shop2")
    return World(client, admin, investigator, inv, own1, own2, agent1, agent2,
                 settings.data_dir)


async def _ask(world: World, cameras: list[str], start: float, end: float) -> dict[str, Any]:
    response = await world.client.post("/api/footage-requests", headers=world.inv, json={
        "cameras": cameras, "from": start, "to": end, "case": "2024-0042",
        "reason": "armed robbery at the corner shop"})
    body: dict[str, Any] = await response.json()
    assert response.status == 201, body
    return body


def _segment(tmp_path: Path, start: float) -> tuple[bytes, dict[str, Any]]:
    frames = frames_from(make_h264(tmp_path, 2.0), start)
    data = b"".join(frame.data for frame in frames)
    table, offset = [], 0
    for frame in frames:
        table.append([offset, len(frame.data), frame.pts, frame.capture_time,
                      int(frame.keyframe)])
        offset += len(frame.data)
    return data, {"camera_id": "cam1", "sequence": 0, "codec": "h264", "size": len(data),
                  "sha256": hashlib.sha256(data).hexdigest(), "frames": table}


def _statuses(body: dict[str, Any]) -> dict[str, str]:
    return {item["camera_id"]: item["status"] for item in body["cameras"]}


async def _audit_actions(world: World) -> list[tuple[str, str, str]]:
    app = app_of(world.client)
    entries = await app[SECURITY].audit.query(limit=200)
    return [(e.action, e.outcome, e.camera_id) for e in entries]


async def test_a_declined_request_receives_nothing(world: World, tmp_path: Path) -> None:
    client = world.client
    now = time.time()
    asked = await _ask(world, ["cam1", "cam2"], now - 600, now)
    assert asked["status"] == "pending"
    assert _statuses(asked) == {"cam1": "pending", "cam2": "pending"}
    rid = asked["id"]

    # Each owner sees the request, and only their own camera in it.
    seen1 = await (await client.get("/api/footage-requests", headers=world.own1)).json()
    assert [_statuses(r) for r in seen1["requests"]] == [{"cam1": "pending"}]
    seen2 = await (await client.get(f"/api/footage-requests/{rid}", headers=world.own2)).json()
    assert _statuses(seen2) == {"cam2": "pending"}
    assert seen2["case"] == "2024-0042"

    declined = await client.post(f"/api/footage-requests/{rid}/decline", headers=world.own1,
                                 json={"note": "no camera there that night"})
    assert declined.status == 200
    assert _statuses(await declined.json()) == {"cam1": "declined"}
    again = await client.post(f"/api/footage-requests/{rid}/approve", headers=world.own1)
    assert again.status == 409
    assert "decisions are final" in (await again.json())["error"]
    foreign = await client.post(f"/api/footage-requests/{rid}/approve", headers=world.own2,
                                json={"cameras": ["cam1"]})
    assert foreign.status == 409  # not owner 2's camera

    # The agent is offered nothing, and an upload is refused before a byte is stored.
    offered = await (await client.get("/api/footage-requests", headers=world.agent1)).json()
    assert offered["requests"] == []
    _, declaration = _segment(tmp_path, now - 300)
    upload = await client.post(f"/api/footage-requests/{rid}/uploads", headers=world.agent1,
                               json=declaration)
    assert upload.status == 409
    assert "nothing may be uploaded" in (await upload.json())["error"]

    app = app_of(client)
    evidence = app[EVIDENCE]
    assert await evidence.store.call(EvidenceStore.fetchall, "SELECT * FROM uploads") == []
    assert await evidence.store.call(EvidenceStore.fetchall, "SELECT * FROM segments") == []
    uploads_dir = evidence.root / "uploads"
    assert not uploads_dir.exists() or not any(uploads_dir.iterdir())
    security = app[SECURITY]
    assert await security.store.approved_request_for("cam1", world.investigator.id, time.time()) is None
    actions = await _audit_actions(world)
    assert ("footage_request.decline", "ok", "cam1") in actions
    assert ("footage.upload", "refused", "cam1") in actions

    mine = await (await client.get(f"/api/footage-requests/{rid}", headers=world.inv)).json()
    assert mine["status"] == "pending"  # owner 2 has not decided yet
    assert _statuses(mine) == {"cam1": "declined", "cam2": "pending"}


async def test_an_approved_request_is_uploaded_resumably_and_checked(
    world: World, tmp_path: Path
) -> None:
    client = world.client
    now = time.time()
    rid = (await _ask(world, ["cam1"], now - 600, now))["id"]
    approved = await client.post(f"/api/footage-requests/{rid}/approve", headers=world.own1,
                                 json={})
    assert _statuses(await approved.json()) == {"cam1": "approved"}
    app = app_of(client)
    security = app[SECURITY]
    grant = await security.store.approved_request_for("cam1", world.investigator.id, time.time())
    assert grant == f"{rid}:cam1"  # what the security core consults for on_request cameras
    holds = await (await client.get("/api/holds?camera=cam1", headers=world.inv)).json()
    assert holds["holds"][0]["case"] == "2024-0042"

    offered = await (await client.get("/api/footage-requests", headers=world.agent1)).json()
    assert [r["id"] for r in offered["requests"]] == [rid]
    data, declaration = _segment(tmp_path, now - 300)
    begun = await client.post(f"/api/footage-requests/{rid}/uploads", headers=world.agent1,
                              json=declaration)
    assert begun.status == 201
    upload_id = (await begun.json())["upload_id"]
    other = await client.get(f"/api/uploads/{upload_id}", headers=world.agent2)
    assert other.status == 404  # another owner's agent

    half = len(data) // 2
    first = await client.patch(f"/api/uploads/{upload_id}", data=data[:half],
                               headers={**world.agent1, "Upload-Offset": "0",
                                        "Content-Type": "application/octet-stream"})
    assert (await first.json())["offset"] == half
    # The connection dropped: the agent asks where to resume.
    resumed = await client.post(f"/api/footage-requests/{rid}/uploads", headers=world.agent1,
                                json=declaration)
    assert resumed.status == 200
    assert (await resumed.json())["offset"] == half
    wrong = await client.patch(f"/api/uploads/{upload_id}", data=data[:10],
                               headers={**world.agent1, "Upload-Offset": "0"})
    assert wrong.status == 409
    assert (await wrong.json())["offset"] == half
    last = await client.patch(f"/api/uploads/{upload_id}", data=data[half:],
                              headers={**world.agent1, "Upload-Offset": str(half)})
    done = await last.json()
    assert last.status == 200, done
    assert done["state"] == "complete"
    segment = await app[EVIDENCE].store.call(EvidenceStore.segment, done["segment_id"])
    assert segment is not None
    assert (segment.origin, segment.request_id, segment.sha256) == (
        "agent", rid, declaration["sha256"])
    stored = contained(app[EVIDENCE].root, segment.path)
    for path in (stored, index_path_of(stored)):  # readable by the server's user only
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # A segment whose bytes do not match the announced hash is discarded on arrival.
    forged = {**declaration, "sequence": 1, "sha256": "0" * 64}
    begun = await client.post(f"/api/footage-requests/{rid}/uploads", headers=world.agent1,
                              json=forged)
    forged_id = (await begun.json())["upload_id"]
    refused = await client.patch(f"/api/uploads/{forged_id}", data=data,
                                 headers={**world.agent1, "Upload-Offset": "0"})
    assert refused.status == 422
    assert "send the segment again from offset 0" in (await refused.json())["error"]
    assert len(await app[EVIDENCE].store.call(EvidenceStore.recent_segments, "cam1", 10)) == 1

    finished = await client.post(f"/api/footage-requests/{rid}/cameras/cam1/complete",
                                 headers=world.agent1)
    assert finished.status == 409  # sequence 1 never arrived whole
    mine = await (await client.get(f"/api/footage-requests/{rid}", headers=world.inv)).json()
    assert mine["status"] == "receiving"
    assert mine["cameras"][0]["uploaded_segments"] == 1

    # The requester exports what the agent uploaded, under the grant of the approval; another
    # investigator holds no grant on this camera.
    export = await client.post("/api/exports", headers=world.inv, json={
        "camera": "cam1", "from": now - 301, "to": now - 297, "case": "2024-0042"})
    body = await export.json()
    assert export.status == 201, body
    assert body["segments"] == [segment.id]
    assert body["grant"]["kind"] == "recorded"
    _, stranger = await role_headers(client, world.admin, Role.INVESTIGATOR)
    denied = await client.post("/api/exports", headers=stranger, json={
        "camera": "cam1", "from": now - 301, "to": now - 297, "case": "2024-0042"})
    assert denied.status == 403
    assert "ask the owner with a footage request" in (await denied.json())["error"]


async def test_an_owners_policy_approves_small_requests_at_once(world: World) -> None:
    client = world.client
    policy = await client.put("/api/footage-policy", headers=world.own2,
                              json={"mode": "auto_approve", "max_hours": 2})
    assert policy.status == 200
    now = time.time()
    small = await _ask(world, ["cam2"], now - 3600, now)
    assert small["status"] == "approved"
    assert small["cameras"][0]["auto_approved"] is True
    large = await _ask(world, ["cam2"], now - 3 * 3600, now)
    assert large["status"] == "pending"
    actions = await _audit_actions(world)
    assert ("footage_policy.change", "ok", "") in actions
    assert ("footage_request.approve", "ok", "cam2") in actions


async def test_requests_name_registered_cameras_and_are_private_to_their_requester(
    world: World
) -> None:
    client = world.client
    now = time.time()
    unknown = await client.post("/api/footage-requests", headers=world.inv, json={
        "cameras": ["nope"], "from": now - 60, "to": now, "case": "1", "reason": "x"})
    assert unknown.status == 404
    missing = await client.post("/api/footage-requests", headers=world.inv, json={
        "cameras": ["cam1"], "from": now - 60, "to": now, "case": "1"})
    assert missing.status == 400
    rid = (await _ask(world, ["cam1"], now - 60, now))["id"]
    _, other = await role_headers(client, world.admin, Role.INVESTIGATOR)
    assert (await client.get(f"/api/footage-requests/{rid}", headers=other)).status == 404
    assert (await client.get(f"/api/footage-requests/{rid}", headers=world.own2)).status == 404
    supervisor = (await role_headers(client, world.admin, Role.SUPERVISOR))[1]
    assert (await client.get(f"/api/footage-requests/{rid}", headers=supervisor)).status == 200
