"""The investigator's workspace API: timelines and playback only of cameras the investigator
holds a grant for (nothing at all of the others), fMP4 playback remuxed from the recorded
segments and audited as a view, exports built in the background with progress as server-sent
events, and a case's bookmarks on both database engines.

Through the real security and evidence cores, with segments written as the recorder writes them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from evidence import EVIDENCE, marks
from evidence.store import EvidenceStore
from rtcc.config import DatabaseConfig, SharingLevel
from rtcc.db import Database
from rtcc.policy import Role
from security.core import SECURITY
from tests.evidence.helpers import app_of, evidence_app, frames_from, make_h264, write_segments
from tests.fixtures.auth import FakeClock, MakeClient, bearer, role_headers, security_settings
from tests.security.harness import Directory

T0 = float(int(time.time()))
PAST = T0 - 3600.0
FPS = 15


@dataclass
class World:
    client: TestClient[Any, Any]
    admin: dict[str, str]
    inv: dict[str, str]
    data_dir: Path


@pytest.fixture
async def world(tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> World:
    settings = security_settings(tmp_path)
    units = make_h264(tmp_path, 8.0)
    store = EvidenceStore.open_in(settings.data_dir)
    try:
        for camera_id in ("shop", "dept"):
            write_segments(store, settings.data_dir / "evidence", camera_id,
                           frames_from(units, PAST), 3.0)
        # A second stretch of the department camera after a 20 s pause: a gap between them.
        write_segments(store, settings.data_dir / "evidence", "dept",
                       frames_from(units, PAST + 28.0, pts0=90_000_000), 3.0)
    finally:
        store.close()
    directory = Directory()
    directory.add("shop", SharingLevel.ON_REQUEST, owner_id="shop1")
    directory.add("dept", SharingLevel.REGISTRY_ONLY, owner_id="department")
    directory.add("never", SharingLevel.ON_REQUEST, owner_id="shop1")  # never recorded
    client = await make_client(evidence_app(settings, directory, clock=FakeClock(T0)))
    admin = bearer(bootstrap_token)
    _, inv = await role_headers(client, admin, Role.INVESTIGATOR)
    return World(client, admin, inv, settings.data_dir)


async def _grant(world: World, camera: str, start: float, end: float) -> None:
    asked = await world.client.post("/api/footage-requests", headers=world.inv, json={
        "cameras": [camera], "from": start, "to": end, "case": "2024-0099",
        "reason": "a car broken into"})
    assert asked.status == 201, await asked.text()
    _, owner = await role_headers(world.client, world.admin, Role.OWNER, owner_id="shop1")
    approved = await world.client.post(
        f"/api/footage-requests/{(await asked.json())['id']}/approve", headers=owner, json={})
    assert approved.status == 200, await approved.text()


def _frames_in(data: bytes, folder: Path) -> int:
    path = folder / "played.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


async def test_no_grant_no_timeline_then_only_the_granted_range(world: World,
                                                               tmp_path: Path) -> None:
    query: dict[str, str | float] = {"camera": "shop", "from": PAST - 10, "to": PAST + 60}
    refused = await world.client.get("/api/investigate/timeline", params=query,
                                      headers=world.inv)
    assert refused.status == 403
    body = await refused.json()
    assert set(body) == {"error"}  # no spans, no holds, nothing about the camera's footage
    assert "footage request" in body["error"]
    played = await world.client.get("/api/investigate/play", params=query, headers=world.inv)
    assert played.status == 403
    listed = await (await world.client.get("/api/investigate/cameras",
                                           headers=world.inv)).json()
    assert [camera["camera_id"] for camera in listed["cameras"]] == ["dept"]

    await _grant(world, "shop", PAST + 1, PAST + 5)
    timeline = await (await world.client.get("/api/investigate/timeline", params=query,
                                             headers=world.inv)).json()
    assert timeline["basis"] == "recorded"
    assert timeline["visible"] == [[PAST + 1, PAST + 5]]
    assert timeline["segments"]
    assert all(PAST + 1 <= span["start"] < span["end"] <= PAST + 5
               for span in timeline["segments"])
    assert timeline["holds"]  # the approval held the requested range for the case

    played = await world.client.get("/api/investigate/play", params=query, headers=world.inv)
    assert played.status == 200, await played.text()
    assert played.headers["Content-Type"] == "video/mp4"
    first = float(played.headers["X-Recording-Start"])
    last = float(played.headers["X-Recording-End"])
    assert first >= PAST + 1
    assert last < PAST + 5
    data = await played.read()
    assert data[4:8] == b"ftyp"
    assert b"moof" in data
    assert _frames_in(data, tmp_path) == int(played.headers["X-Playback-Frames"])
    entries = await app_of(world.client)[SECURITY].audit.query(action="evidence.playback",
                                                               limit=10)
    assert [entry.outcome for entry in entries if entry.camera_id == "shop"] \
        == ["started", "refused"]
    stops = await app_of(world.client)[SECURITY].audit.query(action="evidence.playback.stop",
                                                             limit=10)
    assert json.loads(stops[0].details)["reason"] == "ended"
    assert json.loads(stops[0].details)["bytes"] == len(data)


async def test_department_timeline_shows_the_gap_and_plays_from_the_keyframe_before(
    world: World, tmp_path: Path
) -> None:
    timeline = await (await world.client.get(
        "/api/investigate/timeline", params={"camera": "dept", "from": PAST, "to": PAST + 40},
        headers=world.inv)).json()
    assert timeline["basis"] == "department"
    gaps = [(gap["start"], gap["end"]) for gap in timeline["gaps"]]
    assert len(gaps) == 2  # the pause between the stretches, and after the last one
    assert gaps[0][0] == pytest.approx(PAST + 8 - 1 / FPS, abs=0.01)
    assert gaps[0][1] == pytest.approx(PAST + 28, abs=0.01)
    played = await world.client.get("/api/investigate/play", headers=world.inv, params={
        "camera": "dept", "from": PAST + 2.5, "to": PAST + 4})
    assert played.status == 200
    assert float(played.headers["X-Recording-Start"]) == pytest.approx(PAST + 2, abs=0.001)
    assert _frames_in(await played.read(), tmp_path) == 2 * FPS  # 2.0 s up to 4.0 s


async def test_export_from_the_screen_reports_progress_until_the_package_is_ready(
    world: World
) -> None:
    started = await world.client.post("/api/investigate/exports", headers=world.inv, json={
        "cameras": ["dept", "shop"], "from": PAST + 1, "to": PAST + 4, "case": "2024-0100",
        "reason": "shown on the timeline"})
    assert started.status == 202, await started.text()
    job = await started.json()
    events = await world.client.get(job["events"], headers=world.inv)
    assert events.headers["Content-Type"].startswith("text/event-stream")
    states = [json.loads(line[6:]) for line in (await events.text()).splitlines()
              if line.startswith("data: ")]
    assert states[-1]["state"] == "partly_done"
    progress = [state["progress"] for state in states]
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    results = {result["camera_id"]: result for result in states[-1]["results"]}
    assert results["shop"]["status"] == 403  # no grant: refused, and said so
    download = await world.client.get(results["dept"]["download"], headers=world.inv)
    assert download.status == 200
    assert len(await download.read()) == results["dept"]["bytes"]


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[EvidenceStore]:
    db = Database(DatabaseConfig(url=SecretStr(database_url), connect_timeout=5,
                                 migrate_on_start=True), tmp_path)
    opened = EvidenceStore.open_on(db)
    yield opened
    opened.close()
    db.close()


def test_bookmarks_and_notes_are_kept_with_their_case(store: EvidenceStore) -> None:
    first = marks.add_mark(store, case_number="2024-1", camera_id="dept", kind="note",
                           at=PAST + 5, end=PAST + 9, text="the van arrives", created_by="ivan",
                           created_by_id=7, now=T0)
    marks.add_mark(store, case_number="2024-1", camera_id="shop", kind="bookmark", at=PAST,
                   end=None, text="", created_by="ivan", created_by_id=7, now=T0)
    marks.add_mark(store, case_number="2024-2", camera_id="dept", kind="bookmark", at=PAST,
                   end=None, text="", created_by="ivan", created_by_id=7, now=T0)
    found = marks.marks_of_case(store, "2024-1")
    assert [(m.camera_id, m.kind) for m in found] == [("shop", "bookmark"), ("dept", "note")]
    assert found[1] == first
    assert [m.camera_id for m in marks.marks_of_case(store, "2024-1", {"dept"})] == ["dept"]
    assert not marks.delete_mark(store, first.id, created_by_id=8)  # not the author
    assert marks.delete_mark(store, first.id, created_by_id=7)
    assert [m.kind for m in marks.marks_of_case(store, "2024-1")] == ["bookmark"]


async def test_footage_request_items_say_what_the_server_knows(world: World) -> None:
    app = app_of(world.client)
    asked = await world.client.post("/api/footage-requests", headers=world.inv, json={
        "cameras": ["shop", "never"], "from": PAST + 1, "to": PAST + 5, "case": "2024-0101",
        "reason": "who parked there"})
    assert asked.status == 201, await asked.text()
    request_id = (await asked.json())["id"]
    _, owner = await role_headers(world.client, world.admin, Role.OWNER, owner_id="shop1")
    listed = await (await world.client.get(f"/api/footage-requests/{request_id}",
                                           headers=owner)).json()
    assert {c["camera_id"]: c["state"] for c in listed["cameras"]} == {
        "shop": "waiting_for_owner", "never": "waiting_for_owner"}
    approved = await world.client.post(f"/api/footage-requests/{request_id}/approve",
                                       headers=owner, json={})
    assert approved.status == 200, await approved.text()
    seen = await (await world.client.get(f"/api/footage-requests/{request_id}",
                                         headers=world.inv)).json()
    items = {c["camera_id"]: c for c in seen["cameras"]}
    assert items["shop"]["state"] == "recorded"
    assert items["never"]["state"] == "approved_no_footage"  # not a bare "approved"
    assert "no recording of this camera for that time" in items["never"]["detail"]
    reason = "this agent keeps no footage buffer (the owner can start it with --buffer-hours)"
    assert await app[EVIDENCE].requests.mark_failed(request_id, "never", reason)
    for headers in (world.inv, owner):  # both sides read the same reason
        seen = await (await world.client.get(f"/api/footage-requests/{request_id}",
                                             headers=headers)).json()
        never = next(c for c in seen["cameras"] if c["camera_id"] == "never")
        assert never["state"] == "no_footage"
        assert never["detail"] == f"no footage for that time: {reason}"
